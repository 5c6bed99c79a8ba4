// ONNX Runtime engine through its C++ API (header-only wrapper over the stable C API).
//
// Model files: input "images", float32 (B, 3, H, W) RGB in [0, 1] or uint8 (B, H, W, 3) BGR;
// output "predictions" float32 (B, R, No) and, for compact files, "num_candidates" int32 (B,).
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#define ORT_API_MANUAL_INIT  // check the library's API version ourselves instead of crashing
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include "engine_common.hpp"
#include "engines.hpp"

namespace kapao::detail {
namespace {

std::string first_line(const std::string& text) {
    const std::size_t end = text.find('\n');
    return end == std::string::npos ? text : text.substr(0, end);
}

// One environment per process (ONNX Runtime's rule); created on first use.
Ort::Env& environment() {
    static Ort::Env env(ORT_LOGGING_LEVEL_ERROR, "kapao_edge");
    return env;
}

class OnnxRuntimeEngine final : public Engine {
public:
    OnnxRuntimeEngine(Ort::Session session, ModelInfo model, std::string input_name,
                      std::string output_name, std::string count_name, bool uint8_input)
        : session_(std::move(session)), model_(std::move(model)), input_name_(std::move(input_name)),
          output_name_(std::move(output_name)), count_name_(std::move(count_name)),
          uint8_input_(uint8_input),
          memory_(Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault)) {}

    const char* name() const noexcept override { return "onnxruntime"; }
    const ModelInfo& model() const noexcept override { return model_; }

    Status set_input(Span<const std::uint8_t> images, std::size_t batch, ImageSize size) override {
        if (Status status = check_input(model_, images, batch, size); !status) {
            return status;
        }
        const auto h = static_cast<std::size_t>(size.height);
        const auto w = static_cast<std::size_t>(size.width);
        batch_ = batch;
        if (uint8_input_) {  // (B, H, W, 3) BGR: the pixels as they are
            pixels_.assign(images.begin(), images.end());
            shape_ = {static_cast<std::int64_t>(batch), static_cast<std::int64_t>(h),
                      static_cast<std::int64_t>(w), 3};
        } else {  // (B, 3, H, W) RGB in [0, 1]
            floats_.resize(images.size());
            bgr_to_rgb_planar(images.data(), batch, h, w, floats_.data());
            shape_ = {static_cast<std::int64_t>(batch), 3, static_cast<std::int64_t>(h),
                      static_cast<std::int64_t>(w)};
        }
        has_input_ = true;
        return Status();
    }

    Status run() override {
        if (!has_input_) {
            return Status::Error("run() before set_input()");
        }
        try {
            Ort::Value input = uint8_input_
                ? Ort::Value::CreateTensor<std::uint8_t>(memory_, pixels_.data(), pixels_.size(),
                                                         shape_.data(), shape_.size())
                : Ort::Value::CreateTensor<float>(memory_, floats_.data(), floats_.size(),
                                                  shape_.data(), shape_.size());
            const char* input_names[] = {input_name_.c_str()};
            const char* output_names[] = {output_name_.c_str(), count_name_.c_str()};
            const std::size_t num_outputs = count_name_.empty() ? 1 : 2;
            outputs_ = session_.Run(Ort::RunOptions{nullptr}, input_names, &input, 1, output_names,
                                    num_outputs);
        } catch (const Ort::Exception& error) {
            return Status::Error("ONNX Runtime: " + first_line(error.what()));
        }
        const Ort::Value& predictions = outputs_[0];
        const auto info = predictions.GetTensorTypeAndShapeInfo();
        if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
            return Status::Error("the predictions output is not float32");
        }
        const std::vector<std::int64_t> shape = info.GetShape();
        if (Status status = check_output_shape(shape, batch_, model_, "the predictions"); !status) {
            return status;
        }
        view_ = PredictionsView{};
        view_.batch = batch_;
        view_.rows = static_cast<std::size_t>(shape[1]);
        view_.outputs = static_cast<std::size_t>(shape[2]);
        view_.values = Span<const float>(predictions.GetTensorData<float>(), info.GetElementCount());
        if (num_outputs() == 2) {
            const Ort::Value& counts = outputs_[1];
            const auto count_info = counts.GetTensorTypeAndShapeInfo();
            if (count_info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 ||
                count_info.GetElementCount() != batch_) {
                return Status::Error("the num_candidates output is not int32 (B,)");
            }
            view_.num_candidates = Span<const std::int32_t>(counts.GetTensorData<std::int32_t>(), batch_);
        }
        return Status();
    }

    PredictionsView predictions() const noexcept override { return view_; }

private:
    std::size_t num_outputs() const noexcept { return count_name_.empty() ? 1 : 2; }

