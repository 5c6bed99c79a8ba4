// Unit tests of the C++ post-processor, with a tiny assert harness (no external framework).
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "internal.hpp"  // detail:: internals (not installed)
#include "kapao/letterbox.hpp"
#include "kapao/model.hpp"
#include "kapao/postproc.hpp"

namespace {

int failures = 0;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            ++failures;                                                                \
        }                                                                              \
    } while (0)

#define CHECK_NEAR(a, b, tol) CHECK(std::fabs(static_cast<double>(a) - static_cast<double>(b)) <= (tol))

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Builds prediction rows [cx, cy, w, h, obj, cls_0..cls_K, keypoints] for K keypoints.
struct Rows {
    std::size_t K;
    std::vector<float> data;

    explicit Rows(std::size_t keypoints) : K(keypoints) {}
    std::size_t outputs() const { return 3 * K + 6; }
    std::size_t count() const { return data.size() / outputs(); }

    // Class `cls` gets probability `cls_prob`, the others 0; keypoints all at (kx, ky).
    float* add(float cx, float cy, float w, float h, float obj, std::size_t cls, float cls_prob,
               float kx = 0.0f, float ky = 0.0f) {
        const std::size_t start = data.size();
        data.resize(start + outputs(), 0.0f);
        float* row = &data[start];
        row[0] = cx;
        row[1] = cy;
        row[2] = w;
        row[3] = h;
        row[4] = obj;
        row[5 + cls] = cls_prob;
        for (std::size_t k = 0; k < K; ++k) {
            row[6 + K + 2 * k] = kx;
            row[6 + K + 2 * k + 1] = ky;
        }
        return row;
    }
    float* keypoint(float* row, std::size_t k) { return row + 6 + K + 2 * k; }
};

kapao::Poses run(const Rows& rows, const kapao::Config& config, kapao::ImageSize input = {640, 640},
                 kapao::ImageSize original = {640, 640}) {
    kapao::Workspace workspace;
    kapao::Poses poses;
    kapao::postprocess_image(rows.data, rows.count(), rows.outputs(), input, original, config,
                             workspace, poses);
    return poses;
}

kapao::detail::Candidate candidate(float x1, float y1, float x2, float y2, float conf, int cls,
                                   std::uint32_t row) {
    return {x1, y1, x2, y2, conf, cls, row};
}

