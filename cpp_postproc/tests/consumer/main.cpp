// Calls the installed SDK the way an app does: presets, one frame of predictions, error handling.
#include <cstdio>
#include <vector>

#ifdef KAPAO_CONSUMER_ENGINES
#include <kapao/engine.hpp>
#endif
#include <kapao/letterbox.hpp>
#include <kapao/postproc.hpp>

int main() {
    const kapao::Config config = kapao::val_config();
    if (config.conf_thres != 0.001) {
        std::fprintf(stderr, "unexpected val conf_thres %g\n", config.conf_thres);
        return 1;
    }
    // A 480x640 frame letterboxed to 640: 640x480 input, no padding... then auto-padded to 512.
    kapao::LetterboxGeometry geometry;
    if (!kapao::letterbox_geometry({480, 640}, {640, 640}, 64, true, true, geometry) ||
        geometry.input.height != 512 || geometry.top != 16) {
        std::fprintf(stderr, "unexpected letterbox geometry\n");
        return 1;
    }

    // One person row (K = 17, No = 57) in a 512x640 input: cx, cy, w, h, obj, class 0, keypoints.
    const std::size_t K = 17, No = 3 * K + 6;
    std::vector<float> predictions(2 * No, 0.0f);  // (N=2, No); row 1 is zero padding
    float* row = predictions.data();
    row[0] = 320.0f; row[1] = 256.0f; row[2] = 100.0f; row[3] = 200.0f; row[4] = 0.9f; row[5] = 0.95f;
    for (std::size_t k = 0; k < K; ++k) {
        row[6 + K + 2 * k] = 300.0f + static_cast<float>(k);
        row[6 + K + 2 * k + 1] = 200.0f + static_cast<float>(k);
    }
    kapao::Workspace workspace;
    kapao::Poses poses;
    kapao::Status status = kapao::postprocess_image(predictions, 2, No, geometry.input,
                                                    geometry.original, config, workspace, poses);
    if (!status || poses.num_poses != 1) {
        std::fprintf(stderr, "postprocess failed: %s\n", status.message().c_str());
        return 1;
    }
    // Keypoint 0 back in the 480x640 frame: (300 - 0) / 1, (200 - 16) / 1.
    if (poses.keypoints[0] != 300.0f || poses.keypoints[1] != 184.0f) {
        std::fprintf(stderr, "unexpected keypoint %g %g\n", poses.keypoints[0], poses.keypoints[1]);
        return 1;
    }
    // A wrong length is an error the app handles, not a crash.
    status = kapao::postprocess_image(kapao::Span<const float>(predictions.data(), No + 1), 2, No,
                                      geometry.input, geometry.original, config, workspace, poses);
    if (status.ok()) {
        std::fprintf(stderr, "a short buffer was accepted\n");
        return 1;
    }
#ifdef KAPAO_CONSUMER_ENGINES
    // The engines library and its runtime resolve from the installed prefix alone.
    std::unique_ptr<kapao::Engine> engine;
    const kapao::Status missing = kapao::open_engine("no-such-model.onnx", {}, engine);
    if (missing.ok() || missing.message().find("not found") == std::string::npos) {
        std::fprintf(stderr, "open_engine accepted a missing file\n");
        return 1;
    }
    std::printf("engines: %s\n", kapao::engine_runtimes());
#endif
    std::printf("consumer OK: %zu pose, size error reported: %s\n", poses.num_poses,
                status.message().c_str());
    return 0;
}
