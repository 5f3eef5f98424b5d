// Raw kernels shared between ops (no graph): the fused attention reuses the softmax rows, and
// attention and cross-entropy backward work in per-thread scratch rows.
#pragma once

#include <cstdint>
#include <vector>

namespace qkv {

/// y[r, :] = softmax(x[r, :]) for `rows` rows of n; an all −inf row gives zeros. x may equal y.
template <typename T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t n);

/// Per-thread scratch of at least n elements; grows, never shrinks (no allocation in steady state).
/// One buffer per thread and type: a caller must be done with it before it calls another user.
template <typename T>
T* scratch(int64_t n) {
  thread_local std::vector<T> buf;
  if (buf.size() < static_cast<size_t>(n)) buf.resize(static_cast<size_t>(n));
  return buf.data();
}

}  // namespace qkv
