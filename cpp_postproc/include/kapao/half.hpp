// IEEE 754 binary16 <-> binary32 conversion, written out in integer arithmetic so that it behaves
// the same on every compiler and CPU (no F16C, no __fp16, no dependence on the FPU rounding mode).
#pragma once

#include <cstdint>
#include <cstring>

namespace kapao {

inline float bits_to_float(std::uint32_t bits) noexcept {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

inline std::uint32_t float_to_bits(float value) noexcept {
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

// Exact: every half value is representable as a float. NaN payloads are kept.
inline float half_to_float(std::uint16_t half) noexcept {
    const std::uint32_t sign = static_cast<std::uint32_t>(half & 0x8000u) << 16;
    const std::uint32_t exponent = (half >> 10) & 0x1fu;
    const std::uint32_t mantissa = half & 0x3ffu;
    if (exponent == 0x1fu) {  // inf or NaN
        return bits_to_float(sign | 0x7f800000u | (mantissa << 13));
    }
    if (exponent != 0) {  // normal: rebias 15 -> 127
        return bits_to_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
    }
    // zero or subnormal: mantissa * 2^-24, exact in float
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-08f;
    return sign ? -magnitude : magnitude;
}

// Round to nearest, ties to even (what NumPy's astype(float16) does). NaN stays NaN (quiet).
inline std::uint16_t float_to_half(float value) noexcept {
    const std::uint32_t bits = float_to_bits(value);
    const auto sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
    const std::uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude >= 0x7f800000u) {  // inf or NaN
        return static_cast<std::uint16_t>(sign | (magnitude > 0x7f800000u ? 0x7e00u : 0x7c00u));
    }
    if (magnitude >= 0x477ff000u) {  // >= 65520 rounds past the largest half (65504)
        return static_cast<std::uint16_t>(sign | 0x7c00u);
    }
    if (magnitude >= 0x38800000u) {  // normal half range (>= 2^-14)
        std::uint32_t half = (magnitude >> 13) - (112u << 10);
        const std::uint32_t remainder = magnitude & 0x1fffu;
        if (remainder > 0x1000u || (remainder == 0x1000u && (half & 1u))) {
            ++half;  // may carry into the exponent, which is the correct encoding
        }
        return static_cast<std::uint16_t>(sign | half);
    }
    if (magnitude <= 0x33000000u) {  // <= 2^-25: rounds to (signed) zero, the tie goes to even 0
        return sign;
    }
    // subnormal half: value / 2^-24 = significand * 2^(exponent - 126), shift 14..24 bits right
    const std::uint32_t exponent = magnitude >> 23;
    const std::uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126u - exponent;
    std::uint32_t half = significand >> shift;
    const std::uint32_t remainder = significand & ((1u << shift) - 1u);
    const std::uint32_t halfway = 1u << (shift - 1u);
    if (remainder > halfway || (remainder == halfway && (half & 1u))) {
        ++half;
    }
    return static_cast<std::uint16_t>(sign | half);
}

}  // namespace kapao