// Reference: torchvision's suppress-forward loop over all pairs, offset boxes, stable order.
std::vector<std::uint32_t> brute_force_nms(const std::vector<kapao::detail::Candidate>& cands,
                                           double iou_thres, std::size_t max_det) {
    std::vector<std::uint32_t> order(cands.size());
    for (std::uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    for (std::size_t i = 1; i < order.size(); ++i) {  // insertion sort: stable, conf descending
        for (std::size_t j = i; j > 0 && cands[order[j]].conf > cands[order[j - 1]].conf; --j) {
            std::swap(order[j], order[j - 1]);
        }
    }
    std::vector<bool> suppressed(cands.size(), false);
    std::vector<std::uint32_t> keep;
    for (std::size_t a = 0; a < order.size(); ++a) {
        if (suppressed[order[a]]) continue;
        keep.push_back(order[a]);
        const auto box_a = kapao::detail::offset_box(cands[order[a]]);
        for (std::size_t b = a + 1; b < order.size(); ++b) {
            const auto box_b = kapao::detail::offset_box(cands[order[b]]);
            if (static_cast<double>(kapao::detail::nms_iou(box_a, box_b)) > iou_thres) {
                suppressed[order[b]] = true;
            }
        }
    }
    if (keep.size() > max_det) keep.resize(max_det);
    return keep;
}

void test_half_conversion() {
    CHECK(kapao::half_to_float(0x3c00) == 1.0f);
    CHECK(kapao::half_to_float(0xc000) == -2.0f);
    CHECK(kapao::half_to_float(0x7bff) == 65504.0f);
    CHECK(kapao::half_to_float(0x0001) == std::ldexp(1.0f, -24));
    CHECK(kapao::half_to_float(0x03ff) == std::ldexp(1023.0f, -24));
    CHECK(std::isinf(kapao::half_to_float(0x7c00)) && kapao::half_to_float(0x7c00) > 0);
    CHECK(std::isinf(kapao::half_to_float(0xfc00)) && kapao::half_to_float(0xfc00) < 0);
    CHECK(std::isnan(kapao::half_to_float(0x7e00)));
    CHECK(std::signbit(kapao::half_to_float(0x8000)) && kapao::half_to_float(0x8000) == 0.0f);

    CHECK(kapao::float_to_half(1.0f) == 0x3c00);
    CHECK(kapao::float_to_half(65504.0f) == 0x7bff);
    CHECK(kapao::float_to_half(65519.0f) == 0x7bff);
    CHECK(kapao::float_to_half(65520.0f) == 0x7c00);              // rounds to inf
    CHECK(kapao::float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);       // tie -> even
    CHECK(kapao::float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);   // tie -> even (up)
    CHECK(kapao::float_to_half(std::ldexp(1.0f, -25)) == 0x0000);              // tie -> even 0
    CHECK(kapao::float_to_half(std::ldexp(1.5f, -25)) == 0x0001);
    CHECK(kapao::float_to_half(std::ldexp(3.0f, -25)) == 0x0002);              // 1.5 ulp tie -> 2
    CHECK(kapao::float_to_half(-0.0f) == 0x8000);
    CHECK(kapao::float_to_half(kNaN) == 0x7e00);
    CHECK(kapao::float_to_half(-kInf) == 0xfc00);
    CHECK(kapao::float_to_half(std::ldexp(1023.9f, -24)) == 0x0400);           // up to min normal

    // Every half survives half -> float -> half unchanged (NaNs stay NaN).
    int mismatches = 0;
    for (std::uint32_t h = 0; h <= 0xffffu; ++h) {
        const float f = kapao::half_to_float(static_cast<std::uint16_t>(h));
        const std::uint16_t back = kapao::float_to_half(f);
        if (std::isnan(f) ? !std::isnan(kapao::half_to_float(back)) : back != h) ++mismatches;
    }
    CHECK(mismatches == 0);
}

void test_iou_edge_cases() {
    using kapao::detail::NmsBox;
    auto box = [](float x1, float y1, float x2, float y2) {
        return NmsBox{x1, y1, x2, y2, (x2 - x1) * (y2 - y1)};
    };
    CHECK(kapao::detail::nms_iou(box(0, 0, 10, 10), box(0, 0, 10, 10)) == 1.0f);
    CHECK(kapao::detail::nms_iou(box(0, 0, 10, 10), box(20, 20, 30, 30)) == 0.0f);
    CHECK(kapao::detail::nms_iou(box(0, 0, 10, 10), box(10, 0, 20, 10)) == 0.0f);  // touching
    CHECK_NEAR(kapao::detail::nms_iou(box(0, 0, 10, 10), box(5, 0, 15, 10)), 50.0 / 150.0, 1e-7);
    CHECK_NEAR(kapao::detail::nms_iou(box(0, 0, 10, 10), box(2, 2, 4, 4)), 4.0 / 100.0, 1e-7);
    // Two zero-area boxes: 0 / 0 is NaN, which never suppresses.
    CHECK(std::isnan(kapao::detail::nms_iou(box(5, 5, 5, 5), box(5, 5, 5, 5))));
    // The class offset is applied in float32 before the IoU, like the official batched NMS.
    const auto offset = kapao::detail::offset_box(candidate(0.3f, 0.3f, 10.3f, 10.3f, 0.9f, 3, 0));
    CHECK(offset.x1 == 0.3f + 3 * 4096.0f);
    CHECK(offset.area == (offset.x2 - offset.x1) * (offset.y2 - offset.y1));
}

void test_nms_order_and_ties() {
    kapao::detail::NmsRun run;
    // Equal scores: the lower index goes first, so it is the one kept of an overlapping pair.
    run.candidates = {candidate(0, 0, 10, 10, 0.5f, 0, 0), candidate(1, 0, 11, 10, 0.5f, 0, 1),
                      candidate(100, 100, 110, 110, 0.9f, 0, 2), candidate(300, 300, 310, 310, 0.5f, 0, 3)};
    kapao::detail::run_nms(run, 0.5, 300, 30000, 1);
    CHECK((run.kept == std::vector<std::uint32_t>{2, 0, 3}));
    CHECK(run.grouped);

    // max_det caps the output in score order.
    kapao::detail::run_nms(run, 0.5, 2, 30000, 1);
    CHECK((run.kept == std::vector<std::uint32_t>{2, 0}));

    // max_nms keeps the highest scores (ties by index) before NMS.
    run.candidates = {candidate(0, 0, 10, 10, 0.2f, 0, 0), candidate(50, 0, 60, 10, 0.7f, 0, 1),
                      candidate(100, 0, 110, 10, 0.2f, 0, 2), candidate(150, 0, 160, 10, 0.3f, 0, 3)};
    kapao::detail::run_nms(run, 0.5, 300, 3, 1);
    CHECK((run.kept == std::vector<std::uint32_t>{1, 3, 0}));
    kapao::detail::run_nms(run, 0.5, 300, 0, 1);
    CHECK(run.kept.empty());

    // IoU exactly at the threshold does not suppress (strict >).
    run.candidates = {candidate(0, 0, 10, 10, 0.9f, 0, 0), candidate(5, 0, 15, 10, 0.8f, 0, 1)};
    kapao::detail::run_nms(run, static_cast<double>(kapao::detail::nms_iou(
                                    kapao::detail::offset_box(run.candidates[0]),
                                    kapao::detail::offset_box(run.candidates[1]))),
                           300, 30000, 1);
    CHECK(run.kept.size() == 2);
}

void test_grouping_matches_global() {
    // Many classes, overlapping boxes, equal scores: grouped NMS must equal the brute force.
    kapao::detail::NmsRun run;
    std::uint32_t seed = 12345;
    auto next = [&seed]() {
        seed = seed * 1664525u + 1013904223u;
        return static_cast<float>(seed >> 8) / 16777216.0f;
    };
    for (std::uint32_t i = 0; i < 400; ++i) {
        const float x = next() * 600.0f;
        const float y = next() * 600.0f;
        const float conf = static_cast<float>(static_cast<int>(next() * 20.0f)) / 20.0f + 0.01f;
        run.candidates.push_back(candidate(x, y, x + 20 + next() * 80, y + 20 + next() * 80, conf,
                                           static_cast<int>(next() * 18.0f), i));
    }
    for (const std::size_t max_det : {std::size_t{300}, std::size_t{7}}) {
        kapao::detail::run_nms(run, 0.45, static_cast<int>(max_det), 30000, 18);
        CHECK(run.grouped);
        CHECK(run.kept == brute_force_nms(run.candidates, 0.45, max_det));
        kapao::detail::run_nms(run, 0.45, static_cast<int>(max_det), 30000, 18,
                               kapao::detail::NmsMode::Global);
        CHECK(!run.grouped);
        CHECK(run.kept == brute_force_nms(run.candidates, 0.45, max_det));
    }

    // Boxes spanning more than 4096 px: the class offset lets classes interact, as officially.
    // Class 1 box (0,0,4096,4096) becomes (4096,..,8192) and overlaps class 0's big box by 0.25.
    run.candidates = {candidate(0, 0, 8192, 8192, 0.9f, 0, 0), candidate(0, 0, 4096, 4096, 0.8f, 1, 1)};
    kapao::detail::run_nms(run, 0.2, 300, 30000, 2);
    CHECK(!run.grouped);
    CHECK((run.kept == std::vector<std::uint32_t>{0}));
    CHECK(run.kept == brute_force_nms(run.candidates, 0.2, 300));
}

void test_candidate_filter_and_nonfinite() {
    Rows rows(2);
    rows.add(100, 100, 50, 100, 0.9f, 0, 0.9f, 100, 100);                 // person
    rows.add(kNaN, 100, 50, 100, 0.9f, 0, 0.9f);                          // NaN box: dropped
    rows.add(100, kInf, 50, 100, 0.9f, 0, 0.9f);                          // inf box: dropped
    rows.add(300, 300, 50, 100, kInf, 0, 0.9f);                           // inf obj: dropped
    rows.add(300, 300, 50, 100, kNaN, 0, 0.9f);                           // NaN obj: dropped
    float* all_nan = rows.add(400, 400, 50, 100, 0.9f, 0, kNaN);          // every class NaN
    all_nan[6] = kNaN;
    all_nan[7] = kNaN;
    float* partly_nan = rows.add(500, 500, 50, 100, 0.8f, 1, 0.5f, 1, 1);  // NaN person score
    partly_nan[5] = kNaN;
    rows.add(200, 500, 50, 100, 0.0005f, 0, 1.0f);                        // obj below threshold
    kapao::Config config = kapao::val_config();
    config.use_kp_dets = false;
    const kapao::Poses poses = run(rows, config);
    CHECK(poses.num_poses == 1);
    CHECK(poses.scores.size() == 1 && poses.scores[0] == 0.9f * 0.9f);

    // The partly-NaN row's best class is keypoint 0 (NaN counts as -inf), not person.
    kapao::Workspace ws;
    kapao::Poses out;
    kapao::postprocess_image(rows.data, rows.count(), rows.outputs(), {640, 640}, {640, 640},
                             kapao::val_config(), ws, out);
    CHECK(ws.state().person_run.candidates.size() == 1);
    CHECK(ws.state().kp_run.candidates.size() == 1 && ws.state().kp_run.candidates[0].cls == 1 &&
          ws.state().kp_run.candidates[0].row == 6);
}

void test_empty_input() {
    Rows rows(17);
    const kapao::Poses poses = run(rows, kapao::val_config());
    CHECK(poses.num_poses == 0 && poses.num_keypoints == 17);
    CHECK(poses.keypoints.empty() && poses.boxes.empty() && poses.scores.empty());

    kapao::Workspace ws;
    kapao::Poses out;
    const kapao::Status bad_width =
        kapao::postprocess_image(rows.data, 0, 50, {640, 640}, {640, 640}, kapao::val_config(), ws, out);
    CHECK(!bad_width.ok());  // 50 is not 3K + 6
    CHECK(bad_width.message().find("3K + 6") != std::string::npos);
    kapao::Config config;
    config.iou_thres = 1.5;
    CHECK(!kapao::validate_config(config).ok());
    CHECK(kapao::validate_config(kapao::Config{}).ok());
}

void test_fusion_order() {
    // One pose (keypoint 0 at (100, 100)); three keypoint-0 objects near it, visited in NMS order
    // (conf descending). The first overwrites; a lower conf never replaces a higher one.
    Rows rows(1);
    rows.add(100, 150, 80, 200, 0.9f, 0, 1.0f, 100, 100);
    rows.add(110, 100, 10, 10, 0.6f, 1, 1.0f);  // conf 0.6, 10 px away
    rows.add(300, 300, 10, 10, 0.8f, 1, 1.0f);  // conf 0.8, far away (> tol)
    rows.add(90, 100, 10, 10, 0.5f, 1, 1.0f);   // conf 0.5, 10 px away, lower conf
    kapao::Config config = kapao::val_config();
    config.overwrite_tol = 50.0;
    kapao::Poses poses = run(rows, config);
    CHECK(poses.num_poses == 1);
    CHECK(poses.keypoints[0] == 110.0f && poses.keypoints[1] == 100.0f && poses.keypoints[2] == 0.6f);

    // Nearest pose by the CURRENT keypoint: the first fusion moves pose B's keypoint away, so the
    // second object, nearer B's original keypoint, now goes to pose A.
    Rows two(1);
    two.add(100, 150, 80, 200, 0.95f, 0, 1.0f, 100, 100);  // pose A, kp0 (100, 100)
    two.add(400, 150, 80, 200, 0.90f, 0, 1.0f, 130, 100);  // pose B, kp0 (130, 100)
    two.add(160, 100, 4, 4, 0.7f, 1, 1.0f);  // A 60, B 30: B's kp0 -> (160, 100)
    two.add(120, 100, 4, 4, 0.6f, 1, 1.0f);  // A 20, B now 40 (was 10): A's kp0 -> (120, 100)
    poses = run(two, config);
    CHECK(poses.num_poses == 2);
    CHECK(poses.keypoints[0] == 120.0f && poses.keypoints[2] == 0.6f);  // pose A
    CHECK(poses.keypoints[3] == 160.0f && poses.keypoints[5] == 0.7f);  // pose B

    // Poses at or below conf_thres_kp_person do not take part.
    config.conf_thres_kp_person = 0.95;
    poses = run(two, config);
    CHECK(poses.keypoints[2] == 0.0f && poses.keypoints[5] == 0.0f);
}

void test_compat_clipping() {
    // Keypoints outside a 200x100 original image (input 400x200: gain 2, no padding).
    Rows rows(3);
    float* row = rows.add(100.6f, 50, 300, 60, 0.9f, 0, 1.0f);
    const float coords[6] = {-10, -10, 450, 250, -20, 300};
    for (int i = 0; i < 6; ++i) row[6 + 3 + i] = coords[i];
    kapao::Config config = kapao::val_config();
    config.use_kp_dets = false;
    config.compat = kapao::Compat::Official;
    const kapao::ImageSize input{200, 400};
    const kapao::ImageSize original{100, 200};

    kapao::Poses official = run(rows, config, input, original);
    CHECK(official.num_poses == 1);
    const float* box = official.boxes.data();
    // x1 = (100.6 - 150) / 2 = -24.7 -> 0; y1 = 10; x2 = 125.3 -> 125 (rounded); y2 = 40
    CHECK(box[0] == 0.0f && box[1] == 10.0f && box[2] == 125.0f && box[3] == 40.0f);
    const float* kp = official.keypoints.data();
    CHECK(kp[0] == 0.0f && kp[1] == 0.0f);      // keypoint 0 clipped
    CHECK(kp[3] == 200.0f && kp[4] == 100.0f);  // keypoint 1 clipped
    CHECK(kp[6] == -10.0f && kp[7] == 150.0f);  // keypoint 2 not clipped (official quirk)

    config.compat = kapao::Compat::Default;
    kapao::Poses fixed = run(rows, config, input, original);
    CHECK(std::fabs(fixed.boxes[2] - 125.3f) < 1e-4f);  // not rounded
    CHECK(fixed.keypoints[6] == 0.0f && fixed.keypoints[7] == 100.0f);  // every keypoint clipped

    // Rounding is half to even, like torch.round.
    Rows tie(1);
    tie.add(174.0f, 50, 150, 60, 0.9f, 0, 1.0f);  // x2 = 249 -> /2 = 124.5 -> 124
    config.compat = kapao::Compat::Official;
    const kapao::Poses rounded = run(tie, config, input, original);
    CHECK(rounded.boxes[2] == 124.0f);
}

void test_combined_run_and_letterbox() {
    // iou_thres == iou_thres_kp and conf_thres_kp >= conf_thres: one NMS over all classes, where
    // max_det counts persons and keypoint objects together.
    Rows rows(1);
    rows.add(100, 100, 50, 50, 0.9f, 1, 1.0f);  // keypoint object, highest score
    rows.add(300, 300, 50, 50, 0.8f, 0, 1.0f);  // person
    kapao::Config config = kapao::demo_config();  // iou 0.45 == iou_kp 0.45
    config.conf_thres = 0.5;                      // conf_thres_kp 0.5 >= 0.5: combined
    config.max_det = 1;
    const kapao::Poses combined = run(rows, config);
    CHECK(combined.num_poses == 0);  // the single slot went to the keypoint object
    config.iou_thres_kp = 0.3;       // separate runs: each has its own max_det
    const kapao::Poses separate = run(rows, config);
    CHECK(separate.num_poses == 1);

    // Letterbox: 1280x720 image in a 640x640 input: gain 0.5, pad_y = 140.
    Rows person(1);
    person.add(320, 320, 100, 100, 0.9f, 0, 1.0f, 320, 140);
    config = kapao::val_config();
    const kapao::Poses poses = run(person, config, {640, 640}, {720, 1280});
    CHECK(poses.num_poses == 1);
    CHECK(poses.boxes[0] == 540.0f && poses.boxes[1] == 260.0f);
    CHECK(poses.keypoints[0] == 640.0f && poses.keypoints[1] == 0.0f);
}

void test_steady_state_reuses_memory() {
    Rows rows(17);
    for (int i = 0; i < 50; ++i) {
        rows.add(10.0f * static_cast<float>(i), 100, 60, 120, 0.5f + 0.01f * static_cast<float>(i),
                 static_cast<std::size_t>(i % 18), 0.9f, 50, 50);
    }
    kapao::Workspace ws;
    kapao::Poses poses;
    const kapao::Config config = kapao::val_config();
    kapao::postprocess_image(rows.data, rows.count(), rows.outputs(), {640, 640}, {480, 640},
                             config, ws, poses);
    const void* candidates = ws.state().person_run.candidates.data();
    const void* keypoints = poses.keypoints.data();
    const std::size_t capacity = ws.state().kp_run.order.capacity();
    for (int repeat = 0; repeat < 3; ++repeat) {
        kapao::postprocess_image(rows.data, rows.count(), rows.outputs(), {640, 640},
                                 {480, 640}, config, ws, poses);
    }
    CHECK(ws.state().person_run.candidates.data() == candidates);
    CHECK(poses.keypoints.data() == keypoints);
    CHECK(ws.state().kp_run.order.capacity() == capacity);
}

void test_fp16_matches_fp32() {
    Rows rows(17);
    for (int i = 0; i < 40; ++i) {
        const float f = static_cast<float>(i);
        rows.add(20 + 13 * f, 300 - 5 * f, 40 + f, 90 + 2 * f, 0.3f + 0.015f * f,
                 static_cast<std::size_t>(i % 18), 0.95f, 200 + 3 * f, 250 - 2 * f);
    }
    std::vector<std::uint16_t> half(rows.data.size());
    std::vector<float> rounded(rows.data.size());
    for (std::size_t i = 0; i < half.size(); ++i) {
        half[i] = kapao::float_to_half(rows.data[i]);
        rounded[i] = kapao::half_to_float(half[i]);
    }
    kapao::Workspace ws;
    kapao::Poses from_half;
    kapao::Poses from_float;
    const kapao::Config config = kapao::val_config();
    kapao::postprocess_image(half, rows.count(), rows.outputs(), {640, 640}, {480, 640}, config,
                             ws, from_half);
    kapao::postprocess_image(rounded, rows.count(), rows.outputs(), {640, 640}, {480, 640},
                             config, ws, from_float);
    CHECK(from_half.num_poses > 0);
    CHECK(from_half.num_poses == from_float.num_poses);
    CHECK(from_half.keypoints == from_float.keypoints);
    CHECK(from_half.boxes == from_float.boxes);
    CHECK(from_half.scores == from_float.scores);
}

}  // namespace


