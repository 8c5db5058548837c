// neuralvox._vdb: bulk OpenVDB read/write of float/double/vec3 grids as numpy arrays, and NanoVDB export.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <openvdb/openvdb.h>
#include <openvdb/io/Archive.h>
#include <openvdb/io/GridDescriptor.h>
#include <openvdb/tools/SignedFloodFill.h>
#include <openvdb/tree/LeafManager.h>

#include <nanovdb/util/IO.h>
#include <nanovdb/util/OpenToNanoVDB.h>

#include <tbb/parallel_for.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using Int3Array = nb::ndarray<nb::numpy, int32_t, nb::ndim<2>>;
using FloatArray = nb::ndarray<nb::numpy, float>;
using Int3In = nb::ndarray<const int32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using FloatIn = nb::ndarray<const float, nb::c_contig, nb::device::cpu>;

// Keys stored in SparseGrid fields rather than in its metadata dict.
bool isFieldKey(const std::string& key) {
    return key == openvdb::GridBase::META_GRID_NAME || key == openvdb::GridBase::META_GRID_CLASS ||
           key == openvdb::GridBase::META_VECTOR_TYPE || key == openvdb::GridBase::META_SAVE_HALF_FLOAT;
}

template <typename T>
nb::capsule owner(T* data) {
    return nb::capsule(data, [](void* p) noexcept { delete[] static_cast<T*>(p); });
}

Int3Array makeIjk(int32_t* data, size_t n) {
    return Int3Array(data, {n, size_t(3)}, owner(data));
}

FloatArray makeValues(float* data, size_t n, int channels) {
    if (channels == 1) return FloatArray(data, {n}, owner(data));
    return FloatArray(data, {n, size_t(channels)}, owner(data));
}

// ---------------------------------------------------------------- metadata

nb::object metaToPython(const openvdb::Metadata& meta) {
    const std::string type = meta.typeName();
    if (type == "string") return nb::str(static_cast<const openvdb::StringMetadata&>(meta).value().c_str());
    if (type == "bool") return nb::bool_(static_cast<const openvdb::BoolMetadata&>(meta).value());
    if (type == "int32") return nb::int_(static_cast<const openvdb::Int32Metadata&>(meta).value());
    if (type == "int64") return nb::int_(static_cast<const openvdb::Int64Metadata&>(meta).value());
    if (type == "float") return nb::float_(static_cast<const openvdb::FloatMetadata&>(meta).value());
    if (type == "double") return nb::float_(static_cast<const openvdb::DoubleMetadata&>(meta).value());
    if (type == "vec3i") {
        const auto v = static_cast<const openvdb::Vec3IMetadata&>(meta).value();
        return nb::make_tuple(v[0], v[1], v[2]);
    }
    if (type == "vec3s") {
        const auto v = static_cast<const openvdb::Vec3SMetadata&>(meta).value();
        return nb::make_tuple(double(v[0]), double(v[1]), double(v[2]));
    }
    if (type == "vec3d") {
        const auto v = static_cast<const openvdb::Vec3DMetadata&>(meta).value();
        return nb::make_tuple(v[0], v[1], v[2]);
    }
    return nb::str(meta.str().c_str());  // other types keep their text form
}

std::string pythonTypeName(const std::string& vdbType) {
    static const char* kept[] = {"string", "bool", "int32", "int64", "float", "double", "vec3i", "vec3s", "vec3d"};
    for (const char* name : kept)
        if (vdbType == name) return vdbType;
    return "string";
}

std::pair<nb::dict, nb::dict> metaMapToPython(const openvdb::MetaMap& map, bool skipFieldKeys) {
    nb::dict values, types;
    for (auto it = map.beginMeta(); it != map.endMeta(); ++it) {
        if (skipFieldKeys && isFieldKey(it->first)) continue;
        values[it->first.c_str()] = metaToPython(*it->second);
        types[it->first.c_str()] = pythonTypeName(it->second->typeName()).c_str();
    }
    return {values, types};
}

openvdb::Metadata::Ptr metaFromPython(const std::string& key, nb::handle value, const std::string& type) {
    auto vec3 = [&](auto tag) {
        using V = decltype(tag);
        auto seq = nb::cast<std::vector<double>>(value);
        if (seq.size() != 3) throw std::invalid_argument("metadata '" + key + "': expected 3 numbers");
        return V(typename V::value_type(seq[0]), typename V::value_type(seq[1]), typename V::value_type(seq[2]));
    };
    if (nb::isinstance<nb::str>(value)) return openvdb::StringMetadata(nb::cast<std::string>(value)).copy();
    if (nb::isinstance<nb::bool_>(value)) return openvdb::BoolMetadata(nb::cast<bool>(value)).copy();
    if (nb::isinstance<nb::int_>(value)) {
        if (type == "int32") return openvdb::Int32Metadata(nb::cast<int32_t>(value)).copy();
        if (type == "float") return openvdb::FloatMetadata(nb::cast<float>(value)).copy();
        if (type == "double") return openvdb::DoubleMetadata(nb::cast<double>(value)).copy();
        return openvdb::Int64Metadata(nb::cast<int64_t>(value)).copy();
    }
    if (nb::isinstance<nb::float_>(value)) {
        if (type == "float") return openvdb::FloatMetadata(nb::cast<float>(value)).copy();
        return openvdb::DoubleMetadata(nb::cast<double>(value)).copy();
    }
    if (nb::isinstance<nb::tuple>(value) || nb::isinstance<nb::list>(value)) {
        if (type == "vec3i") return openvdb::Vec3IMetadata(vec3(openvdb::Vec3i())).copy();
        if (type == "vec3s") return openvdb::Vec3SMetadata(vec3(openvdb::Vec3s())).copy();
        return openvdb::Vec3DMetadata(vec3(openvdb::Vec3d())).copy();
    }
    throw std::invalid_argument("metadata '" + key + "': unsupported value type");
}

