// Candidate filter, scaling to the original image and keypoint-object fusion.
// Arithmetic follows the official code's dtypes: float32 for values, float64 for the letterbox
// gain/padding computation, fusion distances and the IoU comparison.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "internal.hpp"

namespace kapao {
namespace {

using detail::Candidate;
using detail::NmsRun;
using detail::WorkspaceState;

inline float load(const float* p) noexcept { return *p; }
inline float load(const std::uint16_t* p) noexcept { return half_to_float(*p); }

// Which rows go to which NMS run (official val.run_nms).
struct Plan {
    bool combined;     // one run over all classes, split afterwards
    bool want_kp;      // keypoint objects are needed at all
    float person_conf;  // thresholds compared in float32, as torch compares with a Python float
    float kp_conf;
    float obj_min;     // rows with obj <= this cannot enter any run
};

Plan make_plan(const Config& config) {
    Plan plan{};
    plan.combined = config.iou_thres == config.iou_thres_kp && config.conf_thres_kp >= config.conf_thres;
    plan.want_kp = config.use_kp_dets;
    plan.person_conf = static_cast<float>(config.conf_thres);
    plan.kp_conf = static_cast<float>(config.conf_thres_kp);
    plan.obj_min = plan.combined || !plan.want_kp ? plan.person_conf
                                                  : std::min(plan.person_conf, plan.kp_conf);
    return plan;
}

// One pass over the rows; the objectness test comes first so most rows cost one load.
template <class T>
void collect_candidates(const T* predictions, std::size_t num_rows, std::size_t num_outputs,
                        std::size_t num_classes, const Plan& plan, WorkspaceState& ws) {
    std::vector<Candidate>& persons = ws.person_run.candidates;  // every class if combined
    std::vector<Candidate>& keypoints = ws.kp_run.candidates;
    persons.clear();
    keypoints.clear();
    const float obj_min = plan.obj_min;
    for (std::size_t r = 0; r < num_rows; ++r) {
        const T* row = predictions + r * num_outputs;
        const float obj = load(row + 4);
        if (!(obj > obj_min) || !std::isfinite(obj)) {
            continue;
        }
        const float cx = load(row);
        const float cy = load(row + 1);
        const float w = load(row + 2);
        const float h = load(row + 3);
        if (!(std::isfinite(cx) && std::isfinite(cy) && std::isfinite(w) && std::isfinite(h))) {
            continue;
        }
        const T* classes = row + 5;
        float best;
        std::int32_t best_class;
        if (!plan.combined && !(plan.want_kp && obj > plan.kp_conf)) {
            // Only a person candidate is possible: class 0 must pass and no later class may beat it,
            // so most low-objectness rows stop after one or a few classes.
            best = obj * load(classes);
            if (!(obj > plan.person_conf && best > plan.person_conf)) {
                continue;
            }
            bool beaten = false;
            for (std::size_t c = 1; c < num_classes && !beaten; ++c) {
                beaten = obj * load(classes + c) > best;
            }
            if (beaten) {
                continue;
            }
            best_class = 0;
        } else {
            // First maximum of obj * cls; NaN never wins a strict comparison, so it acts as -inf.
            best = -std::numeric_limits<float>::infinity();
            best_class = -1;
            for (std::size_t c = 0; c < num_classes; ++c) {
                const float score = obj * load(classes + c);
                if (score > best) {
                    best = score;
                    best_class = static_cast<std::int32_t>(c);
                }
            }
            if (best_class < 0) {
                continue;  // all NaN (or all -inf, which fails every threshold anyway)
            }
        }
        const float half_w = w / 2.0f;
        const float half_h = h / 2.0f;
        const Candidate candidate{cx - half_w, cy - half_h, cx + half_w, cy + half_h,
                                  best,        best_class,  static_cast<std::uint32_t>(r)};
        if (plan.combined) {
            if (best > plan.person_conf) {
                persons.push_back(candidate);
            }
        } else if (best_class == 0) {
            if (obj > plan.person_conf && best > plan.person_conf) {
                persons.push_back(candidate);
            }
        } else if (plan.want_kp && obj > plan.kp_conf && best > plan.kp_conf) {
            keypoints.push_back(candidate);
        }
    }
}

// Official scale_coords: gain and padding in float64, applied to float32 values in float32.
struct Letterbox {
    float gain;
    float pad_x;
    float pad_y;
    float width;   // original image, for clipping
    float height;