void test_presets_and_defaults() {
    // Python's PostprocessConfig() defaults; official_val() == val_config(), both compat "default".
    const kapao::Config defaults;
    CHECK(defaults.compat == kapao::Compat::Default);
    CHECK(defaults.conf_thres == 0.001 && defaults.iou_thres == 0.65 && defaults.overwrite_tol == 50.0);
    const kapao::Config val = kapao::val_config();
    CHECK(val.compat == kapao::Compat::Default && val.conf_thres == defaults.conf_thres);
    const kapao::Config demo = kapao::demo_config();
    CHECK(demo.compat == kapao::Compat::Default && demo.conf_thres == 0.7 && demo.overwrite_tol == 25.0);
}

void test_sizes_are_checked() {
    Rows rows(17);
    rows.add(100, 100, 50, 100, 0.9f, 0, 0.9f, 100, 100);
    rows.add(300, 300, 50, 100, 0.9f, 0, 0.9f, 300, 300);
    kapao::Workspace ws;
    kapao::Poses out;
    const kapao::Config config = kapao::val_config();
    // One value short of (2, 57): refused before anything is read.
    const kapao::Span<const float> short_view(rows.data.data(), rows.data.size() - 1);
    kapao::Status status = kapao::postprocess_image(short_view, 2, 57, {640, 640}, {640, 640}, config, ws, out);
    CHECK(!status.ok() && status.message().find("needs 114") != std::string::npos);
    // A shape whose element count wraps around size_t.
    const std::size_t huge = std::numeric_limits<std::size_t>::max() / 2;
    status = kapao::postprocess_image(rows.data, huge, 57, {640, 640}, {640, 640}, config, ws, out);
    CHECK(!status.ok());
    // Batch offsets: 2 images of 1 row need 2 sizes and exactly 2 * 57 values.
    std::vector<kapao::Poses> batch_out;
    const std::vector<kapao::ImageSize> one_size = {{640, 640}};
    status = kapao::postprocess_batch(rows.data, 2, 1, 57, {640, 640}, one_size, config, ws, batch_out);
    CHECK(!status.ok() && batch_out.empty());
    const std::vector<kapao::ImageSize> sizes = {{640, 640}, {480, 640}};
    status = kapao::postprocess_batch(rows.data, 3, 1, 57, {640, 640}, sizes, config, ws, batch_out);
    CHECK(!status.ok() && batch_out.empty());
    status = kapao::postprocess_batch(rows.data, 2, 1, 57, {640, 640}, sizes, config, ws, batch_out);
    CHECK(status.ok() && batch_out.size() == 2);
    CHECK(batch_out[0].num_poses == 1 && batch_out[1].num_poses == 1);
    // Non-positive image sizes and a null pointer with a non-zero size.
    status = kapao::postprocess_image(rows.data, 2, 57, {0, 640}, {640, 640}, config, ws, out);
    CHECK(!status.ok());
    status = kapao::postprocess_image(kapao::Span<const float>(nullptr, 114), 2, 57, {640, 640},
                                      {640, 640}, config, ws, out);
    CHECK(!status.ok());
}