void metaMapFromPython(openvdb::MetaMap& map, const nb::dict& values, const nb::dict& types) {
    for (auto [k, v] : values) {
        const std::string key = nb::cast<std::string>(k);
        std::string type;
        if (types.contains(k)) type = nb::cast<std::string>(types[k]);
        map.removeMeta(key);
        map.insertMeta(key, *metaFromPython(key, v, type));
    }
}

// ---------------------------------------------------------------- reading

template <typename ValueT>
constexpr int channelsOf() {
    if constexpr (openvdb::VecTraits<ValueT>::IsVec) return 3;
    else return 1;
}

template <typename ValueT>
void storeValue(float* out, const ValueT& v) {
    if constexpr (openvdb::VecTraits<ValueT>::IsVec) {
        out[0] = float(v[0]);
        out[1] = float(v[1]);
        out[2] = float(v[2]);
    } else {
        out[0] = float(v);
    }
}

struct Extracted {
    int32_t* ijk = nullptr;
    float* values = nullptr;
    size_t count = 0;
    int channels = 1;
    size_t tiles = 0;
};

// Active voxels of a grid, leaf by leaf in parallel; active tiles become voxels when voxelizeTiles.
template <typename GridT>
Extracted extract(GridT& grid, bool voxelizeTiles) {
    using ValueT = typename GridT::ValueType;
    auto& tree = grid.tree();
    Extracted out;
    out.channels = channelsOf<ValueT>();
    out.tiles = size_t(tree.activeTileCount());
    if (voxelizeTiles && out.tiles > 0) tree.voxelizeActiveTiles(/*threaded=*/true);

    openvdb::tree::LeafManager<const typename GridT::TreeType> leaves(tree);
    const size_t leafCount = leaves.leafCount();
    std::vector<size_t> start(leafCount + 1, 0);
    for (size_t i = 0; i < leafCount; ++i) start[i + 1] = start[i] + leaves.leaf(i).onVoxelCount();
    out.count = start[leafCount];
    out.ijk = new int32_t[out.count * 3];
    out.values = new float[out.count * out.channels];

    tbb::parallel_for(tbb::blocked_range<size_t>(0, leafCount), [&](const tbb::blocked_range<size_t>& r) {
        for (size_t i = r.begin(); i != r.end(); ++i) {
            size_t n = start[i];
            for (auto it = leaves.leaf(i).cbeginValueOn(); it; ++it, ++n) {
                const openvdb::Coord c = it.getCoord();
                out.ijk[3 * n + 0] = c.x();
                out.ijk[3 * n + 1] = c.y();
                out.ijk[3 * n + 2] = c.z();
                storeValue(out.values + n * out.channels, *it);
            }
        }
    });
    return out;
}

template <typename GridT>
nb::object backgroundValue(const GridT& grid) {
    const auto bg = grid.background();
    if constexpr (openvdb::VecTraits<typename GridT::ValueType>::IsVec)
        return nb::make_tuple(double(bg[0]), double(bg[1]), double(bg[2]));
    else
        return nb::float_(double(bg));
}

template <typename GridT>
nb::dict gridToDict(GridT& grid, const std::string& valueType, bool voxelizeTiles) {
    Extracted ex;
    {
        nb::gil_scoped_release release;
        ex = extract(grid, voxelizeTiles);
    }
    const openvdb::Mat4d m = grid.transform().baseMap()->getAffineMap()->getMat4();
    double* t = new double[16];
    for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c) t[4 * r + c] = m(r, c);

    nb::dict d;
    d["name"] = grid.getName().c_str();
    d["value_type"] = valueType.c_str();
    d["grid_class"] = openvdb::GridBase::gridClassToString(grid.getGridClass()).c_str();
    d["transform"] = nb::ndarray<nb::numpy, double, nb::shape<4, 4>>(t, {4, 4}, owner(t));
    d["background"] = backgroundValue(grid);
    d["save_half"] = grid.saveFloatAsHalf();
    if (grid[openvdb::GridBase::META_VECTOR_TYPE])
        d["vector_type"] = openvdb::GridBase::vecTypeToString(grid.getVectorType()).c_str();
    else
        d["vector_type"] = nb::none();
    auto [meta, types] = metaMapToPython(grid, /*skipFieldKeys=*/true);
    d["metadata"] = meta;
    d["metadata_types"] = types;
    d["ijk"] = makeIjk(ex.ijk, ex.count);
    d["values"] = makeValues(ex.values, ex.count, ex.channels);
    d["tile_count"] = ex.tiles;
    return d;
}

