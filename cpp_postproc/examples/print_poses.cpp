// Minimal camera-app integration: read raw predictions (layout in predictions_file.hpp), run the
// KAPAO post-processor, print the poses.
//
//   kapao_print_poses predictions.kprd [--preset val|demo] [--compat official|default]
//
// Output (floats with 9 significant digits, enough to round-trip float32):
//   image <b> poses <P>
//   pose <p> score <s> box <x1> <y1> <x2> <y2>
//   kp <k> <x> <y> <conf>          (K lines per pose)
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "kapao/postproc.hpp"
#include "predictions_file.hpp"

namespace {

int usage() {
    std::fprintf(stderr,
                 "usage: kapao_print_poses FILE [--preset val|demo] [--compat official|default]\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        return usage();
    }
    std::string path;
    kapao::Config config = kapao::val_config();
    kapao::Compat compat = kapao::Compat::Official;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if ((arg == "--preset" || arg == "--compat") && i + 1 < argc) {
            const std::string value = argv[++i];
            if (arg == "--preset" && value == "val") {
                config = kapao::val_config();
            } else if (arg == "--preset" && value == "demo") {
                config = kapao::demo_config();
            } else if (arg == "--compat" && value == "official") {
                compat = kapao::Compat::Official;
            } else if (arg == "--compat" && value == "default") {
                compat = kapao::Compat::Default;
            } else {
                std::fprintf(stderr, "unknown value %s for %s\n", value.c_str(), arg.c_str());
                return usage();
            }
        } else if (path.empty() && arg.rfind("--", 0) != 0) {
            path = arg;
        } else {
            return usage();
        }
    }
    config.compat = compat;

    try {
        const kapao_example::PredictionsFile file = kapao_example::read_predictions_file(path);
        // Reuse these two across frames in a real app: then steady-state calls allocate nothing.
        kapao::Workspace workspace;
        std::vector<kapao::Poses> results;
        const kapao::Status status =
            file.dtype == 0
                ? kapao::postprocess_batch(file.values_f32, file.batch, file.num_rows, file.num_outputs,
                                           file.input, file.originals, config, workspace, results)
                : kapao::postprocess_batch(file.values_f16, file.batch, file.num_rows, file.num_outputs,
                                           file.input, file.originals, config, workspace, results);
        if (!status.ok()) {
            std::fprintf(stderr, "error: %s\n", status.message().c_str());
            return 1;
        }
        for (std::size_t b = 0; b < results.size(); ++b) {
            const kapao::Poses& poses = results[b];
            std::printf("image %zu poses %zu\n", b, poses.num_poses);
            for (std::size_t p = 0; p < poses.num_poses; ++p) {
                const float* box = &poses.boxes[4 * p];
                std::printf("pose %zu score %.9g box %.9g %.9g %.9g %.9g\n", p,
                            static_cast<double>(poses.scores[p]), static_cast<double>(box[0]),
                            static_cast<double>(box[1]), static_cast<double>(box[2]),
                            static_cast<double>(box[3]));
                for (std::size_t k = 0; k < poses.num_keypoints; ++k) {
                    const float* kp = &poses.keypoints[3 * (p * poses.num_keypoints + k)];
                    std::printf("kp %zu %.9g %.9g %.9g\n", k, static_cast<double>(kp[0]),
                                static_cast<double>(kp[1]), static_cast<double>(kp[2]));
                }
            }
        }
    } catch (const std::exception& error) {
        std::fprintf(stderr, "error: %s\n", error.what());
        return 1;
    }
    return 0;
}
