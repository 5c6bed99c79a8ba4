// KAPAO post-processing in C++17, without Python: candidate filter, class-aware greedy NMS,
// scaling back to the original image and keypoint-object fusion (KAPAO Algorithm 1).
//
// Input: decoded predictions of one image, (N, No) row-major, rows
//   [cx, cy, w, h, obj, cls_0 .. cls_K, k0x, k0y, .. k(K-1)x, k(K-1)y],  No = 3K + 6,
// in float32 or IEEE float16 (passed as raw uint16_t bits). Zero rows are padding.
//
// Compat::Official reproduces the official KAPAO val.run_nms + val.post_process_batch bit for bit
// (including its clipping quirk: only keypoints 0 and 1 are clipped). Compat::Default fuses on
// unclipped coordinates, clips every keypoint and leaves person boxes unrounded.
//
// Steady-state calls with a reused Workspace and Poses allocate nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kapao/half.hpp"

namespace kapao {

enum class Compat : int { Official = 0, Default = 1 };

// Same fields and defaults as kapao_edge.postprocess.PostprocessConfig (official val.py values).
struct Config {
    double conf_thres = 0.001;           // person objects (and obj pre-filter)
    double iou_thres = 0.65;             // person NMS
    double conf_thres_kp = 0.2;          // keypoint objects
    double iou_thres_kp = 0.25;          // keypoint-object NMS
    double conf_thres_kp_person = 0.3;   // poses that take part in fusion
    double overwrite_tol = 50.0;         // pixels in the original image
    int max_det = 300;                   // per NMS run, over all its classes
    int max_nms = 30000;                 // candidates entering one NMS run
    bool use_kp_dets = true;
    Compat compat = Compat::Official;
};

// Preset thresholds of the official scripts.
Config val_config();   // val.py
Config demo_config();  // demos/image.py

struct ImageSize {
    int height = 0;
    int width = 0;
};

// Poses of one image, in NMS order of the persons (score-descending).
struct Poses {
    std::size_t num_poses = 0;      // P
    std::size_t num_keypoints = 0;  // K
    std::vector<float> keypoints;   // (P, K, 3): x, y, conf in original-image pixels
    std::vector<float> boxes;       // (P, 4): x1, y1, x2, y2
    std::vector<float> scores;      // (P)
};

namespace detail {

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

}  // namespace detail

// Reusable scratch memory: give each thread its own and keep it across calls.
struct Workspace {
    detail::NmsRun person_run;  // persons, or every class when the combined run applies
    detail::NmsRun kp_run;      // keypoint objects (separate runs only)
    std::vector<std::uint32_t> person_ids;
    std::vector<std::uint32_t> kp_ids;
    std::vector<std::uint32_t> participants;
    std::vector<float> kp_centres;  // (M, 2) keypoint-object centres, original-image pixels
    detail::NmsMode nms_mode = detail::NmsMode::Auto;
};

// Throws std::invalid_argument for thresholds outside [0, 1], NaN tolerances or negative limits.
void validate_config(const Config& config);

// K from No = 3K + 6; throws std::invalid_argument for any other No.
std::size_t keypoints_from_outputs(std::size_t num_outputs);

// One image. `predictions` points at num_rows * num_outputs values.
// Throws std::invalid_argument on a bad config or shape.
void postprocess_image(const float* predictions, std::size_t num_rows, std::size_t num_outputs,
                       ImageSize input, ImageSize original, const Config& config,
                       Workspace& workspace, Poses& out);
void postprocess_image(const std::uint16_t* predictions_fp16, std::size_t num_rows,
                       std::size_t num_outputs, ImageSize input, ImageSize original,
                       const Config& config, Workspace& workspace, Poses& out);

// A batch (B, N, No); `originals` holds B sizes. `out` is resized to B.
void postprocess_batch(const float* predictions, std::size_t batch, std::size_t num_rows,
                       std::size_t num_outputs, ImageSize input, const ImageSize* originals,
                       const Config& config, Workspace& workspace, std::vector<Poses>& out);
void postprocess_batch(const std::uint16_t* predictions_fp16, std::size_t batch,
                       std::size_t num_rows, std::size_t num_outputs, ImageSize input,
                       const ImageSize* originals, const Config& config, Workspace& workspace,
                       std::vector<Poses>& out);

}  // namespace kapao