std::string shortTypeName(const openvdb::GridBase& grid) {
    if (grid.isType<openvdb::FloatGrid>()) return "float";
    if (grid.isType<openvdb::DoubleGrid>()) return "double";
    if (grid.isType<openvdb::Vec3SGrid>()) return "vec3s";
    if (grid.isType<openvdb::Vec3DGrid>()) return "vec3d";
    return grid.valueType();
}

// The value types read() turns into voxel arrays.
bool isVoxelType(const std::string& type) {
    return type == "float" || type == "double" || type == "vec3s" || type == "vec3d";
}

std::vector<std::string> gridNames(openvdb::io::File& file) {
    std::vector<std::string> names;
    for (auto it = file.beginName(); it != file.endName(); ++it) names.push_back(*it);
    return names;
}

// A grid whose data is damaged: the whole file is refused rather than the grid skipped.
struct DamagedGrid : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The first ``end`` bytes of a file as a stream buffer: reading or seeking past ``end`` fails like the end of the file.
class BoundedFileBuf : public std::streambuf {
public:
    explicit BoundedFileBuf(const std::string& path) : file_(path, std::ios::binary | std::ios::ate) {
        end_ = size_ = file_ ? int64_t(file_.tellg()) : 0;
    }
    bool isOpen() const { return file_.is_open(); }
    int64_t size() const { return size_; }
    void setEnd(int64_t end) { end_ = end; }

protected:
    int_type underflow() override {
        const int64_t at = position();
        const std::streamsize n = std::streamsize(std::min<int64_t>(int64_t(sizeof(buf_)), end_ - at));
        if (n <= 0 || !file_.seekg(at) || !file_.read(buf_, n)) return traits_type::eof();
        start_ = at;
        setg(buf_, buf_, buf_ + n);
        return traits_type::to_int_type(buf_[0]);
    }
    pos_type seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode which) override {
        const int64_t base = dir == std::ios_base::beg ? 0 : dir == std::ios_base::cur ? position() : end_;
        return seekpos(pos_type(base + off), which);
    }
    pos_type seekpos(pos_type pos, std::ios_base::openmode) override {
        const int64_t at = int64_t(pos);
        if (at < 0 || at > end_) return pos_type(off_type(-1));
        start_ = at;
        setg(buf_, buf_, buf_);
        return pos;
    }

private:
    int64_t position() const { return start_ + (gptr() - eback()); }

    std::ifstream file_;
    int64_t size_ = 0, end_ = 0, start_ = 0;
    char buf_[1 << 16];
};

// Walk ``count`` length-prefixed blocks (strings, metadata values) from the stream's position, refusing one that claims
// more bytes than remain before ``end``: OpenVDB allocates and fills each block before reading it (a flipped bit in a
// metadata type name asked for 1 GiB).
void skipBlocks(std::istream& is, uint64_t count, int64_t end) {
    for (uint64_t i = 0; i < count; ++i) {
        uint32_t size = 0;
        is.read(reinterpret_cast<char*>(&size), sizeof(size));
        if (int64_t(size) > end - int64_t(is.tellg())) throw std::ios_base::failure("a block runs past the end");
        is.seekg(size, std::ios_base::cur);
    }
}

// Walk a MetaMap the same way: a count, then a name, a type name and a value per entry.
void skipMetaMap(std::istream& is, int64_t end) {
    uint32_t count = 0;
    is.read(reinterpret_cast<char*>(&count), sizeof(count));
    skipBlocks(is, 3 * uint64_t(count), end);
}

// Check the sizes in a grid's metadata and transform type name (at the stream's position) and come back.
void checkGridHead(std::istream& is, int64_t end) {
    const auto start = is.tellg();
    const uint32_t version = openvdb::io::getFormatVersion(is);
    if (version >= openvdb::OPENVDB_FILE_VERSION_NODE_MASK_COMPRESSION) is.seekg(4, std::ios_base::cur);
    skipMetaMap(is, end);
    if (version >= openvdb::OPENVDB_FILE_VERSION_GRID_INSTANCING) skipBlocks(is, 1, end);
    is.seekg(start);
}

// Reads a file's header and grids as io::File does, but each grid from its own bytes only: the stream throws at the
// end of the grid's data, so a corrupt tile count, child count or node mask stops there instead of building nodes
// from nothing (a flipped bit made OpenVDB spend 10 GiB and 50 s on a 31 KB file).
class GridReader : public openvdb::io::Archive {
public:
    struct Span {
        std::string name;
        int64_t begin, end;  // the descriptor's start and the grid data's end, in bytes
    };

