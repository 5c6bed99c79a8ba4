// TensorRT engine (10.x / 11.x C++ API): deserialises a plan built by `kapao-edge build-trt` and
// runs it with named I/O tensors and enqueueV3. Its metadata comes from the <plan>.json sidecar,
// the same file the Python engine reads. Compiled only with -DKAPAO_WITH_TENSORRT=ON.
//
// Tensors: input "images" float32/float16 (B, 3, H, W) or uint8 (B, H, W, 3); output
// "predictions" float32/float16 (B, R, No); optional output "num_candidates" int32 (B,).
#include <cuda_runtime_api.h>
#include <NvInfer.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "engine_common.hpp"
#include "engines.hpp"

namespace kapao::detail {
namespace {

class Logger final : public nvinfer1::ILogger {
public:
    void log(Severity severity, const char* message) noexcept override {
        if (severity <= Severity::kERROR) {
            last_error = message;
        }
    }
    std::string last_error;
};

std::string cuda_error(cudaError_t code, const char* what) {
    return std::string(what) + " failed: " + cudaGetErrorString(code);
}

// Device memory that grows on demand; cudaMalloc aligns to 256 bytes, as TensorRT needs.
struct DeviceBuffer {
    void* pointer = nullptr;
    std::size_t capacity = 0;
    ~DeviceBuffer() {
        if (pointer != nullptr) {
            cudaFree(pointer);
        }
    }
    cudaError_t reserve(std::size_t bytes) {
        if (bytes <= capacity) {
            return cudaSuccess;
        }
        if (pointer != nullptr) {
            cudaFree(pointer);
            pointer = nullptr;
            capacity = 0;
        }
        const cudaError_t code = cudaMalloc(&pointer, bytes);
        if (code == cudaSuccess) {
            capacity = bytes;
        }
        return code;
    }
};

std::size_t element_size(nvinfer1::DataType type) {
    switch (type) {
        case nvinfer1::DataType::kFLOAT: return 4;
        case nvinfer1::DataType::kHALF: return 2;
        case nvinfer1::DataType::kINT32: return 4;
        case nvinfer1::DataType::kUINT8: return 1;
        default: return 0;  // not a type a KAPAO plan uses
    }
}

class TensorRTEngine final : public Engine {
public:
    const char* name() const noexcept override { return "tensorrt"; }
    const ModelInfo& model() const noexcept override { return model_; }

