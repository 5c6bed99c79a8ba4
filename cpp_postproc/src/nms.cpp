// Class-aware greedy NMS with the official semantics (torchvision.ops.nms on boxes offset by
// class * 4096), computed so that only the work that can change the result is done.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "internal.hpp"

namespace kapao::detail {
namespace {

constexpr float kClassOffset = 4096.0f;  // official max_wh

// Maps a float to a key whose unsigned order is the float's descending order (-0 folded onto +0).
std::uint32_t descending_key(float score) noexcept {
    const std::uint32_t bits = float_to_bits(score + 0.0f);
    const std::uint32_t ascending = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
    return ~ascending;
}

// Offsetting by class cannot make boxes of different classes overlap along an axis whose overall
// extent is below 4096: for classes a < b, x2_a - x1_b < 4096 <= 4096 (b - a), and rounding
// x + 4096 c to float is monotone, so the offset boxes stay apart and their IoU is 0 (or NaN),
// never above a threshold >= 0. Then NMS within each class alone gives the same kept set.
bool grouping_is_exact(const std::vector<Candidate>& candidates,
                       const std::vector<std::uint64_t>& order, std::size_t count,
                       double iou_thres) {
    if (!(iou_thres >= 0.0)) {
        return false;
    }
    double min_x1 = std::numeric_limits<double>::infinity();
    double min_y1 = min_x1;
    double max_x2 = -min_x1;
    double max_y2 = -min_x1;
    for (std::size_t s = 0; s < count; ++s) {
        const Candidate& c = candidates[static_cast<std::uint32_t>(order[s])];
        min_x1 = std::min(min_x1, static_cast<double>(c.x1));
        min_y1 = std::min(min_y1, static_cast<double>(c.y1));
        max_x2 = std::max(max_x2, static_cast<double>(c.x2));
        max_y2 = std::max(max_y2, static_cast<double>(c.y2));
    }
    const double limit = static_cast<double>(kClassOffset);
    return (max_x2 - min_x1 < limit) || (max_y2 - min_y1 < limit);
}

// The largest float <= threshold: for any float iou, double(iou) > threshold <=> iou > this
// (the official test compares in float64; one float compare lets the loop below vectorise).
float float_threshold_below(double threshold) noexcept {
    float value = static_cast<float>(threshold);
    if (static_cast<double>(value) > threshold) {
        value = std::nextafter(value, -std::numeric_limits<float>::infinity());
    }
    return value;
}

// Does any kept box overlap `box` by more than the threshold? Same arithmetic as nms_iou, in
// blocks without an early exit inside a block so that the compiler can vectorise it.
bool overlaps_any(const KeptBoxes& kept, const NmsBox& box, float threshold) noexcept {
    constexpr std::size_t kBlock = 16;
    const std::size_t n = kept.size();
    const float* x1 = kept.x1.data();
    const float* y1 = kept.y1.data();
    const float* x2 = kept.x2.data();
    const float* y2 = kept.y2.data();
    const float* area = kept.area.data();
    for (std::size_t start = 0; start < n; start += kBlock) {
        const std::size_t end = std::min(n, start + kBlock);
        int hit = 0;
        for (std::size_t i = start; i < end; ++i) {
            const float xx1 = std::max(x1[i], box.x1);
            const float yy1 = std::max(y1[i], box.y1);
            const float xx2 = std::min(x2[i], box.x2);
            const float yy2 = std::min(y2[i], box.y2);
            const float w = std::max(0.0f, xx2 - xx1);
            const float h = std::max(0.0f, yy2 - yy1);
            const float inter = w * h;
            hit |= static_cast<int>(inter / (area[i] + box.area - inter) > threshold);
        }
        if (hit != 0) {
            return true;
        }
    }
    return false;
}

}  // namespace

void KeptBoxes::clear() noexcept {
    x1.clear();
    y1.clear();
    x2.clear();
    y2.clear();
    area.clear();
}

void KeptBoxes::push_back(const NmsBox& box) {
    x1.push_back(box.x1);
    y1.push_back(box.y1);
    x2.push_back(box.x2);
    y2.push_back(box.y2);
    area.push_back(box.area);
}

NmsBox offset_box(const Candidate& candidate) noexcept {
    const float offset = static_cast<float>(candidate.cls) * kClassOffset;
    NmsBox box{candidate.x1 + offset, candidate.y1 + offset, candidate.x2 + offset,
               candidate.y2 + offset, 0.0f};
    box.area = (box.x2 - box.x1) * (box.y2 - box.y1);
    return box;
}

float nms_iou(const NmsBox& kept, const NmsBox& candidate) noexcept {
    // Same operations, operand order and std::max/min NaN behaviour as torchvision's nms_kernel.
    const float xx1 = std::max(kept.x1, candidate.x1);
    const float yy1 = std::max(kept.y1, candidate.y1);
    const float xx2 = std::min(kept.x2, candidate.x2);
    const float yy2 = std::min(kept.y2, candidate.y2);
    const float w = std::max(0.0f, xx2 - xx1);
    const float h = std::max(0.0f, yy2 - yy1);
    const float inter = w * h;
    return inter / (kept.area + candidate.area - inter);
}

void run_nms(NmsRun& run, double iou_thres, int max_det, int max_nms, std::size_t num_classes,
             NmsMode mode) {
    run.kept.clear();
    run.grouped = false;
    const std::vector<Candidate>& candidates = run.candidates;
    const std::size_t n = candidates.size();
    if (n == 0 || max_det <= 0 || max_nms <= 0) {
        return;
    }

    // (score desc, row asc) as one integer: a plain sort, no comparator indirection.
    run.order.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        run.order[i] = (static_cast<std::uint64_t>(descending_key(candidates[i].conf)) << 32) |
                       static_cast<std::uint64_t>(i);
    }
    std::size_t count = n;
    if (n > static_cast<std::size_t>(max_nms)) {
        count = static_cast<std::size_t>(max_nms);
        std::nth_element(run.order.begin(), run.order.begin() + static_cast<std::ptrdiff_t>(count),
                         run.order.end());
    }
    std::sort(run.order.begin(), run.order.begin() + static_cast<std::ptrdiff_t>(count));

    run.grouped = mode == NmsMode::Auto && grouping_is_exact(candidates, run.order, count, iou_thres);
    if (run.kept_by_class.size() < num_classes) {
        run.kept_by_class.resize(num_classes);
    }
    for (auto& boxes : run.kept_by_class) {
        boxes.clear();
    }
    run.kept_boxes.clear();

    // A candidate survives iff no earlier kept box overlaps it by more than iou_thres: the same
    // kept set and order as torchvision's suppress-forward loop, but it can stop at max_det.
    const auto limit = static_cast<std::size_t>(max_det);
    const float threshold = float_threshold_below(iou_thres);
    for (std::size_t s = 0; s < count; ++s) {
        const auto index = static_cast<std::uint32_t>(run.order[s]);
        const Candidate& candidate = candidates[index];
        const NmsBox box = offset_box(candidate);
        KeptBoxes& rivals =
            run.grouped ? run.kept_by_class[static_cast<std::size_t>(candidate.cls)] : run.kept_boxes;
        if (overlaps_any(rivals, box, threshold)) {
            continue;
        }
        rivals.push_back(box);
        run.kept.push_back(index);
        if (run.kept.size() == limit) {
            break;
        }
    }
}

}  // namespace kapao::detail