    explicit GridReader(const std::string& path) : buf_(path), is_(&buf_) {
        if (!buf_.isOpen()) throw std::runtime_error("cannot open file");
        is_.exceptions(std::ios::failbit | std::ios::badbit);
        try {
            scan();
        } catch (const std::ios_base::failure&) {
            throw std::runtime_error("not a readable OpenVDB file, truncated or corrupt (the header runs past its end)");
        } catch (const openvdb::Exception& e) {
            throw std::runtime_error(std::string("not a readable OpenVDB file, truncated or corrupt (") + e.what() + ")");
        }
        for (const Span& span : spans_)
            if (span.end > buf_.size())
                throw std::runtime_error("truncated: grid '" + span.name + "' ends at byte " +
                                         std::to_string(span.end) + " but the file has " + std::to_string(buf_.size()) +
                                         " bytes");
    }

    openvdb::io::Archive::Ptr copy() const override { throw std::logic_error("GridReader is not copied"); }

    // Each grid's byte span; empty when the file has no grid offsets (very old files, read by io::File instead).
    const std::vector<Span>& spans() const { return spans_; }
    int64_t fileSize() const { return buf_.size(); }

    // The grid of that unique name, read from its bytes alone; nullptr when the file has no grid offsets.
    openvdb::GridBase::Ptr readGrid(const std::string& name) {
        const openvdb::io::GridDescriptor* gd = descriptor(name);
        if (!gd) return nullptr;
        openvdb::GridBase::Ptr grid = openvdb::GridBase::createGrid(gd->gridType());
        grid->setSaveFloatAsHalf(gd->saveFloatAsHalf());
        buf_.setEnd(gd->getEndPos());
        try {
            gd->seekToGrid(is_);
            checkGridHead(is_, gd->getEndPos());
            Archive::readGrid(grid, *gd, is_);
        } catch (const std::ios_base::failure&) {
            throw DamagedGrid("damaged: grid '" + name + "' claims more than its " +
                                     std::to_string(gd->getEndPos() - gd->getGridPos()) +
                                     " bytes of data (a corrupt count, size or node mask)");
        }
        if (gd->isInstance()) {
            const std::string parent = openvdb::io::GridDescriptor::nameAsString(gd->instanceParentName());
            grid->setTree(readGrid(parent)->baseTree().copy());
        }
        return grid;
    }

private:
    void scan() {
        meta_ = std::make_shared<openvdb::io::StreamMetadata>();
        meta_->setSeekable(true);
        openvdb::io::setStreamMetadataPtr(is_, meta_, /*transfer=*/false);
        readHeader(is_);
        setFormatVersion(is_);
        setLibraryVersion(is_);
        setDataCompression(is_);
        const auto metaAt = is_.tellg();
        skipMetaMap(is_, buf_.size());
        is_.seekg(metaAt);
        openvdb::MetaMap().readMeta(is_);
        if (!inputHasGridOffsets()) return;
        const int32_t count = readGridCount(is_);
        for (int32_t i = 0; i < count; ++i) {
            const int64_t begin = int64_t(is_.tellg());
            const bool instancing = fileVersion() >= openvdb::OPENVDB_FILE_VERSION_GRID_INSTANCING;
            skipBlocks(is_, instancing ? 3 : 2, buf_.size());  // unique name, type and instance parent name
            is_.seekg(begin);
            openvdb::io::GridDescriptor gd;
            gd.read(is_);
            spans_.push_back({openvdb::io::GridDescriptor::nameAsString(gd.uniqueName()), begin, gd.getEndPos()});
            descriptors_.push_back(gd);
            if (gd.getEndPos() > buf_.size()) return;  // truncated: refused by the caller
            gd.seekToEnd(is_);
        }
    }

    const openvdb::io::GridDescriptor* descriptor(const std::string& name) const {
        for (const auto& gd : descriptors_)
            if (openvdb::io::GridDescriptor::nameAsString(gd.uniqueName()) == name) return &gd;
        return nullptr;
    }

    BoundedFileBuf buf_;
    std::istream is_;
    openvdb::io::StreamMetadata::Ptr meta_;
    std::vector<Span> spans_;
    std::vector<openvdb::io::GridDescriptor> descriptors_;
};

// Open a file checked by a GridReader (header readable, no grid cut short) for its names and metadata.
openvdb::io::File openFile(const std::string& path) {
    openvdb::io::File file(path);
    try {
        file.open(/*delayLoad=*/false);
    } catch (const openvdb::Exception& e) {
        throw std::runtime_error(std::string("not a readable OpenVDB file: ") + e.what());
    }
    return file;
}

// A grid by name: from its own bytes when the file has grid offsets, else through io::File (very old files).
openvdb::GridBase::Ptr readGrid(GridReader& reader, openvdb::io::File& file, const std::string& name) {
    if (openvdb::GridBase::Ptr grid = reader.readGrid(name)) return grid;
    return file.readGrid(name);
}

// Refuse a grid with more active voxels than the caller allows (tiles counted as voxels when they become voxels).
void checkVoxelCount(const openvdb::GridBase& grid, const std::string& name, bool voxelizeTiles, uint64_t maxVoxels,
                     int64_t fileSize) {
    const uint64_t voxels = voxelizeTiles ? grid.activeVoxelCount() : grid.baseTree().activeLeafVoxelCount();
    if (voxels <= maxVoxels) return;
    throw std::runtime_error("grid '" + name + "' has " + std::to_string(voxels) + " active voxels" +
                             (voxelizeTiles ? " (tiles included)" : "") + " in a file of " +
                             std::to_string(fileSize) + " bytes, over the limit of " + std::to_string(maxVoxels) +
                             " (damaged? if not, raise max_voxels)");
}