    Status open(const std::string& path) {
        const std::string sidecar = path + ".json";
        std::ifstream meta(sidecar);
        if (!meta) {
            return Status::Error("TensorRT plan " + path + " has no metadata sidecar " + sidecar);
        }
        std::stringstream json;
        json << meta.rdbuf();
        if (Status status = parse_model_info(json.str(), model_); !status) {
            return Status::Error(sidecar + ": " + status.message());
        }
        std::ifstream file(path, std::ios::binary);
        const std::vector<char> plan((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
        int devices = 0;
        if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < 1) {
            return Status::Error("TensorRT needs a CUDA device; none was found");
        }
        runtime_.reset(nvinfer1::createInferRuntime(logger_));
        if (!runtime_) {
            return Status::Error("TensorRT could not create a runtime");
        }
        engine_.reset(runtime_->deserializeCudaEngine(plan.data(), plan.size()));
        if (!engine_) {
            return Status::Error("TensorRT cannot load " + path + " (plans are tied to the TensorRT version and GPU "
                                 "that built them): " + logger_.last_error);
        }
        for (std::int32_t i = 0; i < engine_->getNbIOTensors(); ++i) {
            const char* tensor = engine_->getIOTensorName(i);
            if (engine_->getTensorIOMode(tensor) == nvinfer1::TensorIOMode::kINPUT) {
                if (!input_name_.empty()) {
                    return Status::Error(path + ": more than one input tensor");
                }
                input_name_ = tensor;
            } else if (std::strcmp(tensor, "num_candidates") == 0) {
                count_name_ = tensor;
            } else if (output_name_.empty()) {
                output_name_ = tensor;
            }
        }
        if (input_name_.empty() || output_name_.empty()) {
            return Status::Error(path + ": expected an input tensor and a predictions output");
        }
        input_type_ = engine_->getTensorDataType(input_name_.c_str());
        output_type_ = engine_->getTensorDataType(output_name_.c_str());
        const bool uint8_input = model_.input_format == InputFormat::Uint8;
        if (uint8_input != (input_type_ == nvinfer1::DataType::kUINT8) ||
            (!uint8_input && input_type_ != nvinfer1::DataType::kFLOAT && input_type_ != nvinfer1::DataType::kHALF)) {
            return Status::Error(path + ": the input tensor type does not match the sidecar's input_format");
        }
        if (output_type_ != nvinfer1::DataType::kFLOAT && output_type_ != nvinfer1::DataType::kHALF) {
            return Status::Error(path + ": the predictions output is neither float32 nor float16");
        }
        const nvinfer1::Dims out = engine_->getTensorShape(output_name_.c_str());
        const std::int64_t columns = 3 * static_cast<std::int64_t>(model_.num_keypoints) + 6;
        if (out.nbDims != 3 || (out.d[2] >= 0 && out.d[2] != columns)) {
            return Status::Error(path + ": the predictions output is not (B, rows, " + std::to_string(columns) + ")");
        }
        context_.reset(engine_->createExecutionContext());
        if (!context_) {
            return Status::Error("TensorRT could not create an execution context (out of device memory?)");
        }
        if (const cudaError_t code = cudaStreamCreate(&stream_); code != cudaSuccess) {
            return Status::Error(cuda_error(code, "cudaStreamCreate"));
        }
        return Status();
    }

    ~TensorRTEngine() override {
        // Context before engine before runtime (unique_ptr members are destroyed in reverse order).
        context_.reset();
        if (stream_ != nullptr) {
            cudaStreamDestroy(stream_);
        }
    }

    Status set_input(Span<const std::uint8_t> images, std::size_t batch, ImageSize size) override {
        if (Status status = check_input(model_, images, batch, size); !status) {
            return status;
        }
        const auto h = static_cast<std::int64_t>(size.height);
        const auto w = static_cast<std::int64_t>(size.width);
        nvinfer1::Dims dims{};
        dims.nbDims = 4;
        if (input_type_ == nvinfer1::DataType::kUINT8) {  // (B, H, W, 3) BGR
            dims.d[0] = static_cast<std::int64_t>(batch); dims.d[1] = h; dims.d[2] = w; dims.d[3] = 3;
            host_in_.assign(images.begin(), images.end());
        } else {  // (B, 3, H, W) RGB in [0, 1], float32 or float16 bits
            dims.d[0] = static_cast<std::int64_t>(batch); dims.d[1] = 3; dims.d[2] = h; dims.d[3] = w;
            floats_.resize(images.size());
            bgr_to_rgb_planar(images.data(), batch, static_cast<std::size_t>(h), static_cast<std::size_t>(w),
                              floats_.data());
            if (input_type_ == nvinfer1::DataType::kFLOAT) {
                host_in_.resize(floats_.size() * 4);
                std::memcpy(host_in_.data(), floats_.data(), host_in_.size());
            } else {
                host_in_.resize(floats_.size() * 2);
                for (std::size_t i = 0; i < floats_.size(); ++i) {
                    const std::uint16_t bits = float_to_half(floats_[i]);
                    std::memcpy(&host_in_[2 * i], &bits, 2);
                }
            }
        }
        if (!context_->setInputShape(input_name_.c_str(), dims)) {
            return Status::Error("TensorRT refused input shape " + std::to_string(batch) + "x" + std::to_string(h) +
                                 "x" + std::to_string(w) + " (outside the plan's optimisation profile?)");
        }
        batch_ = batch;
        return Status();
    }

    Status run() override {
        if (batch_ == 0) {
            return Status::Error("run() before set_input()");
        }
        const nvinfer1::Dims out = context_->getTensorShape(output_name_.c_str());  // (B, R, No)
        std::vector<std::int64_t> shape(out.d, out.d + out.nbDims);
        if (Status status = check_output_shape(shape, batch_, model_, "the predictions"); !status) {
            return status;
        }
        const std::size_t count = static_cast<std::size_t>(shape[0] * shape[1] * shape[2]);
        const std::size_t out_bytes = count * element_size(output_type_);
        cudaError_t code = device_in_.reserve(host_in_.size());
        if (code == cudaSuccess) code = device_out_.reserve(out_bytes);
        if (code == cudaSuccess && !count_name_.empty()) code = device_count_.reserve(batch_ * sizeof(std::int32_t));
        if (code != cudaSuccess) {
            return Status::Error(cuda_error(code, "cudaMalloc"));
        }
        bool bound = context_->setTensorAddress(input_name_.c_str(), device_in_.pointer) &&
                     context_->setTensorAddress(output_name_.c_str(), device_out_.pointer);
        if (!count_name_.empty()) {
            bound = bound && context_->setTensorAddress(count_name_.c_str(), device_count_.pointer);
        }
        if (!bound) {
            return Status::Error("TensorRT refused the device buffers");
        }
        code = cudaMemcpyAsync(device_in_.pointer, host_in_.data(), host_in_.size(), cudaMemcpyHostToDevice, stream_);
        if (code != cudaSuccess) {
            return Status::Error(cuda_error(code, "copy to device"));
        }
        if (!context_->enqueueV3(stream_)) {
            return Status::Error("TensorRT execution failed: " + logger_.last_error);
        }
        host_out_.resize(out_bytes);
        counts_.resize(count_name_.empty() ? 0 : batch_);
        code = cudaMemcpyAsync(host_out_.data(), device_out_.pointer, out_bytes, cudaMemcpyDeviceToHost, stream_);
        if (code == cudaSuccess && !count_name_.empty()) {
            code = cudaMemcpyAsync(counts_.data(), device_count_.pointer, batch_ * sizeof(std::int32_t),
                                   cudaMemcpyDeviceToHost, stream_);
        }
        if (code == cudaSuccess) {
            code = cudaStreamSynchronize(stream_);
        }
        if (code != cudaSuccess) {
            return Status::Error(cuda_error(code, "copy to host"));
        }
        predictions_.resize(count);
        if (output_type_ == nvinfer1::DataType::kFLOAT) {
            std::memcpy(predictions_.data(), host_out_.data(), out_bytes);
        } else {  // float16 plan output, widened exactly
            for (std::size_t i = 0; i < count; ++i) {
                std::uint16_t bits;
                std::memcpy(&bits, &host_out_[2 * i], 2);
                predictions_[i] = half_to_float(bits);
            }
        }
        view_ = PredictionsView{};
        view_.values = Span<const float>(predictions_.data(), predictions_.size());
        view_.batch = batch_;
        view_.rows = static_cast<std::size_t>(shape[1]);
        view_.outputs = static_cast<std::size_t>(shape[2]);
        view_.num_candidates = Span<const std::int32_t>(counts_.data(), counts_.size());
        return Status();
    }

    PredictionsView predictions() const noexcept override { return view_; }

private:
    Logger logger_;  // TensorRT keeps a reference: it must outlive the runtime
    std::unique_ptr<nvinfer1::IRuntime> runtime_;
    std::unique_ptr<nvinfer1::ICudaEngine> engine_;
    std::unique_ptr<nvinfer1::IExecutionContext> context_;
    cudaStream_t stream_ = nullptr;
    ModelInfo model_;
    std::string input_name_, output_name_, count_name_;
    nvinfer1::DataType input_type_ = nvinfer1::DataType::kFLOAT;
    nvinfer1::DataType output_type_ = nvinfer1::DataType::kFLOAT;
    std::vector<float> floats_;              // (B, 3, H, W)
    std::vector<std::uint8_t> host_in_;      // the input tensor's bytes
    std::vector<std::uint8_t> host_out_;     // the output tensor's bytes
    std::vector<float> predictions_;         // (B, R, No)
    std::vector<std::int32_t> counts_;       // (B,)
    DeviceBuffer device_in_, device_out_, device_count_;
    std::size_t batch_ = 0;
    PredictionsView view_;
};

}  // namespace

Status open_tensorrt(const std::string& path, const EngineOptions& /*options*/, std::unique_ptr<Engine>& out) {
    auto engine = std::make_unique<TensorRTEngine>();
    if (Status status = engine->open(path); !status) {
        return status;
    }
    out = std::move(engine);
    return Status();
}

}  // namespace kapao::detail