void test_letterbox_geometry() {
    // Official fixture values: 333x517 to 320 (auto: 256x320, pad 25 top), 700x500 to 320 not auto.
    kapao::LetterboxGeometry g;
    CHECK(kapao::letterbox_geometry({333, 517}, {320, 320}, 64, true, true, g).ok());
    CHECK(g.input.height == 256 && g.input.width == 320 && g.pad_y == 25.0 && g.pad_x == 0.0);
    CHECK(g.resized.height == 206 && g.resized.width == 320 && g.top == 25 && g.bottom == 25);
    CHECK(kapao::letterbox_geometry({700, 500}, {320, 320}, 64, false, true, g).ok());
    CHECK(g.input.height == 320 && g.input.width == 320 && g.pad_x == 45.5 && g.left == 45 && g.right == 46);
    // Back-projection inverts the scale and padding (the post-processor's scale_coords).
    CHECK(kapao::letterbox_geometry({480, 640}, {640, 640}, 64, true, true, g).ok());
    CHECK(g.input.height == 512 && g.to_original_y(16.0f) == 0.0f && g.to_original_x(100.0f) == 100.0f);
    CHECK(!kapao::letterbox_geometry({0, 640}, {640, 640}, 64, true, true, g).ok());
    CHECK(!kapao::letterbox_geometry({480, 640}, {640, 640}, 0, true, true, g).ok());
}