nb::list listGrids(const std::string& path) {
    GridReader reader(path);
    openvdb::io::File file = openFile(path);
    nb::list rows;
    for (const std::string& name : gridNames(file)) {
        try {
            openvdb::GridBase::Ptr meta = file.readGridMetadata(name);
            rows.append(nb::make_tuple(name, shortTypeName(*meta),
                                       openvdb::GridBase::gridClassToString(meta->getGridClass())));
        } catch (const openvdb::Exception& e) {
            rows.append(nb::make_tuple(name, std::string("unreadable: ") + e.what(), "unknown"));
        }
    }
    file.close();
    return rows;
}

nb::tuple readFile(const std::string& path, std::optional<std::vector<std::string>> wanted, bool voxelizeTiles,
                   uint64_t maxVoxels) {
    GridReader reader(path);
    openvdb::io::File file = openFile(path);
    nb::list grids, skipped;
    auto [fileMeta, fileMetaTypes] = metaMapToPython(*file.getMetadata(), /*skipFieldKeys=*/false);
    for (const std::string& name : gridNames(file)) {
        if (wanted && std::find(wanted->begin(), wanted->end(), name) == wanted->end()) continue;
        openvdb::GridBase::Ptr base;
        try {
            nb::gil_scoped_release release;
            base = readGrid(reader, file, name);
        } catch (const DamagedGrid&) {
            throw;
        } catch (const openvdb::Exception& e) {
            skipped.append(nb::make_tuple(name, std::string("OpenVDB cannot decode it: ") + e.what()));
            continue;
        } catch (const std::exception& e) {
            skipped.append(nb::make_tuple(name, std::string("OpenVDB cannot decode it: ") + e.what()));
            continue;
        }
        const std::string type = shortTypeName(*base);
        if (!base->transform().baseMap()->isLinear()) {
            skipped.append(nb::make_tuple(name, "non-linear (frustum) transform is not supported"));
            continue;
        }
        if (isVoxelType(type)) checkVoxelCount(*base, name, voxelizeTiles, maxVoxels, reader.fileSize());
        if (auto g = openvdb::gridPtrCast<openvdb::FloatGrid>(base)) grids.append(gridToDict(*g, type, voxelizeTiles));
        else if (auto g = openvdb::gridPtrCast<openvdb::DoubleGrid>(base)) grids.append(gridToDict(*g, type, voxelizeTiles));
        else if (auto g = openvdb::gridPtrCast<openvdb::Vec3SGrid>(base)) grids.append(gridToDict(*g, type, voxelizeTiles));
        else if (auto g = openvdb::gridPtrCast<openvdb::Vec3DGrid>(base)) grids.append(gridToDict(*g, type, voxelizeTiles));
        else skipped.append(nb::make_tuple(name, "value type " + type + " is not compressed (float/double/vec3 only)"));
    }
    file.close();
    return nb::make_tuple(grids, fileMeta, fileMetaTypes, skipped);
}

// Per-grid statistics of every grid (any value type) for `info`, without copying voxels out.
nb::list gridStats(const std::string& path) {
    GridReader reader(path);
    openvdb::io::File file = openFile(path);
    std::map<std::string, int64_t> bytes;
    for (const auto& span : reader.spans()) bytes[span.name] += span.end - span.begin;
    nb::list rows;
    for (const std::string& name : gridNames(file)) {
        nb::dict row;
        row["name"] = name.c_str();
        row["bytes"] = bytes.count(name) ? nb::object(nb::int_(bytes[name])) : nb::none();
        openvdb::GridBase::Ptr base;
        try {
            nb::gil_scoped_release release;
            base = readGrid(reader, file, name);
        } catch (const DamagedGrid&) {
            throw;
        } catch (const std::exception& e) {
            row["error"] = e.what();
            rows.append(row);
            continue;
        }
        row["value_type"] = shortTypeName(*base).c_str();
        row["grid_class"] = openvdb::GridBase::gridClassToString(base->getGridClass()).c_str();
        row["active_voxels"] = base->activeVoxelCount();
        row["active_tiles"] = base->baseTree().activeTileCount();
        row["leaf_count"] = base->baseTree().leafCount();
        row["voxel_size"] = base->voxelSize()[0];
        row["save_half"] = base->saveFloatAsHalf();
        const openvdb::CoordBBox box = base->evalActiveVoxelBoundingBox();
        if (box.empty()) row["bbox"] = nb::none();
        else
            row["bbox"] = nb::make_tuple(nb::make_tuple(box.min().x(), box.min().y(), box.min().z()),
                                         nb::make_tuple(box.max().x(), box.max().y(), box.max().z()));
        rows.append(row);
    }
    file.close();
    return rows;
}

// Bytes each grid occupies in the file (descriptor through data end), from the header alone.
nb::dict gridBytes(const std::string& path) {
    nb::dict out;
    GridReader reader(path);
    for (const auto& span : reader.spans()) out[span.name.c_str()] = span.end - span.begin;
    return out;
}

