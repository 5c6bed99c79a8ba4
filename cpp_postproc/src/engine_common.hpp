// Shared by the engine implementations (not installed): input checks and pixel conversion.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kapao/engine.hpp"

namespace kapao::detail {

constexpr int kMaxStride = 64;  // the P6 grid: every input side is a multiple of it

// Checks a letterboxed batch against the model's fixed dimensions; error names what differs.
inline Status check_input(const ModelInfo& model, Span<const std::uint8_t> images, std::size_t batch,
                          ImageSize size) {
    if (batch == 0) {
        return Status::Error("empty batch: at least one image is needed");
    }
    if (size.height <= 0 || size.width <= 0 || size.height % kMaxStride || size.width % kMaxStride) {
        return Status::Error("input height and width must be positive multiples of 64, got " +
                             std::to_string(size.height) + "x" + std::to_string(size.width));
    }
    const std::size_t expected = batch * static_cast<std::size_t>(size.height) *
                                 static_cast<std::size_t>(size.width) * 3;
    if (images.size() != expected || images.data() == nullptr) {
        return Status::Error("input holds " + std::to_string(images.size()) + " bytes, a (" +
                             std::to_string(batch) + ", " + std::to_string(size.height) + ", " +
                             std::to_string(size.width) + ", 3) batch needs " + std::to_string(expected));
    }
    if (model.batch > 0 && static_cast<std::size_t>(model.batch) != batch) {
        return Status::Error("this model was built for batch " + std::to_string(model.batch) + ", got " +
                             std::to_string(batch));
    }
    if (!model.dynamic_hw() && (size.height != model.height || size.width != model.width)) {
        return Status::Error("this model was built for " + std::to_string(model.height) + "x" +
                             std::to_string(model.width) + " inputs, got " + std::to_string(size.height) +
                             "x" + std::to_string(size.width));
    }
    return Status();
}

// (B, H, W, 3) uint8 BGR -> (B, 3, H, W) float32 RGB, each value v / 255.0f exactly as NumPy's
// float32 division gives it (a 256-entry table of those quotients: no per-pixel division).
inline void bgr_to_rgb_planar(const std::uint8_t* src, std::size_t batch, std::size_t height,
                              std::size_t width, float* dst) {
    static const std::array<float, 256> table = [] {
        std::array<float, 256> t{};
        for (int v = 0; v < 256; ++v) {
            t[static_cast<std::size_t>(v)] = static_cast<float>(v) / 255.0f;
        }
        return t;
    }();
    const std::size_t plane = height * width;
    for (std::size_t b = 0; b < batch; ++b) {
        const std::uint8_t* image = src + b * plane * 3;
        float* red = dst + b * plane * 3;
        float* green = red + plane;
        float* blue = green + plane;
        for (std::size_t i = 0; i < plane; ++i) {
            blue[i] = table[image[3 * i]];
            green[i] = table[image[3 * i + 1]];
            red[i] = table[image[3 * i + 2]];
        }
    }
}

// Error unless an output of shape (B, R, No) fits the model: No = 3K + 6 for its K.
inline Status check_output_shape(const std::vector<std::int64_t>& shape, std::size_t batch,
                                 const ModelInfo& model, const std::string& what) {
    std::string text = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        text += (i ? ", " : "") + std::to_string(shape[i]);
    }
    text += "]";
    const std::int64_t outputs = 3 * static_cast<std::int64_t>(model.num_keypoints) + 6;
    if (shape.size() != 3 || shape[0] != static_cast<std::int64_t>(batch) || shape[1] < 0 ||
        shape[2] != outputs) {
        return Status::Error(what + " output has shape " + text + ", not KAPAO's (" +
                             std::to_string(batch) + ", rows, " + std::to_string(outputs) + ") for K=" +
                             std::to_string(model.num_keypoints));
    }
    return Status();
}

}  // namespace kapao::detail
