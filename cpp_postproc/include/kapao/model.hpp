// What a deployed model file says about itself: the JSON that `kapao-edge export` stores in the
// ONNX metadata_props under key "kapao_edge" (and beside a TensorRT plan as <plan>.json).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "kapao/postproc.hpp"

namespace kapao {

enum class InputFormat {
    Float,  // (B, 3, H, W) float32 RGB in [0, 1] (absent "input_format" means this)
    Uint8,  // (B, H, W, 3) uint8 BGR letterboxed pixels (export --input uint8)
};

struct ModelInfo {
    std::string preset;            // "coco", "crowdpose", ...
    int num_keypoints = 0;         // K
    int batch = -1;                // fixed batch, or -1 when dynamic
    int height = -1;               // fixed input height, or -1 when dynamic
    int width = -1;                // fixed input width, or -1 when dynamic
    InputFormat input_format = InputFormat::Float;
    int max_candidates = 0;        // R rows kept by a compact export; 0: all N rows
    // Post-processing values the model was tuned with (PostprocessConfig field names), as JSON
    // numbers, booleans or strings; applied on top of a preset by recommended_config().
    std::vector<std::pair<std::string, std::string>> postprocess;

    bool dynamic_hw() const noexcept { return height < 0 || width < 0; }
};

// Parses the "kapao_edge" JSON; error for malformed JSON or missing/ill-typed fields.
Status parse_model_info(const std::string& json, ModelInfo& out);

// `preset` with the model's recommended values applied (what Python's
// PostprocessConfig.named(preset, metadata.postprocess) does); error for an unknown field.
Status recommended_config(const ModelInfo& model, const Config& preset, Config& out);

}  // namespace kapao
