// Frame -> poses, end to end: video file or camera in, letterbox, engine, post-processing,
// poses drawn; an annotated video and one JSON line per frame out; per-stage timings printed.
//
//   kapao_video_poses --model model.onnx --source clip.mp4 --out-video poses.mp4 --out-json poses.jsonl
//                     [--imgsz 640] [--preset demo|val] [--threads N] [--max-frames N]
//
// --source 0 opens camera 0. Bad input (missing model, unreadable video, a model that is not
// KAPAO's) is one line on stderr and exit status 1; outputs are written to temporary files and
// renamed at the end, so a failed run leaves no partial files.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/videoio.hpp>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <unistd.h>
#endif

#include "kapao/engine.hpp"
#include "kapao/opencv.hpp"
#include "kapao/postproc.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct Args {
    std::string model, source, out_video, out_json, preset = "demo";
    int imgsz = 640, threads = 0;
    long max_frames = -1;
};

// Removes the temporary outputs unless they were committed (renamed into place).
struct PartialFiles {
    std::vector<std::string> paths;
    bool committed = false;
    ~PartialFiles() {
        if (!committed) {
            for (const std::string& path : paths) {
                std::remove(path.c_str());
            }
        }
    }
};

// Video back-ends print their own diagnostics on stderr when a file is not a video; the app
// reports one line of its own instead, so they are muted while the source is opened.
class QuietStderr {
public:
    QuietStderr() {
#if defined(__unix__) || defined(__APPLE__)
        std::fflush(stderr);
        saved_ = dup(2);
        const int null = open("/dev/null", O_WRONLY);
        if (saved_ >= 0 && null >= 0) {
            dup2(null, 2);
        }
        if (null >= 0) {
            close(null);
        }
#endif
    }
    ~QuietStderr() {
#if defined(__unix__) || defined(__APPLE__)
        if (saved_ >= 0) {
            std::fflush(stderr);
            dup2(saved_, 2);
            close(saved_);
        }
#endif
    }
    QuietStderr(const QuietStderr&) = delete;
    QuietStderr& operator=(const QuietStderr&) = delete;

private:
    int saved_ = -1;
};

int fail(const std::string& message) {
    std::fprintf(stderr, "error: %s\n", message.c_str());
    return 1;
}

bool parse_int(const std::string& text, long& value) {
    char* end = nullptr;
    value = std::strtol(text.c_str(), &end, 10);
    return !text.empty() && end == text.c_str() + text.size();
}

bool parse_args(int argc, char** argv, Args& args, std::string& error) {
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (i + 1 >= argc) {
            error = "missing value for " + flag;
            return false;
        }
        const std::string value = argv[++i];
        long number = 0;
        if (flag == "--model") args.model = value;
        else if (flag == "--source") args.source = value;
        else if (flag == "--out-video") args.out_video = value;
        else if (flag == "--out-json") args.out_json = value;
        else if (flag == "--preset") args.preset = value;
        else if (flag == "--imgsz" && parse_int(value, number) && number > 0 && number % 64 == 0) args.imgsz = static_cast<int>(number);
        else if (flag == "--threads" && parse_int(value, number) && number >= 0) args.threads = static_cast<int>(number);
        else if (flag == "--max-frames" && parse_int(value, number)) args.max_frames = number;
        else {
            error = "bad option " + flag + " " + value;
            return false;
        }
    }
    if (args.model.empty() || args.source.empty() || args.out_video.empty() || args.out_json.empty()) {
        error = "usage: kapao_video_poses --model M --source VIDEO|CAMERA --out-video OUT.mp4 --out-json OUT.jsonl "
                "[--imgsz 640] [--preset demo|val] [--threads N] [--max-frames N]";
        return false;
    }
    if (args.preset != "demo" && args.preset != "val") {
        error = "--preset must be demo or val, got " + args.preset;
        return false;
    }
    return true;
}

// The temporary name keeps the extension, which picks cv::VideoWriter's container.
std::string partial_name(const std::string& path) {
    const std::size_t slash = path.find_last_of('/');
    const std::size_t dot = path.find_last_of('.');
    if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) {
        return path + ".partial";
    }
    return path.substr(0, dot) + ".partial" + path.substr(dot);
}

