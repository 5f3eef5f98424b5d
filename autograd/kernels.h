// Raw kernels shared between ops (no graph): the fused attention reuses the softmax rows; masks
// become 0/1 values; attention and cross-entropy backward work in per-thread scratch rows.
#pragma once

#include <cstdint>
#include <vector>

#include "core/index_tensor.h"
#include "core/tensor.h"

namespace qkv {

/// y[r, :] = softmax(x[r, :]) for `rows` rows of n; an all −inf row gives zeros. x may equal y.
template <typename T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t n);

/// A condition (1 = true) as 0/1 values of T, for the kernels and for backward.
template <typename T>
Tensor<T> as_values(const BoolTensor& c) {
  Tensor<T> t = Tensor<T>::empty(c.shape);
  const Eigen::Map<const Eigen::Array<uint8_t, Eigen::Dynamic, 1>> C(c.data.data(), c.numel());
  t.vec().array() = (C != uint8_t(0)).template cast<T>();
  return t;
}

/// Per-thread scratch of at least n elements; grows, never shrinks (no allocation in steady state).
/// One buffer per thread and type: a caller must be done with it before it calls another user.
template <typename T>
T* scratch(int64_t n) {
  thread_local std::vector<T> buf;
  if (buf.size() < static_cast<size_t>(n)) buf.resize(static_cast<size_t>(n));
  return buf.data();
}

}  // namespace qkv
