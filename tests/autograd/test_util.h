// Helpers shared by the autograd tests.
#pragma once

#include <gtest/gtest.h>

#include <cstring>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/rng.h"
#include "test_files.h"

namespace qkv::testing {

using qkv::test::error_of;

/// A tensor of the given shape with standard-normal values.
template <typename T = double>
Tensor<T> randn_tensor(const Shape& shape, Rng& rng) {
  Tensor<T> t = Tensor<T>::empty(shape);
  for (T& x : t) x = static_cast<T>(rng.normal());
  return t;
}

/// A leaf (float64 unless asked) of the given shape with standard-normal values.
template <typename T = double>
Var<T> randn(const Shape& shape, Rng& rng, bool requires_grad = true) {
  return Var<T>(randn_tensor<T>(shape, rng), requires_grad);
}

/// Same shape and the same bytes.
template <typename T>
void expect_bitwise_equal(const Tensor<T>& a, const Tensor<T>& b, const char* what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  EXPECT_EQ(std::memcmp(a.data(), b.data(), static_cast<size_t>(a.numel()) * sizeof(T)), 0)
      << what << " differs";
}

/// Asserts a gradcheck passed, printing its table when it did not.
#define EXPECT_GRADCHECK(report)                        \
  do {                                                  \
    auto qkv_report_ = (report);                        \
    EXPECT_TRUE(qkv_report_.ok) << qkv_report_.table(); \
  } while (0)

}  // namespace qkv::testing
