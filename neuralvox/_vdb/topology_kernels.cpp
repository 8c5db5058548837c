// Loops of the topology coder (neuralvox/topology): the Morton octree of a voxel set, the coarse-to-fine walk with its
// contexts and adaptive counts, and the lexicographic expansion of the decoded leaves. The same integer and float64
// arithmetic as the numpy reference in octree.py / bitcoder.py / mixing.py / stream.py, one node at a time. Format 2
// (written): counts after every bit, the integer mixer and arithmetic coder here. Format 1 (read): the range coder stays
// constriction, called back from the walk with each chunk's probabilities. Built with -ffp-contract=off and without
// -ffast-math, so the probabilities (and hence the bytes) are the reference's on every machine. No OpenVDB here.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "ndarrays.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using Coords = nb::ndarray<const int32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using Nodes = nb::ndarray<const int64_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

// A new numpy array of the given shape holding (moving) ``values``.
template <typename T>
Out<T> owned(std::vector<T>&& values, std::vector<size_t> shape) {
    auto* held = new std::vector<T>(std::move(values));
    if (held->empty()) held->resize(1);  // a valid pointer for an empty array
    nb::capsule owner(held, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
    return Out<T>(held->data(), shape.size(), shape.data(), owner);
}

// ---- tables of octree.py: _OFFSETS, OCTANTS, _PARENT_OF, _OCTANT_OF, _PASS_MASKS, _FACES, POPCOUNT ----
constexpr int kSelf = 13;
constexpr int kFaces[6] = {4, 10, 12, 14, 16, 22};
constexpr int kFirstChunk = 16;
constexpr uint16_t kOccupied = 0x100;
constexpr double kIntraWeights[4] = {2.0, 2.0, 4.0, 8.0};
constexpr double kReferenceWeights[5] = {2.0, 2.0, 2.0, 4.0, 8.0};
// Format 2 (bitcoder.SequentialBitCoder): the same weights as integers, probabilities in 1/2**16.
constexpr int64_t kIntraWeightsInt[4] = {2, 2, 4, 8};
constexpr int64_t kReferenceWeightsInt[5] = {2, 2, 2, 4, 8};
constexpr int kProbabilityBits = 16;
constexpr int64_t kOne = int64_t(1) << kProbabilityBits, kLowest = 32;
// mixing.py: logits in 1/256, probabilities in 1/4096, mixer weights in 1/65536.
constexpr int kSquashKnots[33] = {1,    2,    3,    6,    10,   16,   27,   45,   73,   120,  194,
                                  310,  488,  747,  1101, 1546, 2047, 2549, 2994, 3348, 3607, 3785,
                                  3901, 3975, 4024, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094};
constexpr int kLogitLimit = 2047, kBias = 256, kLearningRate = 20, kCountBuckets[5] = {1, 3, 8, 20, 60};
constexpr int64_t kInitialWeight = 13107;
constexpr int kWeightSets = 2 * 4 * 6;
constexpr int64_t kPatternGroup = 2541865828329;  // 3**26
constexpr uint64_t kHash0 = 0x9E3779B97F4A7C15ull, kHash1 = 0xBF58476D1CE4E5B9ull;

int squash(int logit) {
    if (logit > kLogitLimit) return 4095;
    if (logit < -kLogitLimit) return 0;
    const int step = logit & 127, knot = (logit >> 7) + 16;
    return (kSquashKnots[knot] * (128 - step) + kSquashKnots[knot + 1] * step + 64) >> 7;
}

int bucket(int64_t total) {
    int b = 0;
    for (int edge : kCountBuckets) b += total >= edge;
    return b;
}

struct PassCell {
    int parent;
    uint8_t known, every;
};
struct FaceCell {
    int parent, child;
    bool undecided;  // child >= octant: occupied parents leave it unknown
};

struct Tables {
    int parent_of[8][27], octant_of[8][27];
    std::vector<PassCell> pass[8];
    FaceCell face[8][6];
    uint8_t popcount[256];
    int8_t highest_bit[256];
    int16_t stretch[4096];  // mixing.STRETCH

    Tables() {
        for (int p = 0; p < 4096; ++p) stretch[p] = kLogitLimit;
        for (int logit = -kLogitLimit, low = 0; logit <= kLogitLimit; ++logit) {
            const int high = squash(logit);
            for (int p = low; p <= high; ++p) stretch[p] = int16_t(logit);
            low = std::max(low, high + 1);
        }
        for (int v = 0; v < 256; ++v) {
            popcount[v] = uint8_t(__builtin_popcount(v));
            highest_bit[v] = int8_t(v ? 31 - __builtin_clz(v) : -1);
        }
        for (int o = 0; o < 8; ++o) {
            const int bit[3] = {(o >> 2) & 1, (o >> 1) & 1, o & 1};
            for (int d = 0; d < 27; ++d) {
                const int step[3] = {d / 9 - 1, d / 3 % 3 - 1, d % 3 - 1};
                int parent = 0, octant = 0;
                for (int a = 0; a < 3; ++a) {
                    const int s = bit[a] + step[a];  // -1..2
                    parent = parent * 3 + (s < 0 ? -1 : s / 2) + 1;
                    octant = octant * 2 + (s & 1);
                }
                parent_of[o][d] = parent;
                octant_of[o][d] = octant;
            }
            uint8_t known[27] = {}, every[27] = {};
            for (int d = 0; d < 27; ++d) {
                if (d == kSelf) continue;
                const int p = parent_of[o][d], c = octant_of[o][d];
                every[p] |= uint8_t(1 << c);
                if (c < o) known[p] |= uint8_t(1 << c);
            }
            for (int p = 0; p < 27; ++p)
                if (every[p]) pass[o].push_back({p, known[p], every[p]});
            for (int f = 0; f < 6; ++f)
                face[o][f] = {parent_of[o][kFaces[f]], octant_of[o][kFaces[f]], octant_of[o][kFaces[f]] >= o};
        }
    }
};
const Tables kT;

// ---- adaptive counts of bitcoder.BitCoder: one table per position in the context chain ----
struct Count {
    int64_t ones = 0, total = 0;
};

// Counts of context ids below ``dense`` in an array; larger ids (the finest contexts) through an open-addressing map
// to stable slots, so that slots taken before a rehash stay valid.
class CountTable {
  public:
    explicit CountTable(int64_t dense) : dense_(dense), counts_(size_t(dense)) {}

    int32_t slot(int64_t id) { return int32_t(id < dense_ ? id : hashedSlot(id)); }
    Count& operator[](int64_t slot) { return counts_[size_t(slot)]; }

  private:
    struct Entry {
        int64_t key = -1, slot = 0;
    };
    __attribute__((noinline)) int64_t hashedSlot(int64_t id) {
        if (2 * (used_ + 1) > int64_t(entries_.size())) grow();
        size_t at = hash(id);
        while (true) {
            Entry& entry = entries_[at];
            if (entry.key == id) return entry.slot;
            if (entry.key < 0) {
                entry = {id, int64_t(counts_.size())};
                counts_.emplace_back();
                ++used_;
                return entry.slot;
            }
            at = (at + 1) & (entries_.size() - 1);
        }
    }
    size_t hash(int64_t id) const { return size_t((uint64_t(id) * 0x9E3779B97F4A7C15ull) >> shift_); }
    void grow() {
        std::vector<Entry> old = std::move(entries_);
        const size_t size = old.empty() ? 1024 : 2 * old.size();
        entries_.assign(size, Entry{});
        shift_ = 64 - __builtin_ctzll(size);
        for (const Entry& entry : old) {
            if (entry.key < 0) continue;
            size_t at = hash(entry.key);
            while (entries_[at].key >= 0) at = (at + 1) & (size - 1);
            entries_[at] = entry;
        }
    }

    int64_t dense_;
    std::vector<Count> counts_;
    std::vector<Entry> entries_;
    int64_t used_ = 0;
    int shift_ = 64;
};

// ---- bitcoder.SequentialBitCoder's carry-less binary arithmetic coder on 32-bit integers ----
class ArithmeticCoder {
  public:
    ArithmeticCoder() = default;
    ArithmeticCoder(const uint8_t* data, size_t size) : data_(data), size_(size), decoding_(true) {
        for (int i = 0; i < 4; ++i) value_ = (value_ << 8) | next();
    }
    // Encodes ``bit`` (encoder) or returns the decoded bit, with ``probability`` of a one in 1/2**16.
    int code(int bit, int64_t probability) {
        const uint32_t middle = low_ + uint32_t((uint64_t(high_ - low_) * uint64_t(probability)) >> kProbabilityBits);
        if (decoding_) bit = value_ <= middle;
        if (bit)
            high_ = middle;
        else
            low_ = middle + 1;
        while (((low_ ^ high_) & 0xFF000000u) == 0) {
            if (decoding_)
                value_ = (value_ << 8) | next();
            else
                out_.push_back(uint8_t(high_ >> 24));
            low_ <<= 8;
            high_ = (high_ << 8) | 0xFF;
        }
        return bit;
    }
    // The coded bytes and the final one that puts any continuation (zeros) inside the last interval.
    std::vector<uint8_t> finish() {
        out_.push_back(uint8_t((uint64_t(low_) + 0xFFFFFF) >> 24));
        return std::move(out_);
    }
    // Bytes read, the zeros past the end included.
    size_t position() const { return pos_; }

  private:
    uint32_t next() { return pos_ < size_ ? data_[pos_++] : (++pos_, 0u); }

    const uint8_t* data_ = nullptr;
    size_t size_ = 0, pos_ = 0;
    bool decoding_ = false;
    uint32_t low_ = 0, high_ = 0xFFFFFFFFu, value_ = 0;
    std::vector<uint8_t> out_;
};

// ---- the walk of octree.walk ----
class Walk {
  public:
    Walk(int depth, const int64_t* limits, const std::vector<In<uint8_t>>* truth, const std::vector<In<uint8_t>>* ref_masks,
         const std::vector<In<int64_t>>* ref_first, int64_t count, nb::object coder, size_t max_finest_table,
         std::optional<ArithmeticCoder> sequential)
        : depth_(depth), max_finest_table_(max_finest_table), truth_(truth), ref_masks_(ref_masks), ref_first_(ref_first), count_(count),
          coder_(std::move(coder)), with_reference_(ref_masks != nullptr), sequential_(std::move(sequential)) {
        for (int a = 0; a < 3; ++a) limits_[a] = limits[a];
        // Ids below these are counted in arrays (octree._contexts: level group < 4, reference group < 32, score
        // <= 41, face < 729); the finest context (x 729 neighbour counts) goes through the map.
        const int64_t groups = with_reference_ ? 32 : 4, scored = groups * 42;
        if (with_reference_) tables_.emplace_back(4);
        for (int64_t dense : {groups, scored, scored * 729, int64_t(0)}) tables_.emplace_back(dense);
        scored_position_ = tables_.size() - 3;
        coarse_probability_.assign(size_t(scored), 0.0);
        coarse_chunk_.assign(size_t(scored), -1);
        weights_ = with_reference_ ? kReferenceWeights : kIntraWeights;
        int_weights_ = with_reference_ ? kReferenceWeightsInt : kIntraWeightsInt;
        patterns_ = with_reference_ ? 2 : 1;
        for (size_t i = 0; i < patterns_; ++i) pattern_tables_.emplace_back(0);
        mixer_inputs_ = tables_.size() + patterns_ + 1;
        mixer_.assign(size_t(kWeightSets) * mixer_inputs_, kInitialWeight);
    }

    nb::tuple run();

  private:
    void codeLevel(int level);
    void codeBits(std::vector<uint8_t>& bits);
    void codeBitsSequentially(std::vector<uint8_t>& bits);
    void patternSlots(int octant, const uint16_t* states, const int64_t* rows, size_t k, size_t picks);
    void flush();
    int64_t neighbour(int64_t node, int cell) const {
        if (!table_.empty()) return table_[size_t(node) * 27 + cell];
        const int o = up_octant_[size_t(node)];
        const int64_t above = up_table_[size_t(up_parent_[size_t(node)]) * 27 + kT.parent_of[o][cell]];
        return child_index_[size_t(above) * 8 + kT.octant_of[o][cell]];
    }

    int depth_;
    size_t max_finest_table_;
    int64_t limits_[3];
    const std::vector<In<uint8_t>>* truth_;
    const std::vector<In<uint8_t>>* ref_masks_;
    const std::vector<In<int64_t>>* ref_first_;
    int64_t count_;
    nb::object coder_;
    bool with_reference_;
    std::optional<ArithmeticCoder> sequential_;  // format 2: counts after every bit, coded here
    const int64_t* int_weights_;
    // Format 2's pattern contexts (octree._patterns) and the mixer's weight sets (mixing.Mixer).
    size_t patterns_ = 0, mixer_inputs_ = 0;
    std::vector<CountTable> pattern_tables_;
    std::vector<int32_t> pattern_slots_;  // patterns x symbols
    std::vector<int64_t> mixer_;
    int64_t group_ = 0;
    std::vector<CountTable> tables_;
    size_t scored_position_;  // the chain's scored context (it determines every coarser one)
    std::vector<double> coarse_probability_;  // per scored context: the chain's estimate up to it, this chunk
    std::vector<int64_t> coarse_chunk_;
    int64_t chunk_ = 0;
    const double* weights_;

    // The level being coded: m nodes (index m is the sentinel "no node").
    int64_t m_ = 1;
    std::vector<int64_t> coords_{0, 0, 0};
    std::vector<int32_t> table_;  // (m + 1) x 27 neighbours, or empty at the finest level (computed from the level above)
    std::vector<int32_t> up_table_, up_parent_, child_index_;
    std::vector<uint8_t> up_octant_;
    // Per node: its decoded child mask (low byte) and whether it is occupied (kOccupied), read together.
    std::vector<uint16_t> state_;
    std::vector<uint8_t> refmask_;
    std::vector<int64_t> ref_index_;
    std::vector<int64_t> nodes_;

    // One pass's coded symbols: their nodes (positions in nodes_), context slots (chain x symbols) and truth bits.
    std::vector<int64_t> picked_;
    std::vector<int32_t> slots_;  // below 2**31: the finest ids are below 17M
    // The encoder's pending symbols, flushed to the coder in large calls (the range coder is sequential).
    std::vector<int32_t> pending_bits_;
    std::vector<double> pending_probabilities_;
};

void Walk::flush() {
    if (pending_bits_.empty()) return;
    const size_t n = pending_bits_.size();
    auto bits = owned<int32_t>(std::move(pending_bits_), {n});
    auto probabilities = owned<double>(std::move(pending_probabilities_), {n});
    pending_bits_ = {};
    pending_probabilities_ = {};
    coder_(probabilities, bits);
}

int countLogit(const Count& n) {
    return kT.stretch[std::clamp<int64_t>((2 * n.ones + 1) * 4096 / (2 * n.total + 2), 1, 4095)];
}

// bitcoder.SequentialBitCoder.code: counts change after every bit; the chain, its finer contexts alone and the
// pattern contexts mixed.
void Walk::codeBitsSequentially(std::vector<uint8_t>& bits) {
    const size_t count = picked_.size(), chain = tables_.size(), inputs = mixer_inputs_;
    int logits[16];
    Count* seen[16];
    for (size_t k = 0; k < count; ++k) {
        int64_t p = kOne / 2;
        for (size_t c = 0; c < chain; ++c) {
            Count& n = tables_[c][slots_[c * count + k]];
            seen[c] = &n;
            p = (n.ones * kOne + int_weights_[c] * p) / (n.total + int_weights_[c]);
        }
        for (size_t c = 0; c < patterns_; ++c) seen[chain + c] = &pattern_tables_[c][pattern_slots_[c * count + k]];
        logits[0] = kT.stretch[std::clamp<int64_t>(std::clamp(p, kLowest, kOne - kLowest) >> 4, 1, 4095)];
        for (size_t c = 1; c < chain + patterns_; ++c) logits[c] = countLogit(*seen[c]);
        logits[inputs - 1] = kBias;
        const size_t sets[2] = {size_t(group_ * 6 + bucket(seen[chain - 1]->total)),
                                size_t((4 + group_) * 6 + bucket(seen[chain]->total))};
        int own[2];
        for (int s = 0; s < 2; ++s) {
            const int64_t* w = &mixer_[sets[s] * inputs];
            int64_t dot = 0;
            for (size_t i = 0; i < inputs; ++i) dot += w[i] * logits[i];
            own[s] = int(std::clamp<int64_t>(dot >> 16, -kLogitLimit, kLogitLimit));
        }
        const int64_t mixed = int64_t(squash((own[0] + own[1]) >> 1)) << 4;
        const int bit = sequential_->code(bits[k], std::clamp(mixed, kLowest, kOne - kLowest));
        bits[k] = uint8_t(bit);
        for (int s = 0; s < 2; ++s) {
            const int64_t error = int64_t(bit << 12) - squash(own[s]);
            int64_t* w = &mixer_[sets[s] * inputs];
            for (size_t i = 0; i < inputs; ++i) w[i] += (int64_t(logits[i]) * error * kLearningRate) >> 14;
        }
        for (size_t c = 0; c < chain + patterns_; ++c) {
            seen[c]->ones += bit;
            seen[c]->total += 1;
        }
    }
}

// octree._patterns for symbol k of a pass: the level group with the 26 neighbours' states, and with the reference's
// 27 cells, hashed.
void Walk::patternSlots(int octant, const uint16_t* states, const int64_t* rows, size_t k, size_t picks) {
    int64_t full = 0;
    uint64_t reference = 0;
    for (int d = 0; d < 27; ++d) {
        const int parent = kT.parent_of[octant][d], child = kT.octant_of[octant][d];
        if (d != kSelf) {
            const uint16_t here = states[parent];
            int64_t state = (here >> child) & 1;
            if (child >= octant && (here & kOccupied)) state = 2;
            full = full * 3 + state;
        }
        if (with_reference_) reference = (reference << 1) | ((refmask_[size_t(rows[parent])] >> child) & 1);
    }
    full += group_ * kPatternGroup;
    pattern_slots_[k] = pattern_tables_[0].slot(full);
    if (with_reference_)
        pattern_slots_[picks + k] = pattern_tables_[1].slot(int64_t(((uint64_t(full) * kHash0 ^ reference) * kHash1) >> 2));
}

// bitcoder.BitCoder.code: counts change only between chunks (16 symbols, then doubling).
void Walk::codeBits(std::vector<uint8_t>& bits) {
    if (sequential_) return codeBitsSequentially(bits);
    const int64_t count = int64_t(picked_.size());
    const size_t chain = tables_.size();
    std::vector<double> probabilities;
    for (int64_t start = 0; start < count;) {
        const int64_t stop = std::min(count, start + std::max<int64_t>(kFirstChunk, start));
        probabilities.assign(size_t(stop - start), 0.0);
        ++chunk_;
        for (int64_t k = start; k < stop; ++k) {
            // The chain up to the scored context depends on that context alone: computed once a chunk.
            const int64_t scored = slots_[scored_position_ * size_t(count) + size_t(k)];
            double p = 0.5;
            if (coarse_chunk_[size_t(scored)] == chunk_) {
                p = coarse_probability_[size_t(scored)];
            } else {
                for (size_t c = 0; c <= scored_position_; ++c) {
                    const Count& n = tables_[c][slots_[c * size_t(count) + size_t(k)]];
                    p = (double(n.ones) + weights_[c] * p) / (double(n.total) + weights_[c]);
                }
                coarse_probability_[size_t(scored)] = p;
                coarse_chunk_[size_t(scored)] = chunk_;
            }
            for (size_t c = scored_position_ + 1; c < chain; ++c) {
                const Count& n = tables_[c][slots_[c * size_t(count) + size_t(k)]];
                p = (double(n.ones) + weights_[c] * p) / (double(n.total) + weights_[c]);
            }
            probabilities[size_t(k - start)] = p;
        }
        if (truth_ != nullptr) {
            for (int64_t k = start; k < stop; ++k) pending_bits_.push_back(bits[size_t(k)]);
            pending_probabilities_.insert(pending_probabilities_.end(), probabilities.begin(), probabilities.end());
        } else {
            const size_t n = probabilities.size();
            nb::object decoded = coder_(owned<double>(std::move(probabilities), {n}));
            probabilities = {};
            auto values = nb::cast<In<int32_t>>(decoded);
            if (values.shape(0) != n) throw nb::value_error("topology stream is corrupted: the range decoder failed");
            for (size_t k = 0; k < n; ++k) bits[size_t(start) + k] = uint8_t(values.data()[k] == 1);
        }
        for (int64_t k = start; k < stop; ++k)
            for (size_t c = 0; c < chain; ++c) {
                Count& n = tables_[c][slots_[c * size_t(count) + size_t(k)]];
                n.ones += bits[size_t(k)];
                n.total += 1;
            }
        start = stop;
    }
    if (pending_bits_.size() >= (size_t(1) << 20)) flush();
}

// octree._code_level and octree._contexts: the child masks of nodes_ octant by octant into curmask_.
void Walk::codeLevel(int level) {
    const size_t count = nodes_.size();
    std::vector<uint8_t> inside(count), any_child(count, 0);
    std::vector<int32_t> parent_count(count, 0);
    const int64_t reach[3] = {limits_[0] >> level, limits_[1] >> level, limits_[2] >> level};
    for (size_t j = 0; j < count; ++j) {
        const int64_t node = nodes_[j];
        int32_t around = 0;
        for (int d = 0; d < 27; ++d) around += state_[size_t(neighbour(node, d))] >> 8;
        parent_count[j] = around;
        uint8_t in = 0;
        for (int o = 0; o < 8; ++o) {
            const int64_t* c = &coords_[size_t(node) * 3];
            if (2 * c[0] + ((o >> 2) & 1) <= reach[0] && 2 * c[1] + ((o >> 1) & 1) <= reach[1] &&
                2 * c[2] + (o & 1) <= reach[2])
                in |= uint8_t(1 << o);
        }
        inside[j] = in;
    }
    const In<uint8_t>* truth = truth_ != nullptr ? &(*truth_)[size_t(level) + 1] : nullptr;
    const int64_t base_group = std::min(level, 3);
    group_ = base_group;
    const size_t chain = tables_.size();
    std::vector<uint8_t> bits;
    for (int octant = 0; octant < 8; ++octant) {
        picked_.clear();
        for (size_t j = 0; j < count; ++j) {
            if (!((inside[j] >> octant) & 1)) continue;
            if (kT.highest_bit[inside[j]] == octant && !any_child[j]) continue;  // certain: the last child in the box
            picked_.push_back(int64_t(j));
        }
        const size_t picks = picked_.size();
        slots_.resize(chain * picks);
        pattern_slots_.resize(patterns_ * picks);
        bits.assign(picks, 0);
        for (size_t k = 0; k < picks; ++k) {
            const size_t j = size_t(picked_[k]);
            const int64_t node = nodes_[j];
            uint16_t states[27];
            int64_t rows[27];
            int32_t k1 = 0, k0 = 0, ref_count = 0;
            for (const PassCell& cell : kT.pass[octant]) {
                const int64_t row = neighbour(node, cell.parent);
                const uint16_t here = state_[size_t(row)];
                states[cell.parent] = here;
                rows[cell.parent] = row;
                const uint8_t mask = uint8_t(here);
                k1 += kT.popcount[mask & cell.known];
                k0 += (here & kOccupied) ? kT.popcount[uint8_t(~mask) & cell.known] : kT.popcount[cell.every];
                if (with_reference_) ref_count += kT.popcount[refmask_[size_t(row)] & cell.every];
            }
            int32_t face = 0, f1 = 0, f0 = 0;
            for (const FaceCell& cell : kT.face[octant]) {
                const uint16_t here = states[cell.parent];
                int32_t state = (here >> cell.child) & 1;
                if (cell.undecided && (here & kOccupied)) state = 2;
                face = face * 3 + state;
                f1 += state == 1;
                f0 += state == 0;
            }
            const int64_t score = (3 * (f1 - f0) + (k1 - f1) - (k0 - f0) + parent_count[j] + 60) / 3;  // >= 7
            const int64_t neighbours = int64_t(k1) * 27 + k0;
            int64_t group = base_group;
            int32_t* slot = &slots_[k];
            size_t c = 0;
            if (with_reference_) {
                const int64_t ref_self = (refmask_[size_t(node)] >> octant) & 1;
                group = group * 8 + ref_self * 4 + (ref_count >= 3) + (ref_count >= 13) + (ref_count >= 23);
                slot[0] = tables_[0].slot(base_group);
                c = 1;
            }
            const int64_t scored = group * 42 + score;
            slot[c * picks] = tables_[c].slot(group);
            slot[(c + 1) * picks] = tables_[c + 1].slot(scored);
            slot[(c + 2) * picks] = tables_[c + 2].slot(scored * 729 + face);
            slot[(c + 3) * picks] = tables_[c + 3].slot((group * 729 + face) * 729 + neighbours);
            if (truth != nullptr) bits[k] = (truth->data()[j] >> octant) & 1;
            if (sequential_) patternSlots(octant, states, rows, k, picks);
        }
        codeBits(bits);
        const uint8_t bit = uint8_t(1 << octant);
        for (size_t k = 0; k < picks; ++k)
            if (bits[k]) {
                state_[size_t(nodes_[size_t(picked_[k])])] |= bit;
                any_child[size_t(picked_[k])] = 1;
            }
        for (size_t j = 0; j < count; ++j)  // the certain last children
            if (((inside[j] >> octant) & 1) && kT.highest_bit[inside[j]] == octant && !any_child[j]) {
                state_[size_t(nodes_[j])] |= bit;
                any_child[j] = 1;
            }
    }
}

nb::tuple Walk::run() {
    table_.assign(2 * 27, 1);
    table_[kSelf] = 0;
    state_ = {kOccupied, 0};
    ref_index_ = {with_reference_ ? 0 : -1};
    for (int level = depth_ - 1; level >= 0; --level) {
        const size_t m = size_t(m_);
        refmask_.assign(m + 1, 0);
        if (with_reference_) {
            const In<uint8_t>& masks = (*ref_masks_)[size_t(level) + 1];
            for (size_t i = 0; i < m; ++i)
                if (ref_index_[i] >= 0) refmask_[i] = masks.data()[ref_index_[i]];
        }
        nodes_.clear();
        for (size_t i = 0; i < m; ++i)
            if (state_[i] & kOccupied) nodes_.push_back(int64_t(i));
        codeLevel(level);
        if (level == 0) {
            flush();
            std::vector<uint8_t> masks(m);
            for (size_t i = 0; i < m; ++i) masks[i] = uint8_t(state_[i]);
            auto coords = owned<int64_t>(std::move(coords_), {m, 3});
            auto leaves = owned<uint8_t>(std::move(masks), {m});
            if (!sequential_) return nb::make_tuple(coords, leaves);
            if (truth_ == nullptr) return nb::make_tuple(coords, leaves, sequential_->position());
            const std::vector<uint8_t> coded = sequential_->finish();
            return nb::make_tuple(coords, leaves, nb::bytes(reinterpret_cast<const char*>(coded.data()), coded.size()));
        }
        // The next level's nodes: children of the coded set's and the reference's nodes, in Morton order.
        std::vector<int32_t> parent;
        std::vector<uint8_t> octant;
        size_t children = 0;
        for (size_t i = 0; i < m; ++i) children += kT.popcount[uint8_t(state_[i]) | refmask_[i]];
        parent.reserve(children);
        octant.reserve(children);
        for (size_t i = 0; i < m; ++i) {
            const uint8_t occupied = uint8_t(state_[i]) | refmask_[i];
            for (int o = 0; o < 8; ++o)
                if ((occupied >> o) & 1) {
                    parent.push_back(int32_t(i));
                    octant.push_back(uint8_t(o));
                }
        }
        const size_t n = parent.size();
        std::vector<int32_t> child_index((m + 1) * 8, int32_t(n));
        for (size_t j = 0; j < n; ++j) child_index[size_t(parent[j]) * 8 + octant[j]] = int32_t(j);
        if (level == 1 && n > max_finest_table_) {
            up_table_ = std::move(table_);
            table_ = {};
            up_parent_ = parent;
            up_octant_ = octant;
            child_index_ = std::move(child_index);
        } else {
            std::vector<int32_t> next((n + 1) * 27, int32_t(n));
            for (size_t j = 0; j < n; ++j) {
                const int o = octant[j];
                const int32_t* above = &table_[size_t(parent[j]) * 27];
                for (int d = 0; d < 27; ++d)
                    next[j * 27 + size_t(d)] = child_index[size_t(above[kT.parent_of[o][d]]) * 8 + kT.octant_of[o][d]];
            }
            table_ = std::move(next);
        }
        std::vector<uint16_t> state(n + 1, 0);
        int64_t occupied = 0;
        for (size_t j = 0; j < n; ++j) {
            const bool in = (state_[size_t(parent[j])] >> octant[j]) & 1;
            state[j] = in ? kOccupied : 0;
            occupied += in;
        }
        if (occupied > count_)
            throw nb::value_error(("topology stream is corrupted: more than " + std::to_string(count_) +
                                   " occupied nodes at level " + std::to_string(level))
                                      .c_str());
        state_ = std::move(state);
        if (with_reference_) {
            const In<int64_t>& first = (*ref_first_)[size_t(level) + 1];
            std::vector<int64_t> child_ref(n, -1);
            for (size_t j = 0; j < n; ++j) {
                const size_t p = size_t(parent[j]);
                if (!((refmask_[p] >> octant[j]) & 1)) continue;
                const uint8_t below = refmask_[p] & uint8_t((1 << octant[j]) - 1);
                child_ref[j] = first.data()[ref_index_[p]] + kT.popcount[below];
            }
            ref_index_ = std::move(child_ref);
        }
        std::vector<int64_t> coords(n * 3);
        for (size_t j = 0; j < n; ++j) {
            const int64_t* c = &coords_[size_t(parent[j]) * 3];
            coords[j * 3] = 2 * c[0] + ((octant[j] >> 2) & 1);
            coords[j * 3 + 1] = 2 * c[1] + ((octant[j] >> 1) & 1);
            coords[j * 3 + 2] = 2 * c[2] + (octant[j] & 1);
        }
        coords_ = std::move(coords);
        m_ = int64_t(n);
    }
    throw std::logic_error("unreachable: the walk returns at level 0");
}

nb::tuple walk(int depth, In<int64_t> limits, std::optional<std::vector<In<uint8_t>>> truth,
               std::optional<std::vector<In<uint8_t>>> ref_masks, std::optional<std::vector<In<int64_t>>> ref_first,
               int64_t count, nb::object coder, size_t max_finest_table, bool sequential,
               std::optional<nb::bytes> payload) {
    if (depth < 1 || limits.shape(0) != 3) throw nb::value_error("walk needs depth >= 1 and 3 limits");
    if (truth && truth->size() != size_t(depth) + 1) throw nb::value_error("truth needs depth + 1 mask levels");
    if (ref_masks.has_value() != ref_first.has_value() ||
        (ref_masks && (ref_masks->size() != size_t(depth) + 1 || ref_first->size() != size_t(depth) + 1)))
        throw nb::value_error("a reference needs depth + 1 mask and first-child levels");
    if (!sequential && coder.is_none()) throw nb::value_error("format 1 needs a range coder callback");
    if (sequential && !truth && !payload) throw nb::value_error("decoding format 2 needs the payload");
    std::optional<ArithmeticCoder> arithmetic;
    if (sequential)
        arithmetic = truth ? ArithmeticCoder()
                           : ArithmeticCoder(reinterpret_cast<const uint8_t*>(payload->c_str()), payload->size());
    Walk run(depth, limits.data(), truth ? &*truth : nullptr, ref_masks ? &*ref_masks : nullptr,
             ref_first ? &*ref_first : nullptr, count, std::move(coder), max_finest_table, std::move(arithmetic));
    return run.run();
}

// ---- Morton keys, radix sort, octree levels (octree.morton_keys / Octree.from_keys) ----
uint64_t spread(uint64_t v) {
    v &= 0x1FFFFF;
    v = (v | (v << 32)) & 0x1F00000000FFFFull;
    v = (v | (v << 16)) & 0x1F0000FF0000FFull;
    v = (v | (v << 8)) & 0x100F00F00F00F00Full;
    v = (v | (v << 4)) & 0x10C30C30C30C30C3ull;
    return (v | (v << 2)) & 0x1249249249249249ull;
}

// Stable LSD radix sort of ``keys`` below 2**bits, carrying ``order`` along when it is not empty.
void radixSort(std::vector<uint64_t>& keys, std::vector<int64_t>& order, int bits) {
    constexpr int kDigit = 11;
    const size_t n = keys.size();
    std::vector<uint64_t> keys_out(n);
    std::vector<int64_t> order_out(order.size());
    std::vector<size_t> histogram(size_t(1) << kDigit);
    for (int shift = 0; shift < bits; shift += kDigit) {
        std::fill(histogram.begin(), histogram.end(), 0);
        for (uint64_t key : keys) ++histogram[(key >> shift) & ((1u << kDigit) - 1)];
        if (std::any_of(histogram.begin(), histogram.end(), [n](size_t c) { return c == n; })) continue;
        size_t sum = 0;
        for (size_t& c : histogram) sum += std::exchange(c, sum);
        for (size_t i = 0; i < n; ++i) {
            const size_t at = histogram[(keys[i] >> shift) & ((1u << kDigit) - 1)]++;
            keys_out[at] = keys[i];
            if (!order.empty()) order_out[at] = order[i];
        }
        keys.swap(keys_out);
        order.swap(order_out);
    }
}

int bitLength(uint64_t v) { return v ? 64 - __builtin_clzll(v) : 0; }

// The octree of ``coords - origin`` (each below 2**depth <= 2**21): per level 1..depth the child masks and, with
// ``children``, where each node's children start (levels above 1), the stable Morton order of the rows (with
// ``order``) and whether two rows are the same voxel.
nb::tuple mortonOctree(Coords coords, In<int64_t> origin, int depth, bool children, bool order) {
    if (depth < 0 || depth > 21 || coords.shape(1) != 3 || origin.shape(0) != 3)
        throw nb::value_error("morton_octree needs (N, 3) coordinates, 3 origin values and depth <= 21");
    const size_t n = coords.shape(0);
    std::vector<uint64_t> keys(n);
    std::vector<int64_t> rows;
    const int32_t* c = coords.data();
    const int64_t* o = origin.data();
    for (size_t i = 0; i < n; ++i)
        keys[i] = (spread(uint64_t(c[3 * i] - o[0])) << 2) | (spread(uint64_t(c[3 * i + 1] - o[1])) << 1) |
                  spread(uint64_t(c[3 * i + 2] - o[2]));
    if (order) {
        rows.resize(n);
        for (size_t i = 0; i < n; ++i) rows[i] = int64_t(i);
    }
    bool duplicate = false;
    const uint64_t cube = uint64_t(1) << (3 * depth);
    if (!order && cube / 64 <= n) {  // a cube at most 64 cells a voxel: sort through a bitmap of it
        std::vector<uint64_t> bitmap((cube + 63) / 64, 0);
        for (uint64_t key : keys) {
            const uint64_t bit = uint64_t(1) << (key & 63);
            duplicate |= (bitmap[key >> 6] & bit) != 0;
            bitmap[key >> 6] |= bit;
        }
        size_t at = 0;
        for (size_t w = 0; w < bitmap.size(); ++w)
            for (uint64_t word = bitmap[w]; word; word &= word - 1) keys[at++] = w * 64 + uint64_t(__builtin_ctzll(word));
        keys.resize(at);  // without the duplicates, which the caller refuses
    } else {
        radixSort(keys, rows, 3 * depth);
        for (size_t i = 1; i < n && !duplicate; ++i) duplicate = keys[i] == keys[i - 1];
    }
    nb::list masks, first_child;
    masks.append(owned<uint8_t>({}, {0}));
    first_child.append(owned<int64_t>({}, {0}));
    for (int level = 1; level <= depth; ++level) {
        const bool keep_starts = children && level > 1;
        std::vector<uint8_t> level_masks(keys.size());
        std::vector<int64_t> starts(keep_starts ? keys.size() : 0);
        size_t kept = 0;
        uint64_t previous = ~uint64_t(0);  // no parent: keys are below 2**63
        for (size_t i = 0; i < keys.size(); ++i) {
            const uint8_t bit = uint8_t(1 << (keys[i] & 7));
            const uint64_t parent = keys[i] >> 3;
            if (parent != previous) {
                previous = parent;
                keys[kept] = parent;
                if (keep_starts) starts[kept] = int64_t(i);
                ++kept;
            }
            level_masks[kept - 1] |= bit;
        }
        keys.resize(kept);
        level_masks.resize(kept);
        masks.append(owned<uint8_t>(std::move(level_masks), {kept}));
        const size_t first_count = keep_starts ? kept : 0;
        starts.resize(first_count);
        first_child.append(owned<int64_t>(std::move(starts), {first_count}));
    }
    nb::object sorted = order ? nb::cast(owned<int64_t>(std::move(rows), {n})) : nb::none();
    return nb::make_tuple(masks, first_child, sorted, duplicate);
}

// stream._canonical for boxes whose voxel count fits int64: the children of ``parents`` (child ``masks``) as
// absolute int32 coordinates in lexicographic (i, j, k) order.
Out<int32_t> canonical(Nodes parents, In<uint8_t> masks, In<int64_t> origin, In<int64_t> extent) {
    const size_t m = parents.shape(0);
    if (parents.shape(1) != 3 || masks.shape(0) != m || origin.shape(0) != 3 || extent.shape(0) != 3)
        throw nb::value_error("canonical needs (M, 3) parents, M masks, 3 origin and 3 extent values");
    const uint64_t span_j = uint64_t(extent.data()[1]) + 1, span_k = uint64_t(extent.data()[2]) + 1;
    const uint64_t volume = (uint64_t(extent.data()[0]) + 1) * span_j * span_k;
    size_t n = 0;
    for (size_t i = 0; i < m; ++i) n += __builtin_popcount(masks.data()[i]);
    std::vector<uint64_t> keys;
    keys.reserve(n);
    const int64_t* p = parents.data();
    for (size_t i = 0; i < m; ++i)
        for (int o = 0; o < 8; ++o)
            if ((masks.data()[i] >> o) & 1) {
                const uint64_t x = uint64_t(2 * p[3 * i] + ((o >> 2) & 1)), y = uint64_t(2 * p[3 * i + 1] + ((o >> 1) & 1)),
                               z = uint64_t(2 * p[3 * i + 2] + (o & 1));
                keys.push_back((x * span_j + y) * span_k + z);
            }
    if (volume / 64 <= n) {  // a box at most 64 cells a voxel: sort through a bitmap of it (the keys are distinct)
        std::vector<uint64_t> bitmap((volume + 63) / 64, 0);
        for (uint64_t key : keys) bitmap[key >> 6] |= uint64_t(1) << (key & 63);
        size_t at = 0;
        for (size_t w = 0; w < bitmap.size(); ++w)
            for (uint64_t word = bitmap[w]; word; word &= word - 1) keys[at++] = w * 64 + uint64_t(__builtin_ctzll(word));
    } else {
        std::vector<int64_t> no_order;
        radixSort(keys, no_order, bitLength(volume - 1));
    }
    std::vector<int32_t> voxels(3 * n);
    for (size_t i = 0; i < n; ++i) {
        voxels[3 * i] = int32_t(int64_t(keys[i] / (span_j * span_k)) + origin.data()[0]);
        voxels[3 * i + 1] = int32_t(int64_t(keys[i] / span_k % span_j) + origin.data()[1]);
        voxels[3 * i + 2] = int32_t(int64_t(keys[i] % span_k) + origin.data()[2]);
    }
    return owned<int32_t>(std::move(voxels), {n, 3});
}

// The smallest and largest coordinate along each axis of (N, 3) voxels (N > 0), as two int64 arrays.
nb::tuple coordinateRange(Coords coords) {
    if (coords.shape(0) == 0 || coords.shape(1) != 3) throw nb::value_error("coordinate_range needs (N > 0, 3) voxels");
    std::vector<int64_t> low(3, INT32_MAX), high(3, INT32_MIN);
    const int32_t* c = coords.data();
    for (size_t i = 0; i < coords.shape(0); ++i)
        for (size_t a = 0; a < 3; ++a) {
            low[a] = std::min<int64_t>(low[a], c[3 * i + a]);
            high[a] = std::max<int64_t>(high[a], c[3 * i + a]);
        }
    return nb::make_tuple(owned<int64_t>(std::move(low), {3}), owned<int64_t>(std::move(high), {3}));
}

}  // namespace

