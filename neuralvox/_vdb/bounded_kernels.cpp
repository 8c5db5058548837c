// Per-pass loops of the bounded value codec (neuralvox/codec): the same arithmetic as the numpy reference in
// interpolation.py / bounded.py / arm.py, one voxel at a time instead of one array operation at a time. Built with
// -ffp-contract=off and without -ffast-math: every float64 operation is one IEEE operation in the reference's order,
// so the results are bit-identical to numpy's on any machine. No OpenVDB here: this module builds wherever nanobind does.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/vector.h>

#include "ndarrays.h"

#include <algorithm>
#include <cmath>
#include <climits>
#include <cstdint>
#include <utility>
#include <stdexcept>
#include <vector>

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using Features = nb::ndarray<const int64_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

constexpr int kSupportOneSide = 1, kSupportLinear = 2, kSupportCubic = 3;
constexpr int kFeatures = 15;
constexpr double kRoundMagic = 6755399441055744.0;  // 2**52 + 2**51

// A new numpy array of the given shape that owns its buffer: zeroed, or left for the caller to fill whole.
template <typename T>
Out<T> owned(std::vector<size_t> shape, bool zeroed = true) {
    size_t n = 1;
    for (size_t s : shape) n *= s;
    T* data = zeroed ? new T[n > 0 ? n : 1]() : new T[n > 0 ? n : 1];
    nb::capsule owner(data, [](void* p) noexcept { delete[] static_cast<T*>(p); });
    return Out<T>(data, shape.size(), shape.data(), owner);
}

// numpy's searchsorted(thresholds, x, side="right"): how many thresholds are <= x (NaN sorts last: all of them).
// The tables are short (15 or 31 entries): a branch-free count beats a binary search.
int64_t bucket(const double* thresholds, size_t count, double x) {
    if (std::isnan(x)) return int64_t(count);
    int64_t below = 0;
    for (size_t j = 0; j < count; ++j) below += thresholds[j] <= x;
    return below;
}

double sign(double x) { return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : x); }

// interpolation.predict for a pass with odd axes: rows of options (mean linear, mean cubic if several axes, then
// linear and cubic per axis), the support class and the neighbours' spread of each voxel.
nb::tuple predictPass(In<float> values, In<bool> known, In<int64_t> flat, std::vector<int64_t> reaches,
                      double fallback, double quantum_edge, double band) {
    const size_t n = flat.shape(0), axes = reaches.size();
    const size_t options = axes == 1 ? 2 : 2 + 2 * axes;
    auto out = owned<double>({options, n}, false);  // every element is written below
    auto support = owned<int8_t>({n}, false);
    auto spread = owned<double>({n}, false);
    const float* v = values.data();
    const bool* k = known.data();
    const int64_t* f = flat.data();
    double* opt = out.data();
    {
        nb::gil_scoped_release release;
        for (size_t i = 0; i < n; ++i) {
            double linear_sum = 0.0, cubic_sum = 0.0, spread_sum = 0.0, two_sided = 0.0, weight_sum = 0.0;
            double one_sided = NAN;
            int8_t best = 0;
            for (size_t a = 0; a < axes; ++a) {
                const int64_t c = f[i], r = reaches[a];
                const double v0 = v[c - 3 * r], v1 = v[c - r], v2 = v[c + r], v3 = v[c + 3 * r];
                const bool k0 = k[c - 3 * r], k1 = k[c - r], k2 = k[c + r], k3 = k[c + 3 * r];
                const bool both = k1 && k2, cubic_ok = both && k0 && k3;
                double side = k1 ? v1 : (k2 ? v2 : fallback);
                if (band != 0.0 && (k1 != k2)) side = 0.5 * (side + sign(side) * band);
                const double linear = both ? (v1 + v2) * 0.5 : side;
                const double cubic = cubic_ok ? (9.0 * (v1 + v2) - (v0 + v3)) * 0.0625 : linear;
                const double s = both ? std::fabs(v2 - v1) + (cubic_ok ? 0.5 * (std::fabs(v1 - v0) + std::fabs(v3 - v2))
                                                                       : 0.0)
                                      : 0.0;
                const double softened = s + quantum_edge;
                const double weight = both ? 1.0 / (softened * softened) : 0.0;
                linear_sum += weight * linear;
                cubic_sum += weight * cubic;
                weight_sum += weight;
                spread_sum += s;
                two_sided += both ? 1.0 : 0.0;
                if (std::isnan(one_sided) && (k1 || k2)) one_sided = side;
                const int8_t axis_support = cubic_ok ? kSupportCubic
                                            : both   ? kSupportLinear
                                            : (k1 || k2) ? kSupportOneSide
                                                         : 0;
                best = std::max(best, axis_support);
                const size_t row = axes == 1 ? 0 : 2 + 2 * a;
                opt[row * n + i] = linear;
                opt[(row + 1) * n + i] = cubic;
            }
            support.data()[i] = best;
            if (axes == 1) {
                spread.data()[i] = spread_sum;
                continue;
            }
            const double lacking = std::isnan(one_sided) ? fallback : one_sided;
            const double weights = two_sided > 0.0 ? weight_sum : 1.0;
            opt[i] = two_sided > 0.0 ? linear_sum / weights : lacking;
            opt[n + i] = two_sided > 0.0 ? cubic_sum / weights : lacking;
            spread.data()[i] = spread_sum / std::max(two_sided, 1.0);
        }
    }
    return nb::make_tuple(out, support, spread);
}

