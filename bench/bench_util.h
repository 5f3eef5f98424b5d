// What the micro-benchmarks share: standard-normal float inputs from a seeded generator.
#pragma once

#include "autograd/var.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace qkv::bench {

/// A tensor of independent N(0, 1) floats.
inline Tensor<float> randn(const Shape& shape, Rng& rng) {
  Tensor<float> t = Tensor<float>::empty(shape);
  for (float& x : t) x = static_cast<float>(rng.normal());
  return t;
}

/// The same as a leaf that requires its gradient.
inline Var<float> randn_var(const Shape& shape, Rng& rng) {
  return Var<float>(randn(shape, rng), true);
}

}  // namespace qkv::bench
