// Internals of the post-processor, shared by its sources and unit tests; not installed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kapao/postproc.hpp"

namespace kapao::detail {

// One row that passed the candidate filter (box in network-input pixels, not offset by class).
struct Candidate {
    float x1, y1, x2, y2;
    float conf;
    std::int32_t cls;
    std::uint32_t row;
};

// A box offset by class * 4096, as the official batched NMS compares them, with its area.
struct NmsBox {
    float x1, y1, x2, y2;
    float area;
};

enum class NmsMode {
    Auto,    // group by class when that provably gives the global-offset result, else global
    Global,  // always compare every pair through the class offset (the official computation)
};

// Kept boxes as structure of arrays, so the IoU test against all of them vectorises.
struct KeptBoxes {
    std::vector<float> x1, y1, x2, y2, area;

    std::size_t size() const noexcept { return x1.size(); }
    void clear() noexcept;
    void push_back(const NmsBox& box);
};

// Scratch and result of one NMS run; `kept` holds candidate indices in output order.
struct NmsRun {
    std::vector<Candidate> candidates;
    std::vector<std::uint64_t> order;          // packed (score desc, index asc) keys
    std::vector<KeptBoxes> kept_by_class;      // grouped mode
    KeptBoxes kept_boxes;                      // global mode
    std::vector<std::uint32_t> kept;
    bool grouped = false;  // what the last run did (for tests and benchmarks)
};

// IoU of two offset boxes with torchvision's CPU-kernel float32 arithmetic.
float nms_iou(const NmsBox& kept, const NmsBox& candidate) noexcept;

NmsBox offset_box(const Candidate& candidate) noexcept;

// Greedy NMS over run.candidates (in row order): fills run.kept.
void run_nms(NmsRun& run, double iou_thres, int max_det, int max_nms, std::size_t num_classes,
             NmsMode mode = NmsMode::Auto);

// What a kapao::Workspace holds.
struct WorkspaceState {
    NmsRun person_run;  // persons, or every class when the combined run applies
    NmsRun kp_run;      // keypoint objects (separate runs only)
    std::vector<std::uint32_t> person_ids;
    std::vector<std::uint32_t> kp_ids;
    std::vector<std::uint32_t> participants;
    NmsMode nms_mode = NmsMode::Auto;
};

}  // namespace kapao::detail