// The smallest and largest coordinate along each axis of (N, 3) voxels (N > 0).
nb::tuple coordinateRange(nb::ndarray<const int32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu> ijk) {
    std::vector<int64_t> low(3, INT32_MAX), high(3, INT32_MIN);
    for (size_t i = 0; i < ijk.shape(0); ++i)
        for (size_t d = 0; d < 3; ++d) {
            low[d] = std::min<int64_t>(low[d], ijk.data()[3 * i + d]);
            high[d] = std::max<int64_t>(high[d], ijk.data()[3 * i + d]);
        }
    return nb::make_tuple(nb::make_tuple(low[0], low[1], low[2]), nb::make_tuple(high[0], high[1], high[2]));
}

// interpolation.plan_levels per voxel: its index in the box and its pass key ((max_level - level) * 8 + the rank of
// its odd-axis pattern in the visiting order, `rank`).
nb::tuple planKeys(nb::ndarray<const int32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu> ijk,
                   std::vector<int64_t> origin, std::vector<int64_t> shape, int64_t margin, int64_t max_level,
                   std::vector<int64_t> rank) {
    const size_t n = ijk.shape(0);
    auto flat = owned<int64_t>({n});
    auto key = owned<int64_t>({n});
    const int64_t mask = (int64_t(1) << max_level) - 1;
    for (size_t i = 0; i < n; ++i) {
        int64_t local[3], level = max_level;
        int pattern_exponent[3];
        for (int d = 0; d < 3; ++d) {
            local[d] = int64_t(ijk.data()[3 * i + d]) - origin[d];
            const int64_t low = local[d] & mask;
            pattern_exponent[d] = low ? __builtin_ctzll(uint64_t(low)) : int(max_level);
            level = std::min<int64_t>(level, pattern_exponent[d]);
        }
        int pattern = 0;
        for (int d = 0; d < 3; ++d) pattern |= (pattern_exponent[d] == level) << d;
        if (level == max_level) pattern = 0;
        flat.data()[i] = ((local[0] + margin) * shape[1] + local[1] + margin) * shape[2] + local[2] + margin;
        key.data()[i] = (max_level - level) * 8 + rank[size_t(pattern)];
    }
    return nb::make_tuple(flat, key);
}

