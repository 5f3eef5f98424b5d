// Raw kernels shared between ops (no graph): the fused attention reuses the softmax rows; masks
// become 0/1 values; attention and cross-entropy backward work in per-thread scratch rows.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/index_tensor.h"
#include "core/tensor.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace qkv {

/// Calls fn(i) for every i in [0, n): spread over the threads (static schedule) when the loop is
/// `worth` it, more than one thread is allowed and no parallel region is already active here;
/// otherwise in order on this thread, without entering a parallel region at all. (libgomp gives
/// a region that runs on one thread, `if (false)` or nested in a batch shard's thread, the same
/// barrier as a real team: about 0.5 µs and two futex calls, some 70 times per step of a small
/// model.) Which thread runs an i never changes what it computes, so neither do the results.
template <typename F>
void parallel_for(int64_t n, bool worth, const F& fn) {
#ifdef _OPENMP
  if (worth && n > 1 && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
#endif
  for (int64_t i = 0; i < n; ++i) fn(i);
}

/// Elements per task of an elementwise loop: big enough that a task outweighs waking a thread,
/// small enough that a layer's activations make several tasks.
inline constexpr int64_t kElementChunk = 65536;

/// Calls f(begin, size) over [0, n) cut into chunks of kElementChunk, on all threads when there
/// are at least two. Elementwise work only: each element is computed by exactly one call and
/// the chunks depend on n alone, so the result is the same for any thread count.
template <typename F>
void for_chunks(int64_t n, F&& f) {
  const int64_t chunks = (n + kElementChunk - 1) / kElementChunk;
  parallel_for(chunks, true, [&](int64_t c) {
    const int64_t b = c * kElementChunk;
    f(b, std::min(kElementChunk, n - b));
  });
}

/// A gradient term e into dst, an Eigen array: dst = 0 + e when `fresh` (a gradient no op has
/// written yet, from Node::input_grad_to_write: the bits of adding e to zeros, −0 included, without
/// the zero-fill), else dst += e.
template <typename Dst, typename Expr>
void put_grad(Dst&& dst, const Expr& e, bool fresh) {
  using T = typename std::decay_t<Dst>::Scalar;
  if (fresh)
    dst = T(0) + e;
  else
    dst += e;
}

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

/// Per-thread scratch of at least n elements, 64-byte aligned; grows, never shrinks (no allocation
/// in steady state). One buffer per thread and type: a caller must be done with it before it calls
/// another user. Growing moves it, but always to a 64-byte boundary: a product's last bits can
/// depend on its operands' alignment, and a buffer whose offset varied gave a second training run
/// in the same process different bits from the first (it had grown the buffer at another step).
template <typename T>
T* scratch(int64_t n) {
  thread_local Tensor<T> buf;
  if (!buf.defined() || buf.numel() < n) buf = Tensor<T>::empty({n});
  return buf.data();
}

/// n rounded up to a whole number of 64-byte lines of T: where a second block in one scratch
/// buffer starts, so that it is 64-byte aligned too.
template <typename T>
constexpr int64_t line_up(int64_t n) {
  constexpr int64_t per_line = 64 / static_cast<int64_t>(sizeof(T));
  return (n + per_line - 1) / per_line * per_line;
}

}  // namespace qkv