// ---------------------------------------------------------------- writing

template <typename ValueT>
ValueT loadValue(const float* v) {
    if constexpr (openvdb::VecTraits<ValueT>::IsVec) {
        using E = typename openvdb::VecTraits<ValueT>::ElementType;
        return ValueT(E(v[0]), E(v[1]), E(v[2]));
    } else {
        return ValueT(v[0]);
    }
}

struct CoordHash {
    size_t operator()(const openvdb::Coord& c) const {
        return size_t(c.x()) * 73856093u ^ size_t(c.y()) * 19349663u ^ size_t(c.z()) * 83492791u;
    }
};

// Build a tree from voxels grouped by leaf (hash of leaf origins, then a counting sort): O(N), leaves filled in
// parallel and attached in one pass.
template <typename GridT>
typename GridT::Ptr buildGrid(const int32_t* ijk, const float* values, size_t n, const typename GridT::ValueType& bg) {
    using LeafT = typename GridT::TreeType::LeafNodeType;
    constexpr int channels = channelsOf<typename GridT::ValueType>();
    auto coordOf = [&](size_t i) { return openvdb::Coord(ijk[3 * i], ijk[3 * i + 1], ijk[3 * i + 2]); };

    std::vector<uint32_t> leafOf(n);
    std::vector<openvdb::Coord> origins;
    {
        std::unordered_map<openvdb::Coord, uint32_t, CoordHash> index;
        index.reserve(n / 64 + 16);
        for (size_t i = 0; i < n; ++i) {
            auto [it, added] = index.try_emplace(coordOf(i) & ~(LeafT::DIM - 1), uint32_t(origins.size()));
            if (added) origins.push_back(it->first);
            leafOf[i] = it->second;
        }
    }
    const size_t leafCount = origins.size();
    std::vector<size_t> start(leafCount + 1, 0);
    for (size_t i = 0; i < n; ++i) ++start[leafOf[i] + 1];
    for (size_t l = 0; l < leafCount; ++l) start[l + 1] += start[l];
    std::vector<uint32_t> order(n);
    {
        std::vector<size_t> cursor(start.begin(), start.end() - 1);
        for (size_t i = 0; i < n; ++i) order[cursor[leafOf[i]]++] = uint32_t(i);
    }

    std::vector<LeafT*> leaves(leafCount, nullptr);
    std::atomic<int64_t> duplicate{-1};
    tbb::parallel_for(tbb::blocked_range<size_t>(0, leafCount), [&](const tbb::blocked_range<size_t>& r) {
        for (size_t l = r.begin(); l != r.end(); ++l) {
            auto* leaf = new LeafT(origins[l], bg, false);
            for (size_t k = start[l]; k < start[l + 1]; ++k) {
                const uint32_t i = order[k];
                const openvdb::Index offset = LeafT::coordToOffset(coordOf(i));
                if (leaf->isValueOn(offset)) duplicate = int64_t(i);
                leaf->setValueOn(offset, loadValue<typename GridT::ValueType>(values + channels * size_t(i)));
            }
            leaves[l] = leaf;
        }
    });
    if (duplicate >= 0) {
        for (LeafT* leaf : leaves) delete leaf;
        const openvdb::Coord c = coordOf(size_t(duplicate.load()));
        throw std::invalid_argument("duplicate voxel coordinate (" + std::to_string(c.x()) + ", " +
                                    std::to_string(c.y()) + ", " + std::to_string(c.z()) + ")");
    }
    auto grid = GridT::create(bg);
    for (LeafT* leaf : leaves) grid->tree().addLeaf(leaf);
    return grid;
}

openvdb::math::Transform::Ptr transformFromArray(const nb::ndarray<const double, nb::shape<4, 4>, nb::c_contig>& t) {
    openvdb::Mat4d m;
    for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c) m(r, c) = t(r, c);
    return openvdb::math::Transform::createLinearTransform(m);
}

template <typename GridT>
openvdb::GridBase::Ptr gridFromArrays(Int3In ijk, FloatIn values, nb::handle background) {
    using ValueT = typename GridT::ValueType;
    constexpr int channels = channelsOf<ValueT>();
    const size_t n = ijk.shape(0);
    const bool shapeOk = ijk.shape(1) == 3 && (channels == 1 ? values.ndim() == 1 && values.shape(0) == n
                                                             : values.ndim() == 2 && values.shape(0) == n &&
                                                                   values.shape(1) == 3);
    if (!shapeOk) throw std::invalid_argument("ijk must be (N, 3) and values (N,) or (N, 3) for vector grids");
    ValueT bg;
    if constexpr (channels == 3) {
        auto v = nb::cast<std::vector<double>>(background);
        if (v.size() != 3) throw std::invalid_argument("vector background needs 3 numbers");
        bg = ValueT(v[0], v[1], v[2]);
    } else {
        bg = ValueT(nb::cast<double>(background));
    }
    nb::gil_scoped_release release;
    return buildGrid<GridT>(ijk.data(), values.data(), n, bg);
}

