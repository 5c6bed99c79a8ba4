// One small interface in front of every inference runtime: letterboxed uint8 BGR pixels in,
// decoded KAPAO predictions out. Each engine converts the pixels to what its model file takes
// (float32 RGB CHW in [0, 1], or the uint8 BGR HWC of an `--input uint8` export) itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "kapao/model.hpp"
#include "kapao/postproc.hpp"

namespace kapao {

// The engine's output of the last run(), valid until the next call on the engine.
struct PredictionsView {
    Span<const float> values;              // (B, R, No) row-major, R = N or a compact file's K
    std::size_t batch = 0;                 // B
    std::size_t rows = 0;                  // R (all-zero rows are padding)
    std::size_t outputs = 0;               // No = 3K + 6
    Span<const std::int32_t> num_candidates;  // (B,) compact files only: rows above the floor
};

class Engine {
public:
    virtual ~Engine() = default;

    virtual const char* name() const noexcept = 0;
    virtual const ModelInfo& model() const noexcept = 0;

    // images: (B, H, W, 3) uint8 BGR letterboxed pixels, exactly B * H * W * 3 values.
    // Converts them into the engine's input buffer (the pre-processing the example times).
    virtual Status set_input(Span<const std::uint8_t> images, std::size_t batch, ImageSize size) = 0;

    // Runs the network on the last input; error for an output shape that is not KAPAO's.
    virtual Status run() = 0;

    virtual PredictionsView predictions() const noexcept = 0;
};

struct EngineOptions {
    int threads = 0;  // CPU threads for ONNX Runtime (0: its default)
};

// Opens a model by its file name: .onnx with ONNX Runtime, .engine/.plan with TensorRT (reading
// <plan>.json for its metadata). Error for a missing file, a runtime this build lacks, a file the
// runtime refuses, or a model whose inputs/outputs are not KAPAO's.
Status open_engine(const std::string& path, const EngineOptions& options,
                   std::unique_ptr<Engine>& out);

// Which runtimes this build has ("onnxruntime", "tensorrt"), comma-separated.
const char* engine_runtimes() noexcept;

}  // namespace kapao
