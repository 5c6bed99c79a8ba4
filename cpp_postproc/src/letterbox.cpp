// Letterbox geometry, with Python's rounding (round half to even) so that sizes and padding equal
// kapao_edge.data.letterbox on every input.
#include "kapao/letterbox.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace kapao {
namespace {

// Python's round() of a float to an int: nearest, ties to even (the default FPU rounding mode).
int round_half_even(double value) noexcept { return static_cast<int>(std::nearbyint(value)); }

// scale_coords' gain and padding: recomputed from the two sizes, as the post-processor does.
struct Gain {
    double gain, pad_x, pad_y;
};

Gain scale_coords_gain(ImageSize input, ImageSize original) noexcept {
    const double h0 = original.height;
    const double w0 = original.width;
    const double g = std::min(input.height / h0, input.width / w0);
    return {g, (input.width - w0 * g) / 2.0, (input.height - h0 * g) / 2.0};
}

}  // namespace

float LetterboxGeometry::to_original_x(float x) const noexcept {
    const Gain g = scale_coords_gain(input, original);
    return (x - static_cast<float>(g.pad_x)) / static_cast<float>(g.gain);
}

float LetterboxGeometry::to_original_y(float y) const noexcept {
    const Gain g = scale_coords_gain(input, original);
    return (y - static_cast<float>(g.pad_y)) / static_cast<float>(g.gain);
}

Status letterbox_geometry(ImageSize original, ImageSize target, int stride, bool auto_pad,
                          bool scaleup, LetterboxGeometry& out) {
    if (original.height <= 0 || original.width <= 0) {
        return Status::Error("image size must be positive, got " + std::to_string(original.height) +
                             "x" + std::to_string(original.width));
    }
    if (target.height <= 0 || target.width <= 0) {
        return Status::Error("input size must be positive, got " + std::to_string(target.height) +
                             "x" + std::to_string(target.width));
    }
    if (stride <= 0) {
        return Status::Error("stride must be positive, got " + std::to_string(stride));
    }
    LetterboxGeometry g;
    g.original = original;
    double ratio = std::min(static_cast<double>(target.height) / original.height,
                            static_cast<double>(target.width) / original.width);
    if (!scaleup) {
        ratio = std::min(ratio, 1.0);
    }
    g.ratio = ratio;
    g.resized = {round_half_even(original.height * ratio), round_half_even(original.width * ratio)};
    int pad_w = target.width - g.resized.width;
    int pad_h = target.height - g.resized.height;
    if (auto_pad) {
        pad_w %= stride;
        pad_h %= stride;
    }
    g.pad_x = pad_w / 2.0;
    g.pad_y = pad_h / 2.0;
    // An odd total puts the extra pixel at the bottom/right (-0.1/+0.1 break the ties).
    g.top = round_half_even(g.pad_y - 0.1);
    g.bottom = round_half_even(g.pad_y + 0.1);
    g.left = round_half_even(g.pad_x - 0.1);
    g.right = round_half_even(g.pad_x + 0.1);
    g.input = {g.resized.height + g.top + g.bottom, g.resized.width + g.left + g.right};
    out = g;
    return Status();
}

}  // namespace kapao