openvdb::GridBase::Ptr gridFromDict(const nb::dict& d) {
    const std::string type = nb::cast<std::string>(d["value_type"]);
    auto ijk = nb::cast<Int3In>(d["ijk"]);
    auto values = nb::cast<FloatIn>(d["values"]);
    nb::handle bg = d["background"];
    openvdb::GridBase::Ptr grid;
    if (type == "float") grid = gridFromArrays<openvdb::FloatGrid>(ijk, values, bg);
    else if (type == "double") grid = gridFromArrays<openvdb::DoubleGrid>(ijk, values, bg);
    else if (type == "vec3s") grid = gridFromArrays<openvdb::Vec3SGrid>(ijk, values, bg);
    else if (type == "vec3d") grid = gridFromArrays<openvdb::Vec3DGrid>(ijk, values, bg);
    else throw std::invalid_argument("unsupported value type " + type);

    grid->setName(nb::cast<std::string>(d["name"]));
    grid->setTransform(transformFromArray(nb::cast<nb::ndarray<const double, nb::shape<4, 4>, nb::c_contig>>(d["transform"])));
    metaMapFromPython(*grid, nb::cast<nb::dict>(d["metadata"]), nb::cast<nb::dict>(d["metadata_types"]));
    grid->setGridClass(openvdb::GridBase::stringToGridClass(nb::cast<std::string>(d["grid_class"])));
    if (grid->getGridClass() == openvdb::GRID_LEVEL_SET) {
        // Inactive voxels inside the surface must read as -background, as renderers and CSG tools expect. Done
        // before pruning: the fill rewrites tile values, and until the prune every active value sits in a leaf.
        if (auto g = openvdb::gridPtrCast<openvdb::FloatGrid>(grid)) openvdb::tools::signedFloodFill(g->tree());
        else if (auto g = openvdb::gridPtrCast<openvdb::DoubleGrid>(grid)) openvdb::tools::signedFloodFill(g->tree());
    }
    grid->pruneGrid();  // uniform leaves go back to tiles, as the source files store them
    grid->setSaveFloatAsHalf(nb::cast<bool>(d["save_half"]));
    if (!d["vector_type"].is_none())
        grid->setVectorType(openvdb::GridBase::stringToVecType(nb::cast<std::string>(d["vector_type"])));
    return grid;
}

// OpenVDB stamps each file with a random UUID (36 ASCII characters after the magic number, three version words and
// the grid-offsets flag). Only delayed loading uses it to tell files apart, so replace it with one derived from the
// rest of the file: the same grids then give the same bytes (reproducible sims and decompressions).
void makeUuidReproducible(const std::string& path) {
    constexpr std::streamoff kUuidAt = 8 + 4 + 4 + 4 + 1;
    constexpr size_t kUuidLength = 36;
    std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
    std::string head(kUuidAt + kUuidLength, '\0');
    if (!io.read(head.data(), std::streamsize(head.size()))) return;
    for (size_t dash : {8, 13, 18, 23})
        if (head[kUuidAt + dash] != '-') return;  // not the layout this expects: keep OpenVDB's UUID
    uint64_t h1 = 0xcbf29ce484222325ull, h2 = 0x84222325cbf29ce4ull;  // two FNV-1a streams
    char chunk[1 << 16];
    while (io.read(chunk, sizeof(chunk)) || io.gcount() > 0) {
        for (std::streamsize i = 0; i < io.gcount(); ++i) {
            h1 = (h1 ^ uint8_t(chunk[i])) * 0x100000001b3ull;
            h2 = (h2 ^ uint8_t(chunk[i])) * 0x100000001b3ull + 0x9e3779b97f4a7c15ull;
        }
    }
    char uuid[kUuidLength + 1];
    std::snprintf(uuid, sizeof(uuid), "%08x-%04x-%04x-%04x-%012llx", uint32_t(h1 >> 32), uint32_t((h1 >> 16) & 0xffff),
                  uint32_t(h1 & 0xffff), uint32_t(h2 >> 48), static_cast<unsigned long long>(h2 & 0xffffffffffffull));
    io.clear();
    io.seekp(kUuidAt);
    io.write(uuid, std::streamsize(kUuidLength));
}

void writeFile(const std::string& path, const nb::list& gridDicts, const nb::dict& fileMeta,
               const nb::dict& fileMetaTypes, const std::string& compression) {
    openvdb::GridPtrVec grids;
    for (nb::handle h : gridDicts) {
        const nb::dict d = nb::cast<nb::dict>(h);
        try {
            grids.push_back(gridFromDict(d));
        } catch (const std::exception& e) {
            throw std::invalid_argument("grid '" + nb::cast<std::string>(d["name"]) + "': " + e.what());
        }
    }
    openvdb::MetaMap meta;
    metaMapFromPython(meta, fileMeta, fileMetaTypes);
    uint32_t flags = openvdb::io::COMPRESS_ACTIVE_MASK;
    if (compression == "blosc") flags |= openvdb::io::COMPRESS_BLOSC;
    else if (compression == "zip") flags |= openvdb::io::COMPRESS_ZIP;
    else if (compression != "none") throw std::invalid_argument("unknown compression " + compression);
    nb::gil_scoped_release release;
    openvdb::io::File file(path);
    file.setCompression(flags);
    file.write(grids, meta);
    file.close();
    makeUuidReproducible(path);
}