// bounded._contexts: (level class * 4 + support) * buckets + the spread's bucket among the scaled thresholds.
Out<int64_t> countingContexts(In<int8_t> support, In<double> spread, In<double> thresholds, int64_t level,
                              int64_t buckets) {
    const size_t n = support.shape(0);
    auto out = owned<int64_t>({n});
    for (size_t i = 0; i < n; ++i)
        out.data()[i] = (level * 4 + support.data()[i]) * buckets +
                        bucket(thresholds.data(), thresholds.shape(0), spread.data()[i]);
    return out;
}

// Python's floor division of integers (numpy's // on int64).
int64_t floorDiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// What arm.features reads of a pass (neighbour codes read at flat +- reaches).
struct FeatureInputs {
    const int8_t* support;
    const double* spread;
    const double* choice;
    const int8_t* codes;
    const int64_t* flat;
    std::vector<int64_t> reaches;
    const double* spread_thresholds;
    size_t spread_count;
    int64_t magnitude_bucket[129];  // the code canvas holds int8 codes: |code| <= 128
    int64_t level_column;
    double reference;
    int64_t sign_clip;
};

// arm.features of voxels begin .. end of a pass into rows (end - begin, 15).
void featureRows(const FeatureInputs& in, size_t begin, size_t end, int64_t* rows) {
    const size_t axes = in.reaches.size(), sides = 2 * axes;
    std::fill(rows, rows + (end - begin) * kFeatures, int64_t(0));
    for (size_t i = begin; i < end; ++i) {
        int64_t* row = rows + (i - begin) * kFeatures;
        row[0] = bucket(in.spread_thresholds, in.spread_count, in.spread[i]);
        row[1 + std::min<int64_t>(in.support[i], kSupportCubic)] = 1;
        row[in.level_column] = 1;
        row[10] = int64_t(axes);
        if (axes) {
            int64_t magnitude_sum = 0, magnitude_max = 0, sign_sum = 0;
            for (size_t a = 0; a < axes; ++a)
                for (int64_t side : {-1, 1}) {
                    const int64_t code = in.codes[in.flat[i] + side * in.reaches[a]];
                    const int64_t m = in.magnitude_bucket[code < 0 ? -code : code];
                    magnitude_sum += m;
                    magnitude_max = std::max(magnitude_max, m);
                    sign_sum += std::clamp(code, -in.sign_clip, in.sign_clip);
                }
            row[11] = floorDiv(magnitude_sum * 4, int64_t(sides));
            row[12] = magnitude_max;
            row[13] = floorDiv(sign_sum * 4, int64_t(sides));
        }
        const double distance = in.choice[i] - in.reference;
        row[14] = int64_t(sign(distance)) * bucket(in.spread_thresholds, in.spread_count, std::fabs(distance));
    }
}

FeatureInputs featureInputs(In<int8_t> support, In<double> spread, In<double> choice, In<int8_t> codes,
                            In<int64_t> flat, std::vector<int64_t> reaches, In<double> spread_thresholds,
                            In<double> magnitude_thresholds, int64_t level_column, double reference,
                            int64_t sign_clip) {
    const size_t n = support.shape(0);
    if (spread.shape(0) != n || choice.shape(0) != n || (!reaches.empty() && flat.shape(0) != n))
        throw std::invalid_argument("a pass's feature inputs differ in length");
    FeatureInputs in{support.data(), spread.data(), choice.data(), codes.data(), flat.data(), std::move(reaches),
                     spread_thresholds.data(), spread_thresholds.shape(0), {}, level_column, reference, sign_clip};
    for (int64_t m = 0; m <= 128; ++m)
        in.magnitude_bucket[m] = bucket(magnitude_thresholds.data(), magnitude_thresholds.shape(0), double(m));
    return in;
}