    Ort::Session session_;
    ModelInfo model_;
    std::string input_name_, output_name_, count_name_;
    bool uint8_input_;
    Ort::MemoryInfo memory_;
    std::vector<float> floats_;           // (B, 3, H, W)
    std::vector<std::uint8_t> pixels_;    // (B, H, W, 3)
    std::vector<std::int64_t> shape_;
    std::size_t batch_ = 0;
    bool has_input_ = false;
    std::vector<Ort::Value> outputs_;
    PredictionsView view_;
};

}  // namespace

Status open_onnxruntime(const std::string& path, const EngineOptions& options,
                        std::unique_ptr<Engine>& out) {
    const OrtApi* api = OrtGetApiBase()->GetApi(ORT_API_VERSION);
    if (api == nullptr) {
        return Status::Error(std::string("the ONNX Runtime library (") + OrtGetApiBase()->GetVersionString() +
                             ") is older than the headers this program was built with (API " +
                             std::to_string(ORT_API_VERSION) + ")");
    }
    Ort::InitApi(api);
    try {
        Ort::SessionOptions session_options;
        session_options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
        session_options.SetLogSeverityLevel(3);
        if (options.threads > 0) {
            session_options.SetIntraOpNumThreads(options.threads);
        }
        Ort::Session session(environment(), path.c_str(), session_options);

        Ort::AllocatorWithDefaultOptions allocator;
        const Ort::ModelMetadata metadata = session.GetModelMetadata();
        const Ort::AllocatedStringPtr json = metadata.LookupCustomMetadataMapAllocated("kapao_edge", allocator);
        if (!json) {
            return Status::Error(path + " has no kapao_edge metadata (export it with kapao-edge export)");
        }
        ModelInfo model;
        if (Status status = parse_model_info(json.get(), model); !status) {
            return Status::Error(path + ": " + status.message());
        }

        // Input "images" (or the only input), of the element type the metadata announces.
        if (session.GetInputCount() != 1) {
            return Status::Error(path + " has " + std::to_string(session.GetInputCount()) +
                                 " inputs; a KAPAO model has one (images)");
        }
        const std::string input_name = session.GetInputNameAllocated(0, allocator).get();
        const Ort::TypeInfo input_type = session.GetInputTypeInfo(0);  // owns what input_info reads
        const auto input_info = input_type.GetTensorTypeAndShapeInfo();
        const bool uint8_input = model.input_format == InputFormat::Uint8;
        const auto want = uint8_input ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
        if (input_info.GetElementType() != want || input_info.GetShape().size() != 4) {
            return Status::Error(path + ": input " + input_name + " is not " +
                                 (uint8_input ? "uint8 (B, H, W, 3)" : "float32 (B, 3, H, W)") +
                                 " as its metadata says");
        }

        // Output "predictions" (B, R, 3K + 6), and "num_candidates" when the file is compact.
        std::string output_name, count_name;
        for (std::size_t i = 0; i < session.GetOutputCount(); ++i) {
            const std::string name = session.GetOutputNameAllocated(i, allocator).get();
            if (name == "num_candidates") {
                count_name = name;
            } else if (output_name.empty()) {
                output_name = name;
            }
        }
        if (output_name.empty()) {
            return Status::Error(path + " has no predictions output");
        }
        for (std::size_t i = 0; i < session.GetOutputCount(); ++i) {
            if (output_name != session.GetOutputNameAllocated(i, allocator).get()) {
                continue;
            }
            const Ort::TypeInfo type = session.GetOutputTypeInfo(i);
            const auto info = type.GetTensorTypeAndShapeInfo();
            const std::vector<std::int64_t> shape = info.GetShape();  // -1 for dynamic axes
            const std::int64_t columns = 3 * static_cast<std::int64_t>(model.num_keypoints) + 6;
            if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || shape.size() != 3 ||
                (shape[2] >= 0 && shape[2] != columns)) {
                std::string text;
                for (std::size_t d = 0; d < shape.size(); ++d) {
                    text += (d ? ", " : "") + (shape[d] < 0 ? std::string("?") : std::to_string(shape[d]));
                }
                return Status::Error(path + ": output " + output_name + " has shape [" + text +
                                     "], not KAPAO's (B, rows, " + std::to_string(columns) + ") for K=" +
                                     std::to_string(model.num_keypoints));
            }
        }
        out = std::make_unique<OnnxRuntimeEngine>(std::move(session), std::move(model), input_name,
                                                  output_name, count_name, uint8_input);
        return Status();
    } catch (const Ort::Exception& error) {
        return Status::Error(path + " is not a loadable ONNX model: " + first_line(error.what()));
    }
}

}  // namespace kapao::detail
