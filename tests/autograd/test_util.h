// Helpers shared by the autograd tests.
#pragma once

#include <gtest/gtest.h>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/rng.h"

namespace qkv::testing {

/// A float64 leaf of the given shape with standard-normal values.
inline Var<double> randn(const Shape& shape, Rng& rng, bool requires_grad = true) {
  Tensor<double> t = Tensor<double>::empty(shape);
  for (double& x : t) x = rng.normal();
  return Var<double>(t, requires_grad);
}

/// Asserts a gradcheck passed, printing its table when it did not.
#define EXPECT_GRADCHECK(report)                      \
  do {                                                \
    auto qkv_report_ = (report);                      \
    EXPECT_TRUE(qkv_report_.ok) << qkv_report_.table(); \
  } while (0)

}  // namespace qkv::testing