void test_model_metadata() {
    const std::string json = R"({"anchors": [[19.0, 27.0]], "input_shape": ["batch", 3, "height", "width"],
        "num_keypoints": 17, "postprocess": {"overwrite_tol": 12.0}, "preset": "coco", "name": "a \"quoted\" \u00e9",
        "input_format": "uint8", "max_candidates": 200, "calibration": null, "ok": true})";
    kapao::ModelInfo model;
    const kapao::Status status = kapao::parse_model_info(json, model);
    CHECK(status.ok());
    CHECK(model.preset == "coco" && model.num_keypoints == 17 && model.dynamic_hw() && model.batch == -1);
    CHECK(model.input_format == kapao::InputFormat::Uint8 && model.max_candidates == 200);
    kapao::Config config;
    CHECK(kapao::recommended_config(model, kapao::demo_config(), config).ok());
    CHECK(config.overwrite_tol == 12.0 && config.conf_thres == 0.7);

    kapao::ModelInfo fixed;
    CHECK(kapao::parse_model_info(R"({"preset": "coco", "num_keypoints": 17, "input_shape": [1, 3, 448, 640]})", fixed).ok());
    CHECK(!fixed.dynamic_hw() && fixed.height == 448 && fixed.width == 640 && fixed.batch == 1);
    CHECK(fixed.input_format == kapao::InputFormat::Float && fixed.max_candidates == 0);

    // Malformed or ill-typed metadata is an error, never a crash.
    for (const char* bad : {"", "{", "[1, 2]", R"({"preset": "coco"})", R"({"preset": "coco", "num_keypoints": 1.5,
            "input_shape": [1, 3, 64, 64]})", R"({"preset": "coco", "num_keypoints": 17, "input_shape": [1, 3, 64]})",
            R"({"preset": "coco", "num_keypoints": 17, "input_shape": [1, 3, 64, 64], "input_format": "half"})",
            R"({"preset": "coco", "num_keypoints": 17, "input_shape": [1, 3, 64, 64]} trailing)"}) {
        kapao::ModelInfo ignored;
        CHECK(!kapao::parse_model_info(bad, ignored).ok());
    }
    kapao::ModelInfo unknown_option;
    CHECK(kapao::parse_model_info(R"({"preset": "coco", "num_keypoints": 17, "input_shape": [1, 3, 64, 64],
        "postprocess": {"nms_magic": 3}})", unknown_option).ok());
    CHECK(!kapao::recommended_config(unknown_option, kapao::demo_config(), config).ok());
}

int main() {
    test_half_conversion();
    test_iou_edge_cases();
    test_nms_order_and_ties();
    test_grouping_matches_global();
    test_candidate_filter_and_nonfinite();
    test_empty_input();
    test_fusion_order();
    test_compat_clipping();
    test_combined_run_and_letterbox();
    test_steady_state_reuses_memory();
    test_fp16_matches_fp32();
    test_presets_and_defaults();
    test_sizes_are_checked();
    test_letterbox_geometry();
    test_model_metadata();
    if (failures != 0) {
        std::fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    std::printf("all C++ post-processor tests passed\n");
    return 0;
}