    Letterbox(ImageSize input, ImageSize original) {
        const double h0 = original.height;
        const double w0 = original.width;
        const double g = std::min(input.height / h0, input.width / w0);
        gain = static_cast<float>(g);
        pad_x = static_cast<float>((input.width - w0 * g) / 2.0);
        pad_y = static_cast<float>((input.height - h0 * g) / 2.0);
        width = static_cast<float>(w0);
        height = static_cast<float>(h0);
    }
    float x(float value) const noexcept { return (value - pad_x) / gain; }
    float y(float value) const noexcept { return (value - pad_y) / gain; }
};

// torch.clamp_(0, hi): NaN stays NaN.
inline float clip(float value, float hi) noexcept {
    return value < 0.0f ? 0.0f : (value > hi ? hi : value);
}

void check_config(const Config& config);

void validate_sizes(std::size_t num_rows, std::size_t num_outputs, ImageSize input,
                    ImageSize original) {
    if (keypoints_from_outputs(num_outputs) == 0) {
        throw std::invalid_argument("a prediction row must have 3K + 6 values (K >= 1 keypoints), got " +
                                    std::to_string(num_outputs));
    }
    if (num_rows > std::numeric_limits<std::uint32_t>::max()) {
        throw std::invalid_argument("too many prediction rows: " + std::to_string(num_rows) +
                                    " (at most 2^32 - 1 per image)");
    }
    if (input.height <= 0 || input.width <= 0) {
        throw std::invalid_argument("input size must be positive, got " +
                                    std::to_string(input.height) + "x" + std::to_string(input.width));
    }
    if (original.height <= 0 || original.width <= 0) {
        throw std::invalid_argument("original image size must be positive, got " +
                                    std::to_string(original.height) + "x" +
                                    std::to_string(original.width));
    }
}

template <class T>
void postprocess_image_impl(const T* predictions, std::size_t num_rows, std::size_t num_outputs,
                            ImageSize input, ImageSize original, const Config& config,
                            WorkspaceState& ws, Poses& out) {
    check_config(config);
    validate_sizes(num_rows, num_outputs, input, original);
    const std::size_t num_keypoints = keypoints_from_outputs(num_outputs);
    const std::size_t num_classes = num_keypoints + 1;
    const Plan plan = make_plan(config);

    collect_candidates(predictions, num_rows, num_outputs, num_classes, plan, ws);

    // NMS: one combined run, or persons and keypoint objects separately.
    const std::vector<Candidate>& person_pool = ws.person_run.candidates;
    const std::vector<Candidate>* kp_pool = &ws.kp_run.candidates;
    ws.person_ids.clear();
    ws.kp_ids.clear();
    detail::run_nms(ws.person_run, config.iou_thres, config.max_det, config.max_nms, num_classes,
                    ws.nms_mode);
    if (plan.combined) {
        kp_pool = &person_pool;
        for (const std::uint32_t index : ws.person_run.kept) {
            const Candidate& c = person_pool[index];
            if (c.cls == 0) {
                ws.person_ids.push_back(index);
            } else if (plan.want_kp && c.conf >= plan.kp_conf) {
                ws.kp_ids.push_back(index);
            }
        }
    } else {
        ws.person_ids.assign(ws.person_run.kept.begin(), ws.person_run.kept.end());
        if (plan.want_kp) {
            detail::run_nms(ws.kp_run, config.iou_thres_kp, config.max_det, config.max_nms,
                            num_classes, ws.nms_mode);
            ws.kp_ids.assign(ws.kp_run.kept.begin(), ws.kp_run.kept.end());
        }
    }

    // Persons -> poses in the original image.
    const bool official = config.compat == Compat::Official;
    const Letterbox lb(input, original);
    const std::size_t num_poses = ws.person_ids.size();
    const std::size_t K = num_keypoints;
    out.num_poses = num_poses;
    out.num_keypoints = K;
    out.keypoints.resize(num_poses * K * 3);
    out.boxes.resize(num_poses * 4);
    out.scores.resize(num_poses);
    for (std::size_t p = 0; p < num_poses; ++p) {
        const Candidate& c = person_pool[ws.person_ids[p]];
        out.scores[p] = c.conf;
        float* box = &out.boxes[p * 4];
        box[0] = clip(lb.x(c.x1), lb.width);
        box[1] = clip(lb.y(c.y1), lb.height);
        box[2] = clip(lb.x(c.x2), lb.width);
        box[3] = clip(lb.y(c.y2), lb.height);
        if (official) {
            for (int i = 0; i < 4; ++i) {
                box[i] = std::nearbyint(box[i]);  // half to even, like torch.round
            }
        }
        const T* coords = predictions + static_cast<std::size_t>(c.row) * num_outputs + 5 + num_classes;
        float* kps = &out.keypoints[p * K * 3];
        for (std::size_t k = 0; k < K; ++k) {
            kps[3 * k] = lb.x(load(coords + 2 * k));
            kps[3 * k + 1] = lb.y(load(coords + 2 * k + 1));
            kps[3 * k + 2] = 0.0f;
        }
        if (official) {
            // The official clip reads the first four numbers of a pose row as a box.
            const std::size_t clipped = std::min<std::size_t>(K, 2);
            for (std::size_t k = 0; k < clipped; ++k) {
                kps[3 * k] = clip(kps[3 * k], lb.width);
                kps[3 * k + 1] = clip(kps[3 * k + 1], lb.height);
            }
        }
    }

    // Fusion (Algorithm 1): keypoint objects in NMS order overwrite the nearest pose's keypoint.
    ws.participants.clear();
    const float person_threshold = static_cast<float>(config.conf_thres_kp_person);
    for (std::size_t p = 0; p < num_poses; ++p) {
        if (out.scores[p] > person_threshold) {
            ws.participants.push_back(static_cast<std::uint32_t>(p));
        }
    }
    if (config.use_kp_dets && !ws.kp_ids.empty() && !ws.participants.empty()) {
        for (const std::uint32_t index : ws.kp_ids) {
            const Candidate& d = (*kp_pool)[index];
            float x1 = lb.x(d.x1);
            float y1 = lb.y(d.y1);
            float x2 = lb.x(d.x2);
            float y2 = lb.y(d.y2);
            if (official) {
                x1 = clip(x1, lb.width);
                y1 = clip(y1, lb.height);
                x2 = clip(x2, lb.width);
                y2 = clip(y2, lb.height);
            }
            const float cx = (x1 + x2) / 2.0f;
            const float cy = (y1 + y2) / 2.0f;
            const std::size_t k = static_cast<std::size_t>(d.cls) - 1;
            double nearest = std::numeric_limits<double>::infinity();
            float* match = nullptr;
            for (const std::uint32_t p : ws.participants) {
                float* kp = &out.keypoints[(p * K + k) * 3];
                const double dx = static_cast<double>(kp[0]) - static_cast<double>(cx);
                const double dy = static_cast<double>(kp[1]) - static_cast<double>(cy);
                const double distance = std::sqrt(dx * dx + dy * dy);
                if (distance < nearest) {  // first minimum; NaN never wins
                    nearest = distance;
                    match = kp;
                }
            }
            if (match != nullptr && d.conf > match[2] && nearest < config.overwrite_tol) {
                match[0] = cx;
                match[1] = cy;
                match[2] = d.conf;
            }
        }
    }

    if (!official) {
        for (std::size_t i = 0; i < num_poses * K; ++i) {
            float* kp = &out.keypoints[i * 3];
            kp[0] = clip(kp[0], lb.width);
            kp[1] = clip(kp[1], lb.height);
        }
    }
}

void check_unit_interval(const char* name, double value) {
    if (!(value >= 0.0 && value <= 1.0)) {
        throw std::invalid_argument(std::string(name) + " must be in [0, 1], got " +
                                    std::to_string(value));
    }
}

void check_config(const Config& config) {
    check_unit_interval("conf_thres", config.conf_thres);
    check_unit_interval("iou_thres", config.iou_thres);
    check_unit_interval("conf_thres_kp", config.conf_thres_kp);
    check_unit_interval("iou_thres_kp", config.iou_thres_kp);
    if (std::isnan(config.conf_thres_kp_person)) {
        throw std::invalid_argument("conf_thres_kp_person must not be NaN");
    }
    if (std::isnan(config.overwrite_tol)) {
        throw std::invalid_argument("overwrite_tol must not be NaN");
    }
    if (config.max_det < 0 || config.max_nms < 0) {
        throw std::invalid_argument("max_det and max_nms must be >= 0");
    }
    if (config.compat != Compat::Official && config.compat != Compat::Default) {
        throw std::invalid_argument("compat must be Compat::Official or Compat::Default");
    }
}

// a * b, or an error when the product does not fit in size_t (a hostile shape must not wrap).
std::size_t checked_product(std::size_t a, std::size_t b) {
    if (a != 0 && b > std::numeric_limits<std::size_t>::max() / a) {
        throw std::invalid_argument("prediction shape is too large");
    }
    return a * b;
}

template <class T>
void postprocess_batch_impl(Span<const T> predictions, std::size_t batch, std::size_t num_rows,
                            std::size_t num_outputs, ImageSize input, Span<const ImageSize> originals,
                            const Config& config, WorkspaceState& ws, std::vector<Poses>& out) {
    const std::size_t per_image = checked_product(num_rows, num_outputs);
    const std::size_t expected = checked_product(batch, per_image);
    if (predictions.size() != expected) {
        throw std::invalid_argument(
            "predictions hold " + std::to_string(predictions.size()) + " values, but shape (" +
            std::to_string(batch) + ", " + std::to_string(num_rows) + ", " +
            std::to_string(num_outputs) + ") needs " + std::to_string(expected));
    }
    if (expected > 0 && predictions.data() == nullptr) {
        throw std::invalid_argument("predictions point nowhere");
    }
    if (originals.size() != batch) {
        throw std::invalid_argument("originals hold " + std::to_string(originals.size()) +
                                    " sizes for a batch of " + std::to_string(batch) + " images");
    }
    // Check everything first, so that an error leaves `out` as it was.
    check_config(config);
    for (std::size_t b = 0; b < batch; ++b) {
        validate_sizes(num_rows, num_outputs, input, originals[b]);
    }
    out.resize(batch);
    for (std::size_t b = 0; b < batch; ++b) {
        postprocess_image_impl(predictions.data() + b * per_image, num_rows, num_outputs, input,
                               originals[b], config, ws, out[b]);
    }
}

template <class T>
Status guarded_image(Span<const T> predictions, std::size_t num_rows, std::size_t num_outputs,
                     ImageSize input, ImageSize original, const Config& config, Workspace& workspace,
                     Poses& out) noexcept {
    try {
        const std::size_t expected = checked_product(num_rows, num_outputs);
        if (predictions.size() != expected) {
            return Status::Error("predictions hold " + std::to_string(predictions.size()) +
                                 " values, but shape (" + std::to_string(num_rows) + ", " +
                                 std::to_string(num_outputs) + ") needs " + std::to_string(expected));
        }
        if (expected > 0 && predictions.data() == nullptr) {
            return Status::Error("predictions point nowhere");
        }
        postprocess_image_impl(predictions.data(), num_rows, num_outputs, input, original, config,
                               workspace.state(), out);
        return Status();
    } catch (const std::exception& error) {  // invalid_argument from a check, or bad_alloc
        return Status::Error(error.what());
    }
}

template <class T>
Status guarded_batch(Span<const T> predictions, std::size_t batch, std::size_t num_rows,
                     std::size_t num_outputs, ImageSize input, Span<const ImageSize> originals,
                     const Config& config, Workspace& workspace, std::vector<Poses>& out) noexcept {
    try {
        postprocess_batch_impl(predictions, batch, num_rows, num_outputs, input, originals, config,
                               workspace.state(), out);
        return Status();
    } catch (const std::exception& error) {
        return Status::Error(error.what());
    }
}

}  // namespace

Workspace::Workspace() : state_(std::make_unique<detail::WorkspaceState>()) {}
Workspace::~Workspace() = default;
Workspace::Workspace(Workspace&&) noexcept = default;
Workspace& Workspace::operator=(Workspace&&) noexcept = default;

Config val_config() { return Config{}; }

Config demo_config() {
    Config config;
    config.conf_thres = 0.7;
    config.iou_thres = 0.45;
    config.conf_thres_kp = 0.5;
    config.iou_thres_kp = 0.45;
    config.conf_thres_kp_person = 0.2;
    config.overwrite_tol = 25.0;
    return config;
}

Status validate_config(const Config& config) {
    try {
        check_config(config);
        return Status();
    } catch (const std::exception& error) {
        return Status::Error(error.what());
    }
}

std::size_t keypoints_from_outputs(std::size_t num_outputs) noexcept {
    if (num_outputs < 9 || (num_outputs - 6) % 3 != 0) {
        return 0;
    }
    return (num_outputs - 6) / 3;
}

Status postprocess_image(Span<const float> predictions, std::size_t num_rows,
                         std::size_t num_outputs, ImageSize input, ImageSize original,
                         const Config& config, Workspace& workspace, Poses& out) {
    return guarded_image(predictions, num_rows, num_outputs, input, original, config, workspace, out);
}

Status postprocess_image(Span<const std::uint16_t> predictions_fp16, std::size_t num_rows,
                         std::size_t num_outputs, ImageSize input, ImageSize original,
                         const Config& config, Workspace& workspace, Poses& out) {
    return guarded_image(predictions_fp16, num_rows, num_outputs, input, original, config,
                         workspace, out);
}

Status postprocess_batch(Span<const float> predictions, std::size_t batch, std::size_t num_rows,
                         std::size_t num_outputs, ImageSize input, Span<const ImageSize> originals,
                         const Config& config, Workspace& workspace, std::vector<Poses>& out) {
    return guarded_batch(predictions, batch, num_rows, num_outputs, input, originals, config,
                         workspace, out);
}

Status postprocess_batch(Span<const std::uint16_t> predictions_fp16, std::size_t batch,
                         std::size_t num_rows, std::size_t num_outputs, ImageSize input,
                         Span<const ImageSize> originals, const Config& config,
                         Workspace& workspace, std::vector<Poses>& out) {
    return guarded_batch(predictions_fp16, batch, num_rows, num_outputs, input, originals, config,
                         workspace, out);
}

}  // namespace kapao
