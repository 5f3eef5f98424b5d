// Shape: up to four dimensions, stored inline (no heap), printed as "[2, 3, 4]".
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "core/error.h"

namespace qkv {

constexpr int kMaxDims = 4;

struct Shape {
  std::array<int64_t, kMaxDims> d{};
  int nd = 0;

  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) {
    QKV_CHECK(dims.size() <= kMaxDims, "Shape: at most {} dimensions, got {}", kMaxDims,
              dims.size());
    for (int64_t x : dims) {
      QKV_CHECK(x >= 0, "Shape: negative dimension {}", x);
      d[nd++] = x;
    }
  }
  /// Builds a shape from the first n entries of dims.
  static Shape of(const int64_t* dims, int n) {
    QKV_CHECK(n >= 0 && n <= kMaxDims, "Shape: at most {} dimensions, got {}", kMaxDims, n);
    Shape s;
    for (int i = 0; i < n; ++i) {
      QKV_CHECK(dims[i] >= 0, "Shape: negative dimension {}", dims[i]);
      s.d[s.nd++] = dims[i];
    }
    return s;
  }

  int dim() const { return nd; }
  /// Size of axis i; negative i counts from the end (-1 is the last axis).
  int64_t operator[](int i) const { return d[static_cast<size_t>(axis(i))]; }
  int64_t& operator[](int i) { return d[static_cast<size_t>(axis(i))]; }
  /// Normalises a possibly negative axis, throwing when it is out of range.
  int axis(int i) const {
    int a = i < 0 ? i + nd : i;
    QKV_CHECK(a >= 0 && a < nd, "axis {} is out of range for a shape of {} dimensions", i, nd);
    return a;
  }
  /// The number of elements; a qkv::Error when it does not fit in int64 (a shape read from a
  /// damaged or hostile file, e.g. [2^46, 2^46]), never a wrapped-around count.
  int64_t numel() const { return span(0, nd); }
  /// Product of the sizes of axes [from, to), with the same overflow check.
  int64_t span(int from, int to) const {
    int64_t n = 1;
    for (int i = from; i < to; ++i)
      if (__builtin_mul_overflow(n, d[static_cast<size_t>(i)], &n)) overflow();
    return n;
  }
  [[noreturn]] void overflow() const {
    fail("shape {} has more elements than a 64-bit count can hold", str());
  }
  bool operator==(const Shape& o) const {
    if (nd != o.nd) return false;
    for (int i = 0; i < nd; ++i)
      if (d[static_cast<size_t>(i)] != o.d[static_cast<size_t>(i)]) return false;
    return true;
  }
  bool operator!=(const Shape& o) const { return !(*this == o); }

  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < nd; ++i) {
      if (i) s += ", ";
      s += std::to_string(d[static_cast<size_t>(i)]);
    }
    return s + "]";
  }
};

}  // namespace qkv

template <>
struct fmt::formatter<qkv::Shape> : fmt::formatter<std::string> {
  template <typename Ctx>
  auto format(const qkv::Shape& s, Ctx& ctx) const {
    return fmt::formatter<std::string>::format(s.str(), ctx);
  }
};