// %.9g round-trips float32 exactly; JSON has no NaN or infinity, so those are written as null.
void write_number(std::FILE* out, const char* before, float value) {
    if (std::isfinite(value)) {
        std::fprintf(out, "%s%.9g", before, static_cast<double>(value));
    } else {
        std::fprintf(out, "%snull", before);
    }
}

void write_json_line(std::FILE* out, long frame, const kapao::Poses& poses) {
    std::fprintf(out, "{\"frame\": %ld, \"poses\": [", frame);
    for (std::size_t p = 0; p < poses.num_poses; ++p) {
        const float* box = &poses.boxes[4 * p];
        write_number(out, p ? ", {\"score\": " : "{\"score\": ", poses.scores[p]);
        write_number(out, ", \"box\": [", box[0]);
        write_number(out, ", ", box[1]);
        write_number(out, ", ", box[2]);
        write_number(out, ", ", box[3]);
        std::fprintf(out, "], \"keypoints\": [");
        for (std::size_t k = 0; k < poses.num_keypoints; ++k) {
            const float* kp = &poses.keypoints[3 * (p * poses.num_keypoints + k)];  // x, y, conf
            write_number(out, k ? ", [" : "[", kp[0]);
            write_number(out, ", ", kp[1]);
            write_number(out, ", ", kp[2]);
            std::fprintf(out, "]");
        }
        std::fprintf(out, "]}");
    }
    std::fprintf(out, "]}\n");
}

struct Stage {
    const char* name;
    std::vector<double> ms;
};

void print_timings(const std::vector<Stage>& stages) {
    // The first frame pays one-off costs (allocation, runtime warm-up): left out of the figures.
    const std::size_t frames = stages.empty() ? 0 : stages[0].ms.size();
    std::printf("timing per frame over %zu frames (first frame excluded), ms: mean / median\n",
                frames > 1 ? frames - 1 : frames);
    for (const Stage& stage : stages) {
        std::vector<double> values(stage.ms.begin() + (stage.ms.size() > 1 ? 1 : 0), stage.ms.end());
        if (values.empty()) {
            continue;
        }
        double sum = 0.0;
        for (const double v : values) sum += v;
        std::sort(values.begin(), values.end());
        std::printf("  %-22s %8.3f / %8.3f\n", stage.name, sum / static_cast<double>(values.size()),
                    values[values.size() / 2]);
    }
}

}  // namespace

