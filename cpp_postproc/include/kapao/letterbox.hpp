// Letterbox geometry of the official KAPAO (YOLOv5) pre-processing, without any image library:
// the scale, the resized size, the padding on each side, and the way back to the original image.
// kapao/opencv.hpp applies it to pixels with OpenCV.
#pragma once

#include "kapao/postproc.hpp"

namespace kapao {

struct LetterboxGeometry {
    ImageSize original;   // the frame as captured
    ImageSize resized;    // after scaling, before padding
    ImageSize input;      // the network input: resized + padding
    double ratio = 1.0;   // original -> network-input scale (same for x and y)
    double pad_x = 0.0;   // left padding, half of the total (may be fractional), as officially
    double pad_y = 0.0;   // top padding, likewise
    int top = 0, bottom = 0, left = 0, right = 0;  // whole pixels actually added on each side

    // A network-input point back in original-image pixels: the official scale_coords, which the
    // post-processor applies too (gain and padding recomputed from the two sizes).
    float to_original_x(float x) const noexcept;
    float to_original_y(float y) const noexcept;
};

// target: the requested input size (multiples of `stride`). With `auto_pad`, the padding shrinks to
// the smallest multiple of `stride` (the official demo path for dynamic-shape models); `scaleup`
// false never enlarges. Error for non-positive sizes or stride.
Status letterbox_geometry(ImageSize original, ImageSize target, int stride, bool auto_pad,
                          bool scaleup, LetterboxGeometry& out);

}  // namespace kapao
