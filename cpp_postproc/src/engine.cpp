// open_engine(): file checks common to every runtime, then the runtime the file name asks for.
#include <fstream>
#include <string>

#include "engines.hpp"

namespace kapao {
namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
    return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

const char* engine_runtimes() noexcept {
#if defined(KAPAO_WITH_ONNXRUNTIME) && defined(KAPAO_WITH_TENSORRT)
    return "onnxruntime,tensorrt";
#elif defined(KAPAO_WITH_ONNXRUNTIME)
    return "onnxruntime";
#elif defined(KAPAO_WITH_TENSORRT)
    return "tensorrt";
#else
    return "";
#endif
}

Status open_engine(const std::string& path, const EngineOptions& options, std::unique_ptr<Engine>& out) {
    try {
        if (!std::ifstream(path, std::ios::binary).good()) {
            return Status::Error("model file not found: " + path);
        }
        if (ends_with(path, ".onnx")) {
#ifdef KAPAO_WITH_ONNXRUNTIME
            return detail::open_onnxruntime(path, options, out);
#else
            return Status::Error("this build has no ONNX Runtime engine (configure with -DKAPAO_WITH_ONNXRUNTIME=ON)");
#endif
        }
        if (ends_with(path, ".engine") || ends_with(path, ".plan")) {
#ifdef KAPAO_WITH_TENSORRT
            return detail::open_tensorrt(path, options, out);
#else
            return Status::Error("this build has no TensorRT engine (configure with -DKAPAO_WITH_TENSORRT=ON)");
#endif
        }
        return Status::Error("unknown model file type: " + path + " (expected .onnx, .engine or .plan)");
    } catch (const std::exception& error) {
        return Status::Error(error.what());
    }
}

}  // namespace kapao