// ---------------------------------------------------------------- NanoVDB

template <typename NanoBuildT>
nanovdb::GridHandle<> toNano(const openvdb::FloatGrid& grid, float tolerance) {
    nanovdb::OpenToNanoVDB<float, NanoBuildT, nanovdb::AbsDiff> converter;
    if constexpr (std::is_same_v<NanoBuildT, nanovdb::FpN>) converter.oracle() = nanovdb::AbsDiff(tolerance);
    return converter(grid);
}

nanovdb::GridHandle<> nanoHandle(const nb::dict& d, const std::string& codec, float tolerance) {
    auto base = gridFromDict(d);
    auto grid = openvdb::gridPtrCast<openvdb::FloatGrid>(base);
    if (!grid) throw std::invalid_argument("NanoVDB export takes float grids");
    nb::gil_scoped_release release;
    // NanoVDB 10's quantized converters crash on a tree without leaves; an empty grid has no values to quantize.
    if (codec == "float" || grid->tree().leafCount() == 0) return toNano<float>(*grid, tolerance);
    if (codec == "fp8") return toNano<nanovdb::Fp8>(*grid, tolerance);
    if (codec == "fp16") return toNano<nanovdb::Fp16>(*grid, tolerance);
    if (codec == "fpn") {
        if (!(tolerance > 0)) throw std::invalid_argument("fpn needs a positive tolerance");
        return toNano<nanovdb::FpN>(*grid, tolerance);
    }
    throw std::invalid_argument("unknown NanoVDB codec " + codec);
}

void writeNvdb(const std::string& path, const nb::dict& d, const std::string& codec, float tolerance) {
    auto handle = nanoHandle(d, codec, tolerance);
    nb::gil_scoped_release release;
    nanovdb::io::writeGrid(path, handle);
}

// Size of the in-memory NanoVDB grid and its values read back at the given voxels (for baselines).
template <typename NanoBuildT>
void sampleNano(const nanovdb::GridHandle<>& handle, const int32_t* ijk, size_t n, float* out) {
    const auto* grid = handle.grid<NanoBuildT>();
    if (!grid) throw std::runtime_error("NanoVDB grid type mismatch");
    tbb::parallel_for(tbb::blocked_range<size_t>(0, n), [&](const tbb::blocked_range<size_t>& r) {
        auto acc = grid->getAccessor();
        for (size_t i = r.begin(); i != r.end(); ++i)
            out[i] = acc.getValue(nanovdb::Coord(ijk[3 * i], ijk[3 * i + 1], ijk[3 * i + 2]));
    });
}

nb::tuple nanoRoundTrip(const nb::dict& d, const std::string& codec, float tolerance) {
    auto handle = nanoHandle(d, codec, tolerance);
    auto ijk = nb::cast<Int3In>(d["ijk"]);
    const size_t n = ijk.shape(0);
    float* out = new float[n];
    {
        nb::gil_scoped_release release;
        if (codec == "float" || handle.grid<float>()) sampleNano<float>(handle, ijk.data(), n, out);
        else if (codec == "fp8") sampleNano<nanovdb::Fp8>(handle, ijk.data(), n, out);
        else if (codec == "fp16") sampleNano<nanovdb::Fp16>(handle, ijk.data(), n, out);
        else sampleNano<nanovdb::FpN>(handle, ijk.data(), n, out);
    }
    return nb::make_tuple(size_t(handle.size()), makeValues(out, n, 1));
}

}  // namespace

NB_MODULE(_vdb, m) {
    openvdb::initialize();
    m.doc() = "Bulk OpenVDB I/O for neuralvox (float/double/vec3 grids as numpy arrays) and NanoVDB export.";
    m.attr("openvdb_version") = OPENVDB_LIBRARY_VERSION_STRING;
    m.attr("has_blosc") = openvdb::io::Archive::hasBloscCompression();
    m.def("list_grids", &listGrids, "path"_a, "(name, value type, class) of every grid, from the header.");
    m.def("read", &readFile, "path"_a, "names"_a.none(), "voxelize_tiles"_a, "max_voxels"_a,
          "(grid dicts, file metadata, file metadata types, skipped (name, reason)); refuses a grid over max_voxels.");
    m.def("grid_bytes", &gridBytes, "path"_a, "Bytes each grid occupies in the file, from its header.");
    m.def("grid_stats", &gridStats, "path"_a, "Active voxel/tile counts, bbox, class and type of every grid.");
    m.def("write", &writeFile, "path"_a, "grids"_a, "metadata"_a, "metadata_types"_a, "compression"_a,
          "Write grid dicts to a .vdb file.");
    m.def("write_nvdb", &writeNvdb, "path"_a, "grid"_a, "codec"_a = "float", "tolerance"_a = -1.0f,
          "Write one float grid dict as a NanoVDB file (codec float, fp8, fp16 or fpn).");
    m.def("nano_roundtrip", &nanoRoundTrip, "grid"_a, "codec"_a, "tolerance"_a = -1.0f,
          "(bytes of the NanoVDB grid, values read back at the grid's ijk).");
}
