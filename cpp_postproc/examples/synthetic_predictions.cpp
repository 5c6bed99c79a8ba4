// Writes a synthetic predictions file (layout in predictions_file.hpp) shaped like a real KAPAO
// output: mostly background rows, clusters of person rows and keypoint-object rows around a few
// people. Lets the example and CI run without a model or Python.
//
//   kapao_synthetic_predictions OUT.kprd [--seed S]
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "predictions_file.hpp"

namespace {

// SplitMix64: the same numbers on every platform (std distributions are implementation-defined).
class Random {
public:
    explicit Random(std::uint64_t seed) : state_(seed) {}
    float uniform(float lo, float hi) {
        state_ += 0x9e3779b97f4a7c15ull;
        std::uint64_t z = state_;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        const float unit = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // [0, 1)
        return lo + (hi - lo) * unit;
    }

private:
    std::uint64_t state_;
};

constexpr std::uint32_t kKeypoints = 17;
constexpr std::uint32_t kOutputs = 3 * kKeypoints + 6;
constexpr std::uint32_t kClasses = kKeypoints + 1;
// A COCO-like standing pose, relative to the box centre in units of the box height.
constexpr float kPoseShape[kKeypoints][2] = {
    {0.00f, -0.42f}, {-0.03f, -0.45f}, {0.03f, -0.45f}, {-0.06f, -0.43f}, {0.06f, -0.43f},
    {-0.12f, -0.30f}, {0.12f, -0.30f}, {-0.16f, -0.12f}, {0.16f, -0.12f}, {-0.18f, 0.04f},
    {0.18f, 0.04f}, {-0.08f, 0.05f}, {0.08f, 0.05f}, {-0.09f, 0.25f}, {0.09f, 0.25f},
    {-0.10f, 0.45f}, {0.10f, 0.45f}};

void fill_row(float* row, float cx, float cy, float w, float h, float obj, std::uint32_t cls,
              float cls_score, const float* keypoints, Random& rng) {
    row[0] = cx;
    row[1] = cy;
    row[2] = w;
    row[3] = h;
    row[4] = obj;
    for (std::uint32_t c = 0; c < kClasses; ++c) {
        row[5 + c] = c == cls ? cls_score : rng.uniform(0.0f, 0.05f);
    }
    for (std::uint32_t i = 0; i < 2 * kKeypoints; ++i) {
        row[5 + kClasses + i] = keypoints[i] + rng.uniform(-3.0f, 3.0f);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: kapao_synthetic_predictions OUT [--seed S]\n");
        return 2;
    }
    std::uint64_t seed = 0;
    if (argc == 4 && std::string(argv[2]) == "--seed") {
        seed = std::stoull(argv[3]);
    }
    const kapao::ImageSize input{640, 640};
    const std::vector<kapao::ImageSize> originals = {{480, 640}, {720, 1280}};
    const std::uint32_t batch = 2;
    const std::uint32_t rows = 3 * (80 * 80 + 40 * 40 + 20 * 20 + 10 * 10);  // strides 8..64
    std::vector<float> values(static_cast<std::size_t>(batch) * rows * kOutputs, 0.0f);
    Random rng(seed);

    for (std::uint32_t b = 0; b < batch; ++b) {
        float* image = &values[static_cast<std::size_t>(b) * rows * kOutputs];
        std::uint32_t next = 0;
        auto take_row = [&]() { return &image[static_cast<std::size_t>(next++) * kOutputs]; };
        const std::uint32_t people = 3 + b;
        for (std::uint32_t person = 0; person < people; ++person) {
            const float h = rng.uniform(150.0f, 320.0f);
            const float w = h * rng.uniform(0.35f, 0.5f);
            const float cx = rng.uniform(80.0f, 560.0f);
            const float cy = rng.uniform(200.0f, 440.0f);
            float keypoints[2 * kKeypoints];
            for (std::uint32_t k = 0; k < kKeypoints; ++k) {
                keypoints[2 * k] = cx + kPoseShape[k][0] * h;
                keypoints[2 * k + 1] = cy + kPoseShape[k][1] * h;
            }
            for (int r = 0; r < 12; ++r) {  // a cluster of person rows
                fill_row(take_row(), cx + rng.uniform(-6, 6), cy + rng.uniform(-6, 6),
                         w * rng.uniform(0.9f, 1.1f), h * rng.uniform(0.9f, 1.1f),
                         rng.uniform(0.6f, 0.95f), 0, rng.uniform(0.85f, 1.0f), keypoints, rng);
            }
            for (std::uint32_t k = 0; k < kKeypoints; ++k) {  // keypoint objects
                for (int r = 0; r < 3; ++r) {
                    const float size = 32.0f * rng.uniform(0.9f, 1.1f);
                    fill_row(take_row(), keypoints[2 * k] + rng.uniform(-4, 4),
                             keypoints[2 * k + 1] + rng.uniform(-4, 4), size, size,
                             rng.uniform(0.4f, 0.9f), k + 1, rng.uniform(0.7f, 1.0f), keypoints, rng);
                }
            }
        }
        while (next < rows) {  // background: low objectness, a few above the val threshold
            const float u = rng.uniform(0.0f, 1.0f);
            float keypoints[2 * kKeypoints];
            const float cx = rng.uniform(0.0f, 640.0f);
            const float cy = rng.uniform(0.0f, 640.0f);
            for (std::uint32_t k = 0; k < 2 * kKeypoints; ++k) {
                keypoints[k] = (k % 2 == 0 ? cx : cy) + rng.uniform(-40.0f, 40.0f);
            }
            fill_row(take_row(), cx, cy, rng.uniform(8.0f, 200.0f), rng.uniform(8.0f, 300.0f),
                     u * u * u * u * 0.02f, static_cast<std::uint32_t>(rng.uniform(0.0f, 17.99f)),
                     rng.uniform(0.1f, 0.9f), keypoints, rng);
        }
    }
    try {
        kapao_example::write_predictions_file(argv[1], values, batch, rows, kOutputs, input, originals);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "error: %s\n", error.what());
        return 1;
    }
    std::printf("wrote %s: B=%u N=%u No=%u\n", argv[1], batch, rows, kOutputs);
    return 0;
}