// arm.features: the (N, 15) integer features of a pass.
Out<int64_t> armFeatures(In<int8_t> support, In<double> spread, In<double> choice, In<int8_t> codes, In<int64_t> flat,
                         std::vector<int64_t> reaches, In<double> spread_thresholds, In<double> magnitude_thresholds,
                         int64_t level_column, double reference, int64_t sign_clip) {
    const FeatureInputs in = featureInputs(support, spread, choice, codes, flat, std::move(reaches), spread_thresholds,
                                           magnitude_thresholds, level_column, reference, sign_clip);
    const size_t n = support.shape(0);
    auto out = owned<int64_t>({n, size_t(kFeatures)});
    nb::gil_scoped_release release;
    featureRows(in, 0, n, out.data());
    return out;
}

// An arithmetic shift: values * 2**-bits rounded down (arm._shift).
int64_t shift(int64_t value, int64_t bits) { return bits >= 0 ? value >> bits : value << -bits; }

// y = x @ w for one row x (inputs) and w (inputs, outputs) row-major. Its values are exact integers, so the result
// is the same whatever the instruction set: one clone uses AVX2 where the CPU has it.
__attribute__((target_clones("avx2", "default"))) void rowProduct(const double* __restrict x, size_t inputs,
                                                                  const double* __restrict w, size_t outputs,
                                                                  double* __restrict y) {
    for (size_t b = 0; b < outputs; ++b) y[b] = 0.0;
    for (size_t a = 0; a < inputs; ++a)
        for (size_t b = 0; b < outputs; ++b) y[b] += x[a] * w[a * outputs + b];
}

// The context model's integer MLP (ArmWeights.lattice). Its integers stay below 2**53, so the float64 products and
// sums are exact in any order, as in the reference's BLAS product.
struct Mlp {
    static constexpr size_t kMaxWidth = 64;
    std::vector<std::vector<double>> weights;
    std::vector<std::vector<size_t>> shapes;
    std::vector<std::vector<int64_t>> biases;
    std::vector<int64_t> exponents;
    int64_t fraction_bits, mu_steps, scales, zero_levels;

    // The lattice index of one row of features.
    int64_t lattice(const int64_t* features, size_t width) const {
        double x[kMaxWidth], product[kMaxWidth];
        int64_t acc[kMaxWidth];
        for (size_t a = 0; a < width; ++a) x[a] = double(features[a]);
        int64_t scale = 0;
        for (size_t l = 0; l < weights.size(); ++l) {
            const size_t inputs = shapes[l][0], outputs = shapes[l][1];
            rowProduct(x, inputs, weights[l].data(), outputs, product);
            for (size_t b = 0; b < outputs; ++b) acc[b] = int64_t(product[b]) + biases[l][b];
            scale += exponents[l];
            if (l + 1 < weights.size()) {
                for (size_t b = 0; b < outputs; ++b) x[b] = double(shift(std::max<int64_t>(acc[b], 0), scale - fraction_bits));
                scale = fraction_bits;
            }
        }
        const int64_t half = scale > 0 ? int64_t(1) << (scale - 1) : 0;
        const int64_t mu = std::clamp(shift(acc[0] + half, scale), -mu_steps, mu_steps) + mu_steps;
        const int64_t spread = std::clamp(shift(acc[1] + half, scale), int64_t(0), scales - 1);
        const int64_t zero = std::clamp(shift(acc[2] + half, scale), int64_t(0), zero_levels - 1);
        return (mu * scales + spread) * zero_levels + zero;
    }
};

// Rows of at most 16 features in -128..127, packed one byte each: the key of the memo of lattice indices.
bool packRow(const int64_t* row, size_t width, uint64_t key[2]) {
    if (width > 16) return false;
    key[0] = key[1] = 0;
    for (size_t a = 0; a < width; ++a) {
        if (row[a] < -128 || row[a] > 127) return false;
        key[a / 8] |= uint64_t(uint8_t(int8_t(row[a]))) << (8 * (a % 8));
    }
    return true;
}

using Weights = std::vector<nb::ndarray<const int16_t, nb::ndim<2>, nb::c_contig>>;
using Biases = std::vector<nb::ndarray<const int32_t, nb::ndim<1>, nb::c_contig>>;

