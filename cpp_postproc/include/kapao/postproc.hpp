// KAPAO post-processing in C++17, without Python: candidate filter, class-aware greedy NMS,
// scaling back to the original image and keypoint-object fusion (KAPAO Algorithm 1).
//
// Input: decoded predictions of one image, (N, No) row-major, rows
//   [cx, cy, w, h, obj, cls_0 .. cls_K, k0x, k0y, .. k(K-1)x, k(K-1)y],  No = 3K + 6,
// in float32 or IEEE float16 (passed as raw uint16_t bits). All-zero rows are padding.
//
// Every buffer comes with its length (kapao::Span); every size is checked, and a bad size or
// setting comes back as a Status with a message, never as an exception, abort or overrun.
// Steady-state calls with a reused Workspace and Poses allocate nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kapao/half.hpp"

namespace kapao {

// Compat::Official reproduces the official KAPAO val.run_nms + val.post_process_batch bit for bit
// (including its clipping quirk: only keypoints 0 and 1 are clipped). Compat::Default fuses on
// unclipped coordinates, clips every keypoint and leaves person boxes unrounded.
enum class Compat : int { Official = 0, Default = 1 };

// The same fields and defaults as Python's kapao_edge.postprocess.PostprocessConfig():
// the official val.py thresholds with compat "default" (a test compares them field by field).
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
    Compat compat = Compat::Default;
};

// Presets: PostprocessConfig.official_val() / official_demo() (compat Default, like Python).
Config val_config();   // official val.py thresholds
Config demo_config();  // official demos/image.py thresholds: fewer, surer poses

// A read-only or writable view of `size` contiguous values (std::span before C++20).
template <class T>
class Span {
public:
    constexpr Span() noexcept = default;
    constexpr Span(T* data, std::size_t size) noexcept : data_(data), size_(size) {}
    template <class C, class = decltype(std::declval<C&>().data()),
              class = std::enable_if_t<std::is_convertible<decltype(std::declval<C&>().data()), T*>::value>>
    Span(C& container) noexcept : data_(container.data()), size_(container.size()) {}  // NOLINT

    constexpr T* data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr T& operator[](std::size_t i) const noexcept { return data_[i]; }
    constexpr T* begin() const noexcept { return data_; }
    constexpr T* end() const noexcept { return data_ + size_; }

private:
    T* data_ = nullptr;
    std::size_t size_ = 0;
};

// Success, or an error message for the app to show or log.
class Status {
public:
    Status() = default;  // success
    static Status Error(std::string message) { return Status(std::move(message)); }

    bool ok() const noexcept { return !failed_; }
    explicit operator bool() const noexcept { return ok(); }
    const std::string& message() const noexcept { return message_; }

private:
    explicit Status(std::string message) : message_(std::move(message)), failed_(true) {}
    std::string message_;
    bool failed_ = false;
};

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
struct WorkspaceState;
}

// Reusable scratch memory: give each thread its own and keep it across calls.
class Workspace {
public:
    Workspace();
    ~Workspace();
    Workspace(Workspace&&) noexcept;
    Workspace& operator=(Workspace&&) noexcept;
    Workspace(const Workspace&) = delete;
    Workspace& operator=(const Workspace&) = delete;

    // The library's scratch state (an incomplete type here): for its own sources and unit tests.
    detail::WorkspaceState& state() noexcept { return *state_; }

private:
    std::unique_ptr<detail::WorkspaceState> state_;
};

// Error for thresholds outside [0, 1], NaN tolerances or negative limits.
Status validate_config(const Config& config);

// K from No = 3K + 6, or 0 when No has no such form (K >= 1).
std::size_t keypoints_from_outputs(std::size_t num_outputs) noexcept;

// One image: `predictions` holds exactly num_rows * num_outputs values, (N, No) row-major.
Status postprocess_image(Span<const float> predictions, std::size_t num_rows,
                         std::size_t num_outputs, ImageSize input, ImageSize original,
                         const Config& config, Workspace& workspace, Poses& out);
Status postprocess_image(Span<const std::uint16_t> predictions_fp16, std::size_t num_rows,
                         std::size_t num_outputs, ImageSize input, ImageSize original,
                         const Config& config, Workspace& workspace, Poses& out);

// A batch: `predictions` holds batch * num_rows * num_outputs values, (B, N, No) row-major, and
// `originals` one size per image. `out` is resized to B.
Status postprocess_batch(Span<const float> predictions, std::size_t batch, std::size_t num_rows,
                         std::size_t num_outputs, ImageSize input, Span<const ImageSize> originals,
                         const Config& config, Workspace& workspace, std::vector<Poses>& out);
Status postprocess_batch(Span<const std::uint16_t> predictions_fp16, std::size_t batch,
                         std::size_t num_rows, std::size_t num_outputs, ImageSize input,
                         Span<const ImageSize> originals, const Config& config,
                         Workspace& workspace, std::vector<Poses>& out);

}  // namespace kapao
