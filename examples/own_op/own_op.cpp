// An op of your own: SiLU (swish), y = x·σ(x), with its backward written beside it as qkv's own
// ops are, checked against float64 finite differences by qkv::gradcheck. A second version with a
// classic mistake in its backward (the product rule's second term dropped) must fail the check.
#include <qkv/autograd/gradcheck.h>  // only the autograd layer: linked as qkv::autograd
#include <qkv/autograd/ops.h>

#include <cmath>
#include <cstdio>

using namespace qkv;

// silu: y = x·σ(x), σ(x) = 1 / (1 + e^(−x)).
//   dσ/dx = σ(x)(1 − σ(x))
//   dy/dx = σ(x) + x·σ(x)(1 − σ(x))          (product rule)
//         = σ(x)·(1 + x(1 − σ(x)))
//   ⇒ dx += g ⊙ σ(x)(1 + x(1 − σ(x)))       g = dL/dy; += because x may feed several ops
template <typename T>
Var<T> silu(const Var<T>& x) {
  Tensor<T> y = Tensor<T>::empty(x.shape());
  for (int64_t i = 0; i < y.numel(); ++i) y[i] = x.value()[i] / (T(1) + std::exp(-x.value()[i]));
  return make_result<T>(std::move(y), {&x}, "silu", [](Node<T>& o) {
    Tensor<T>* dx = o.input_grad(0);
    if (!dx) return;  // x needs no gradient
    const Tensor<T>& xv = o.input_value(0);
    for (int64_t i = 0; i < xv.numel(); ++i) {
      const T s = T(1) / (T(1) + std::exp(-xv[i]));
      (*dx)[i] += o.grad[i] * s * (T(1) + xv[i] * (T(1) - s));
    }
  });
}

// The same forward with a wrong backward: dy/dx = σ(x), as if σ(x) did not depend on x.
template <typename T>
Var<T> silu_wrong(const Var<T>& x) {
  Tensor<T> y = silu(Var<T>(x.value())).value();
  return make_result<T>(std::move(y), {&x}, "silu_wrong", [](Node<T>& o) {
    if (Tensor<T>* dx = o.input_grad(0))
      for (int64_t i = 0; i < dx->numel(); ++i)
        (*dx)[i] += o.grad[i] / (T(1) + std::exp(-o.input_value(0)[i]));
  });
}

int main() {
  // Inputs in float64, spread over both signs; the loss sums y·w so every element's gradient
  // differs (a check of sum(y) alone would miss a backward that mixes elements up).
  Rng rng(1);
  Var<double> x(Tensor<double>::zeros({3, 4}), /*requires_grad=*/true);
  Tensor<double> w = Tensor<double>::zeros({3, 4});
  for (double& v : x.value()) v = rng.normal(0.0, 2.0);
  for (double& v : w) v = rng.normal(0.0, 1.0);
  const Var<double> weights(w);

  GradcheckReport good = gradcheck([&] { return sum(silu(x) * weights); }, {{"x", x}});
  std::printf("silu, correct backward:\n%s\n", good.table().c_str());
  GradcheckReport bad = gradcheck([&] { return sum(silu_wrong(x) * weights); }, {{"x", x}});
  std::printf("silu, backward without the product rule's x·σ'(x) term:\n%s\n", bad.table().c_str());

  std::printf("%s\n", good.ok && !bad.ok
                          ? "the check passes the right backward and catches the wrong one"
                          : "UNEXPECTED: the check did not tell them apart");
  return good.ok && !bad.ok ? 0 : 1;
}