// The MLP of ArmWeights' layers, checked to chain from `width` features to 3 outputs.
Mlp makeMlp(size_t width, const Weights& weights, const Biases& biases, std::vector<int64_t> exponents,
            int64_t fraction_bits, int64_t mu_steps, int64_t scales, int64_t zero_levels) {
    Mlp mlp{{}, {}, {}, std::move(exponents), fraction_bits, mu_steps, scales, zero_levels};
    size_t expected = width;
    if (weights.empty() || biases.size() != weights.size() || mlp.exponents.size() != weights.size())
        throw std::invalid_argument("context model layers, biases and exponents differ in number");
    for (size_t l = 0; l < weights.size(); ++l) {
        const size_t inputs = weights[l].shape(0), outputs = weights[l].shape(1);
        if (inputs != expected || inputs > Mlp::kMaxWidth || outputs > Mlp::kMaxWidth || biases[l].shape(0) != outputs)
            throw std::invalid_argument("context model layers do not chain or are wider than 64");
        mlp.weights.emplace_back(weights[l].data(), weights[l].data() + inputs * outputs);
        mlp.shapes.push_back({inputs, outputs});
        mlp.biases.emplace_back(biases[l].data(), biases[l].data() + outputs);
        expected = outputs;
    }
    if (expected != 3) throw std::invalid_argument("context model must end in 3 outputs");
    return mlp;
}

// The MLP's lattice index of a row, memoized: a pass holds far fewer distinct feature rows than voxels (a direct-mapped
// table of rows packed one byte a feature; a pure function's memo changes no result).
class LatticeMemo {
  public:
    explicit LatticeMemo(Mlp mlp) : mlp_(std::move(mlp)), slots_(kSlots) {}

