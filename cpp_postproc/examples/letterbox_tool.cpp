// Letterboxes one image file with the SDK (kapao/opencv.hpp) and writes it losslessly, printing
// the geometry; tests compare both with Python's letterbox.
//   kapao_letterbox_tool IN.png OUT.png HEIGHT WIDTH STRIDE AUTO(0|1)
#include <cstdio>
#include <cstdlib>
#include <string>

#include <opencv2/imgcodecs.hpp>

#include "kapao/opencv.hpp"

int main(int argc, char** argv) {
    if (argc != 7) {
        std::fprintf(stderr, "usage: kapao_letterbox_tool IN OUT HEIGHT WIDTH STRIDE AUTO\n");
        return 2;
    }
    const cv::Mat image = cv::imread(argv[1], cv::IMREAD_UNCHANGED);
    if (image.empty()) {
        std::fprintf(stderr, "error: cannot read %s\n", argv[1]);
        return 1;
    }
    cv::Mat out;
    kapao::LetterboxGeometry g;
    const kapao::Status status = kapao::letterbox(image, {std::atoi(argv[3]), std::atoi(argv[4])},
                                                  std::atoi(argv[6]) != 0, out, g, std::atoi(argv[5]));
    if (!status) {
        std::fprintf(stderr, "error: %s\n", status.message().c_str());
        return 1;
    }
    if (!cv::imwrite(argv[2], out)) {
        std::fprintf(stderr, "error: cannot write %s\n", argv[2]);
        return 1;
    }
    std::printf("ratio %.17g pad %.17g %.17g input %d %d\n", g.ratio, g.pad_x, g.pad_y, g.input.height,
                g.input.width);
    return 0;
}