NB_MODULE(_topology, m) {
    m.doc() = "Compiled loops of neuralvox.topology (same bytes as the numpy reference).";
    m.def("walk", &walk, "depth"_a, "limits"_a, "truth"_a.none(), "reference_masks"_a.none(),
          "reference_first_child"_a.none(), "count"_a, "coder"_a.none(), "max_finest_table"_a = size_t(1) << 20,
          "sequential"_a = false, "payload"_a.none() = nb::none(),
          "octree.walk: code the levels of ``truth`` (masks per level) or decode them. Format 1: ``coder(probabilities, "
          "bits)`` encodes, ``coder(probabilities)`` returns decoded bits. Format 2 (``sequential``): counts after every "
          "bit and the arithmetic coder here; decoding reads ``payload``. Up to ``max_finest_table`` nodes the finest level "
          "gets a neighbour table (108 bytes a node); above, neighbours are computed from the level above as the walk goes. "
          "Returns (coords (M, 3) int64, masks (M,) uint8), and for format 2 the coded bytes (encoding) or how many bytes "
          "decoding read, the zeros past the end included.");
    m.def("morton_octree", &mortonOctree, "coords"_a, "origin"_a, "depth"_a, "children"_a, "order"_a,
          "(masks per level, first child per level, stable Morton order or None, has duplicates).");
    m.def("coordinate_range", &coordinateRange, "coords"_a, "(low, high) per axis of (N, 3) int32 voxels, int64.");
    m.def("canonical", &canonical, "parents"_a, "masks"_a, "origin"_a, "extent"_a,
          "The children of parents as (N, 3) int32 absolute coordinates in lexicographic order.");
}
