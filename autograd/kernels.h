// Raw kernels shared between ops (no graph): the fused attention reuses the softmax rows.
#pragma once

#include <algorithm>
#include <cstdint>

namespace qkv {

/// Elements per task of an elementwise loop: big enough that a task outweighs waking a thread,
/// small enough that a layer's activations make several tasks.
inline constexpr int64_t kElementChunk = 65536;

/// Calls f(begin, size) over [0, n) cut into chunks of kElementChunk, on all threads when there
/// are at least two. Elementwise work only: each element is computed by exactly one call and
/// the chunks depend on n alone, so the result is the same for any thread count.
template <typename F>
void for_chunks(int64_t n, F&& f) {
  const int64_t chunks = (n + kElementChunk - 1) / kElementChunk;
  if (chunks <= 1) {
    if (n > 0) f(int64_t{0}, n);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t b = c * kElementChunk;
    f(b, std::min(kElementChunk, n - b));
  }
}

/// y[r, :] = softmax(x[r, :]) for `rows` rows of n; an all −inf row gives zeros. x may equal y.
template <typename T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t n);

}  // namespace qkv
