// Integer and boolean tensors for what is not differentiated: token ids, targets, masks.
#pragma once

#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/shape.h"

namespace qkv {

template <typename I>
struct IntegralTensor {
  Shape shape;
  std::vector<I> data;

  IntegralTensor() = default;
  explicit IntegralTensor(const Shape& s, I fill = I(0))
      : shape(s), data(static_cast<size_t>(s.numel()), fill) {}
  IntegralTensor(const Shape& s, std::vector<I> values) : shape(s), data(std::move(values)) {
    QKV_CHECK(static_cast<int64_t>(data.size()) == s.numel(), "{} values for shape {}", data.size(),
              s);
  }
  bool empty() const { return data.empty(); }
  int64_t numel() const { return static_cast<int64_t>(data.size()); }
  I& operator[](int64_t i) { return data[static_cast<size_t>(i)]; }
  const I& operator[](int64_t i) const { return data[static_cast<size_t>(i)]; }
};

/// Token ids, class targets (-1 = ignore), positions.
using IndexTensor = IntegralTensor<int32_t>;
/// Masks: 1 = true.
using BoolTensor = IntegralTensor<uint8_t>;

}  // namespace qkv
