// A raw predictions file: what a camera app gets from its engine, saved to disk for replay.
//
// Binary layout, every field little-endian:
//   offset  type        field
//   0       char[4]     magic "KPRD"
//   4       uint32      version = 1
//   8       uint32      dtype: 0 = float32, 1 = float16 (IEEE binary16)
//   12      uint32      B  (images)
//   16      uint32      N  (rows per image)
//   20      uint32      No (values per row, 3K + 6)
//   24      uint32      input height (network input, letterboxed)
//   28      uint32      input width
//   32      uint32[2B]  original height, original width of each image
//   32+8B   B*N*No values of dtype, row-major (B, N, No)
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "kapao/postproc.hpp"

namespace kapao_example {

struct PredictionsFile {
    std::uint32_t dtype = 0;  // 0 float32, 1 float16
    std::uint32_t batch = 0;
    std::uint32_t num_rows = 0;
    std::uint32_t num_outputs = 0;
    kapao::ImageSize input;
    std::vector<kapao::ImageSize> originals;
    std::vector<float> values_f32;          // dtype 0
    std::vector<std::uint16_t> values_f16;  // dtype 1
};

inline std::uint32_t read_u32_le(const unsigned char* p) {
    return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
           (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

inline void write_u32_le(std::vector<unsigned char>& out, std::uint32_t value) {
    for (int i = 0; i < 4; ++i) {
        out.push_back(static_cast<unsigned char>((value >> (8 * i)) & 0xffu));
    }
}

inline PredictionsFile read_predictions_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot open " + path);
    }
    const std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)),
                                           std::istreambuf_iterator<char>());
    if (bytes.size() < 32 || std::memcmp(bytes.data(), "KPRD", 4) != 0) {
        throw std::runtime_error(path + ": not a predictions file (magic KPRD missing)");
    }
    if (read_u32_le(&bytes[4]) != 1) {
        throw std::runtime_error(path + ": unsupported version " + std::to_string(read_u32_le(&bytes[4])));
    }
    PredictionsFile file;
    file.dtype = read_u32_le(&bytes[8]);
    file.batch = read_u32_le(&bytes[12]);
    file.num_rows = read_u32_le(&bytes[16]);
    file.num_outputs = read_u32_le(&bytes[20]);
    file.input.height = static_cast<int>(read_u32_le(&bytes[24]));
    file.input.width = static_cast<int>(read_u32_le(&bytes[28]));
    if (file.dtype > 1) {
        throw std::runtime_error(path + ": unknown dtype code " + std::to_string(file.dtype));
    }
    const std::size_t header = 32 + 8 * static_cast<std::size_t>(file.batch);
    const std::size_t count = static_cast<std::size_t>(file.batch) * file.num_rows * file.num_outputs;
    const std::size_t item = file.dtype == 0 ? 4 : 2;
    if (bytes.size() < header || (bytes.size() - header) / item != count ||
        (bytes.size() - header) % item != 0) {
        throw std::runtime_error(path + ": size does not match its header (B=" +
                                 std::to_string(file.batch) + ", N=" + std::to_string(file.num_rows) +
                                 ", No=" + std::to_string(file.num_outputs) + ")");
    }
    for (std::uint32_t b = 0; b < file.batch; ++b) {
        const unsigned char* p = &bytes[32 + 8 * static_cast<std::size_t>(b)];
        file.originals.push_back({static_cast<int>(read_u32_le(p)), static_cast<int>(read_u32_le(p + 4))});
    }
    const unsigned char* data = bytes.data() + header;
    if (file.dtype == 0) {
        file.values_f32.resize(count);
        for (std::size_t i = 0; i < count; ++i) {
            file.values_f32[i] = kapao::bits_to_float(read_u32_le(data + 4 * i));
        }
    } else {
        file.values_f16.resize(count);
        for (std::size_t i = 0; i < count; ++i) {
            file.values_f16[i] = static_cast<std::uint16_t>(data[2 * i] | (data[2 * i + 1] << 8));
        }
    }
    return file;
}

// float32 file; `originals` holds one size per image.
inline void write_predictions_file(const std::string& path, const std::vector<float>& values,
                                   std::uint32_t batch, std::uint32_t num_rows,
                                   std::uint32_t num_outputs, kapao::ImageSize input,
                                   const std::vector<kapao::ImageSize>& originals) {
    std::vector<unsigned char> out = {'K', 'P', 'R', 'D'};
    for (const std::uint32_t field : {1u, 0u, batch, num_rows, num_outputs,
                                      static_cast<std::uint32_t>(input.height),
                                      static_cast<std::uint32_t>(input.width)}) {
        write_u32_le(out, field);
    }
    for (const kapao::ImageSize& size : originals) {
        write_u32_le(out, static_cast<std::uint32_t>(size.height));
        write_u32_le(out, static_cast<std::uint32_t>(size.width));
    }
    for (const float value : values) {
        write_u32_le(out, kapao::float_to_bits(value));
    }
    const std::string tmp = path + ".tmp";
    {
        std::ofstream file(tmp, std::ios::binary | std::ios::trunc);
        file.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
        if (!file) {
            throw std::runtime_error("cannot write " + tmp);
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        throw std::runtime_error("cannot rename " + tmp + " to " + path);
    }
}

}  // namespace kapao_example