    int64_t operator()(const int64_t* row, size_t width) {
        uint64_t key[2];
        if (!packRow(row, width, key)) return mlp_.lattice(row, width);
        Slot& slot = slots_[((key[0] ^ (key[1] * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull) >> 48];
        if (slot.lattice < 0 || slot.key[0] != key[0] || slot.key[1] != key[1]) {
            slot.key[0] = key[0];
            slot.key[1] = key[1];
            slot.lattice = mlp_.lattice(row, width);
        }
        return slot.lattice;
    }

  private:
    static constexpr size_t kSlots = size_t(1) << 16;
    struct Slot {
        uint64_t key[2];
        int64_t lattice = -1;
    };
    Mlp mlp_;
    std::vector<Slot> slots_;
};

// ArmWeights.lattice of every row of features.
Out<int64_t> armLattice(Features features, Weights weights, Biases biases, std::vector<int64_t> exponents,
                        int64_t fraction_bits, int64_t mu_steps, int64_t scales, int64_t zero_levels) {
    const size_t n = features.shape(0), width = features.shape(1);
    LatticeMemo memo(makeMlp(width, weights, biases, std::move(exponents), fraction_bits, mu_steps, scales,
                             zero_levels));
    auto out = owned<int64_t>({n});
    nb::gil_scoped_release release;
    for (size_t i = 0; i < n; ++i) out.data()[i] = memo(features.data() + i * width, width);
    return out;
}

// ArmWeights.lattice(arm.features(...)) of a pass, a block of feature rows at a time (no (N, 15) array).
Out<int64_t> armPassLattice(In<int8_t> support, In<double> spread, In<double> choice, In<int8_t> codes,
                            In<int64_t> flat, std::vector<int64_t> reaches, In<double> spread_thresholds,
                            In<double> magnitude_thresholds, int64_t level_column, double reference, int64_t sign_clip,
                            Weights weights, Biases biases, std::vector<int64_t> exponents, int64_t fraction_bits,
                            int64_t mu_steps, int64_t scales, int64_t zero_levels) {
    constexpr size_t kBlock = 1024;
    const FeatureInputs in = featureInputs(support, spread, choice, codes, flat, std::move(reaches), spread_thresholds,
                                           magnitude_thresholds, level_column, reference, sign_clip);
    LatticeMemo memo(makeMlp(kFeatures, weights, biases, std::move(exponents), fraction_bits, mu_steps, scales,
                             zero_levels));
    const size_t n = support.shape(0);
    auto out = owned<int64_t>({n});
    nb::gil_scoped_release release;
    std::vector<int64_t> rows(kBlock * kFeatures);
    for (size_t begin = 0; begin < n; begin += kBlock) {
        const size_t end = std::min(n, begin + kBlock);
        featureRows(in, begin, end, rows.data());
        for (size_t i = begin; i < end; ++i) out.data()[i] = memo(rows.data() + (i - begin) * kFeatures, kFeatures);
    }
    return out;
}

// context_coder.group_by_context's stable sort, as a counting sort: (order, distinct keys, start of each key's run).
nb::tuple groupByKey(In<int64_t> keys) {
    const size_t n = keys.shape(0);
    const int64_t* k = keys.data();
    const int64_t low = n ? *std::min_element(k, k + n) : 0, high = n ? *std::max_element(k, k + n) : -1;
    std::vector<int64_t> count(size_t(high - low + 2), 0);
    for (size_t i = 0; i < n; ++i) ++count[size_t(k[i] - low) + 1];
    size_t distinct = 0;
    for (size_t c = 1; c < count.size(); ++c) distinct += count[c] > 0;
    auto distinct_keys = owned<int64_t>({distinct});
    auto starts = owned<int64_t>({distinct});
    for (size_t c = 1, d = 0; c < count.size(); ++c) {
        if (count[c] > 0) {
            distinct_keys.data()[d] = low + int64_t(c) - 1;
            starts.data()[d++] = count[c - 1];
        }
        count[c] += count[c - 1];
    }
    auto order = owned<int64_t>({n});
    for (size_t i = 0; i < n; ++i) order.data()[count[size_t(k[i] - low)]++] = int64_t(i);
    return nb::make_tuple(order, distinct_keys, starts);
}

}  // namespace

// The time mode's leaf choice (neuralvox/codec/temporal.py, choose_leaves): for each motion, each leaf's estimated
// bits: a voxel whose moved source the reference holds is charged its temporal codes' costs by magnitude bin
// (channel after channel), any other its spatial cost; sums per leaf in voxel order, as numpy's bincount.
Out<double> leafMotionCosts(In<float> values, In<bool> known, In<int64_t> flat, In<int64_t> offsets,
                            In<double> original, std::vector<double> steps, In<double> tables, In<double> spatial,
                            In<int64_t> leafOf, int64_t leaves, int64_t exactBins, int64_t exactOctave, double top) {
    const int64_t n = flat.shape(0), motions = offsets.shape(0), box = known.shape(0);
    const int64_t channels = static_cast<int64_t>(steps.size());
    const int64_t width = channels ? tables.shape(0) / channels : 0;
    if (values.shape(0) != channels * box || original.shape(0) != channels * n || tables.shape(0) != channels * width
        || spatial.shape(0) != n || leafOf.shape(0) != n || !(top >= 1.0 && top < 4503599627370496.0)
        || exactBins != (int64_t{1} << exactOctave)
        || width <= exactBins + (63 - __builtin_clzll(static_cast<uint64_t>(top))) - exactOctave)
        throw std::invalid_argument("leaf_motion_costs: array sizes or bins do not match");
    auto out = owned<double>({static_cast<size_t>(motions), static_cast<size_t>(leaves)});
    double* costs = out.data();
    const float* v = values.data();
    const bool* k = known.data();
    const int64_t* f = flat.data();
    const double* x = original.data();
    const double* t = tables.data();
    const double* s = spatial.data();
    const int64_t* leaf = leafOf.data();
    if (motions > 0) {
        const int64_t low = *std::min_element(offsets.data(), offsets.data() + motions);
        const int64_t high = *std::max_element(offsets.data(), offsets.data() + motions);
        for (int64_t i = 0; i < n; ++i)
            if (f[i] - low >= box || f[i] - high < 0 || leaf[i] < 0 || leaf[i] >= leaves)
                throw std::out_of_range("leaf_motion_costs: a source outside the box or a leaf out of range");
    }
    for (int64_t m = 0; m < motions; ++m) {
        double* row = costs + m * leaves;
        const int64_t shift = offsets.data()[m];
        for (int64_t i = 0; i < n; ++i) {
            const int64_t where = f[i] - shift;
            double cost;
            if (k[where]) {
                cost = 0.0;
                for (int64_t c = 0; c < channels; ++c) {
                    // numpy's abs(clip(rint(y), -top, top)): clamp first (top is an integer), then round half to
                    // even by the 2**52 + 2**51 trick (exact below 2**51)
                    double y = (x[c * n + i] - static_cast<double>(v[c * box + where])) / steps[c];
                    y = std::min(std::max(y, -top), top);
                    const int64_t magnitude = static_cast<int64_t>(std::fabs((y + kRoundMagic) - kRoundMagic));
                    const int64_t bin = magnitude < exactBins
                        ? magnitude
                        : exactBins + (63 - __builtin_clzll(static_cast<uint64_t>(magnitude))) - exactOctave;
                    cost += t[c * width + bin];
                }
            } else {
                cost = s[i];
            }
            row[leaf[i]] += cost;
        }
    }
    return out;
}

NB_MODULE(_bounded, m) {
    m.doc() = "Per-pass loops of the bounded value codec, bit-identical to its numpy reference.";
    m.def("predict", &predictPass, "values"_a, "known"_a, "flat"_a, "reaches"_a, "fallback"_a, "quantum_edge"_a,
          "band"_a, "(options (K, N) float64, support int8, spread float64) of a pass with odd axes.");
    m.def("coordinate_range", &coordinateRange, "ijk"_a, "((low i, j, k), (high i, j, k)) of (N, 3) int32 voxels.");
    m.def("plan_keys", &planKeys, "ijk"_a, "origin"_a, "shape"_a, "margin"_a, "max_level"_a, "rank"_a,
          "(index in the box, pass key) of each voxel.");
    m.def("counting_contexts", &countingContexts, "support"_a, "spread"_a, "thresholds"_a, "level"_a, "buckets"_a,
          "The counting model's context of each voxel of a pass.");
    m.def("arm_features", &armFeatures, "support"_a, "spread"_a, "choice"_a, "codes"_a, "flat"_a, "reaches"_a,
          "spread_thresholds"_a, "magnitude_thresholds"_a, "level_column"_a, "reference"_a, "sign_clip"_a,
          "The neural context model's (N, 15) integer features of a pass.");
    m.def("arm_lattice", &armLattice, "features"_a, "weights"_a, "biases"_a, "exponents"_a, "fraction_bits"_a,
          "mu_steps"_a, "scales"_a, "zero_levels"_a, "Each row's lattice index under the integer MLP.");
    m.def("arm_pass_lattice", &armPassLattice, "support"_a, "spread"_a, "choice"_a, "codes"_a, "flat"_a, "reaches"_a,
          "spread_thresholds"_a, "magnitude_thresholds"_a, "level_column"_a, "reference"_a, "sign_clip"_a,
          "weights"_a, "biases"_a, "exponents"_a, "fraction_bits"_a, "mu_steps"_a, "scales"_a, "zero_levels"_a,
          "arm_lattice(arm_features(...)) of a pass without the features array.");
    m.def("leaf_motion_costs", &leafMotionCosts, "values"_a, "known"_a, "flat"_a, "offsets"_a, "original"_a, "steps"_a,
          "tables"_a, "spatial"_a, "leaf_of"_a, "leaves"_a, "exact_bins"_a, "exact_octave"_a, "top"_a,
          "(motions, leaves) estimated bits of each leaf under each motion (the time mode's choice).");
    m.def("group_by_key", &groupByKey, "keys"_a, "(stable order, distinct keys, start of each key's run).");
}