int main(int argc, char** argv) {
    Args args;
    std::string error;
    if (!parse_args(argc, argv, args, error)) {
        return fail(error);
    }

    std::unique_ptr<kapao::Engine> engine;
    kapao::EngineOptions options;
    options.threads = args.threads;
    if (kapao::Status status = kapao::open_engine(args.model, options, engine); !status) {
        return fail(status.message());
    }
    const kapao::ModelInfo& model = engine->model();
    kapao::Config config;
    const kapao::Config preset = args.preset == "val" ? kapao::val_config() : kapao::demo_config();
    if (kapao::Status status = kapao::recommended_config(model, preset, config); !status) {
        return fail(args.model + ": " + status.message());
    }
    // Dynamic H/W: the official demo letterbox (smallest stride-multiple padding) to --imgsz;
    // a fixed-shape model gets exactly its input size.
    const bool auto_pad = model.dynamic_hw();
    const kapao::ImageSize target = auto_pad ? kapao::ImageSize{args.imgsz, args.imgsz}
                                             : kapao::ImageSize{model.height, model.width};

    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
    cv::VideoCapture capture;
    long camera = 0;
    {
        const QuietStderr quiet;
        if (parse_int(args.source, camera)) {
            capture.open(static_cast<int>(camera));
        } else if (std::ifstream(args.source).good()) {
            capture.open(args.source, cv::CAP_FFMPEG);
        }
    }
    if (!capture.isOpened()) {
        return fail("cannot open video source: " + args.source);
    }

    PartialFiles partial;
    const std::string video_tmp = partial_name(args.out_video);
    const std::string json_tmp = partial_name(args.out_json);
    partial.paths = {video_tmp, json_tmp};
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> json(std::fopen(json_tmp.c_str(), "w"), &std::fclose);
    if (!json) {
        return fail("cannot write " + args.out_json);
    }
    double fps = capture.get(cv::CAP_PROP_FPS);
    if (!(fps > 0.0 && fps < 1000.0)) {
        fps = 30.0;
    }

    kapao::Workspace workspace;  // reused: steady-state post-processing allocates nothing
    std::vector<kapao::Poses> poses;
    std::vector<kapao::ImageSize> originals(1);
    cv::Mat frame, letterboxed;
    kapao::LetterboxGeometry geometry;
    cv::VideoWriter writer;
    std::vector<Stage> stages = {{"letterbox", {}}, {"input conversion", {}}, {"pre-processing", {}},
                                 {"inference", {}}, {"post-processing", {}}, {"pre + post (C++)", {}},
                                 {"draw + encode", {}}};
    long frames = 0;
    bool warned = false;
    while ((args.max_frames < 0 || frames < args.max_frames) && capture.read(frame)) {
        auto start = Clock::now();
        if (kapao::Status status = kapao::letterbox(frame, target, auto_pad, letterboxed, geometry); !status) {
            return fail(status.message());
        }
        const double t_letterbox = ms_since(start);
        start = Clock::now();
        const kapao::Span<const std::uint8_t> pixels(letterboxed.data, letterboxed.total() * 3);  // (1, H, W, 3)
        if (kapao::Status status = engine->set_input(pixels, 1, geometry.input); !status) {
            return fail(status.message());
        }
        const double t_convert = ms_since(start);
        start = Clock::now();
        if (kapao::Status status = engine->run(); !status) {
            return fail(args.model + ": " + status.message());
        }
        const double t_infer = ms_since(start);
        start = Clock::now();
        const kapao::PredictionsView out = engine->predictions();  // (1, R, No)
        originals[0] = geometry.original;
        if (kapao::Status status = kapao::postprocess_batch(out.values, out.batch, out.rows, out.outputs,
                                                            geometry.input, originals, config, workspace, poses);
            !status) {
            return fail(status.message());
        }
        const double t_post = ms_since(start);
        if (!out.num_candidates.empty() && out.num_candidates[0] > static_cast<std::int32_t>(out.rows) && !warned) {
            std::fprintf(stderr, "warning: frame %ld: %d candidates above the floor, %zu kept (%zu dropped)\n",
                         frames, out.num_candidates[0], out.rows,
                         static_cast<std::size_t>(out.num_candidates[0]) - out.rows);
            warned = true;
        }
        start = Clock::now();
        if (!writer.isOpened()) {
            writer.open(video_tmp, cv::VideoWriter::fourcc('m', 'p', '4', 'v'), fps, frame.size());
            if (!writer.isOpened()) {
                return fail("cannot write video " + args.out_video);
            }
        }
        kapao::draw_poses(frame, poses[0]);
        writer.write(frame);
        write_json_line(json.get(), frames, poses[0]);
        const double t_draw = ms_since(start);
        stages[0].ms.push_back(t_letterbox);
        stages[1].ms.push_back(t_convert);
        stages[2].ms.push_back(t_letterbox + t_convert);
        stages[3].ms.push_back(t_infer);
        stages[4].ms.push_back(t_post);
        stages[5].ms.push_back(t_letterbox + t_convert + t_post);
        stages[6].ms.push_back(t_draw);
        ++frames;
    }
    if (frames == 0) {
        return fail("no frames could be read from " + args.source);
    }
    writer.release();
    if (std::fflush(json.get()) != 0 || std::ferror(json.get())) {
        return fail("cannot write " + args.out_json);
    }
    json.reset();
    if (std::rename(video_tmp.c_str(), args.out_video.c_str()) != 0 ||
        std::rename(json_tmp.c_str(), args.out_json.c_str()) != 0) {
        std::remove(args.out_video.c_str());
        return fail("cannot move the outputs into place: " + args.out_video + ", " + args.out_json);
    }
    partial.committed = true;
    std::printf("%ld frames, engine %s, input %dx%d\n", frames, engine->name(), geometry.input.height,
                geometry.input.width);
    print_timings(stages);
    return 0;
}
