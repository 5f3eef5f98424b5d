// Raw kernels shared between ops (no graph): the fused attention reuses the softmax rows.
#pragma once

#include <cstdint>

namespace qkv {

/// y[r, :] = softmax(x[r, :]) for `rows` rows of n; an all −inf row gives zeros. x may equal y.
template <typename T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t n);

}  // namespace qkv
