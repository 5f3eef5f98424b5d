// Elementwise ops: broadcasting binary arithmetic, scalar ops, activations, masked_fill, where.
//
// Notation: g = dL/dy (o.grad, y's shape); Σ↓x sums over the axes along which x was stretched to
// y's shape (autograd/broadcast.h), so every input's gradient has that input's shape.
#include <algorithm>
#include <cmath>
#include <utility>

#include <unsupported/Eigen/SpecialFunctions>

#include "autograd/broadcast.h"
#include "autograd/kernels.h"
#include "autograd/ops.h"

namespace qkv {
namespace {

using bcast::ArrMap;
using bcast::ConstArrMap;

/// f(A, B) over a and b broadcast together; the shape error names `op`.
template <typename T, typename F>
Tensor<T> broadcast_value(const char* op, const Var<T>& a, const Var<T>& b, F f) {
  Tensor<T> y = Tensor<T>::empty(bcast::broadcast_shapes(op, a.shape(), b.shape()));
  bcast::map2(a.value(), b.value(), y, f);
  return y;
}

/// f(X) over every element of a.
template <typename T, typename F>
Tensor<T> unary_value(const Var<T>& a, F f) {
  Tensor<T> y = Tensor<T>::empty(a.shape());
  const T* px = a.value().data();
  T* py = y.data();
  for_chunks(y.numel(),
             [&](int64_t i, int64_t n) { ArrMap<T>(py + i, n) = f(ConstArrMap<T>(px + i, n)); });
  return y;
}

// gelu's constants, at namespace scope so captureless lambdas can use them.
template <typename T>
constexpr T kInvSqrt2 = T(0.70710678118654752440);  // 1/√2
template <typename T>
constexpr T kInvSqrt2Pi = T(0.39894228040143267794);  // 1/√(2π)
template <typename T>
constexpr T kK = T(0.79788456080286535588);  // √(2/π)
template <typename T>
constexpr T kC = T(0.044715);

/// dx_i += scale · Σ↓x g for input i of a sum or difference. Where x has g's own shape and no op
/// has reached its gradient yet, that gradient is written as 0 + scale · g (the bits of the sum,
/// −0 included) instead of zero-filled and then added to: one pass over the buffer fewer.
template <typename T>
void send_sum_grad(Node<T>& o, size_t i, T scale) {
  if (o.input_value(i).numel() != o.grad.numel()) {
    if (Tensor<T>* d = o.input_grad(i)) bcast::reduce_add(*d, o.grad, scale);
    return;
  }
  bool fresh = false;
  Tensor<T>* d = o.input_grad_to_write(i, &fresh);
  if (!d) return;
  const T* pg = o.grad.data();
  T* pd = d->data();
  for_chunks(d->numel(), [&](int64_t j, int64_t n) {
    put_grad(ArrMap<T>(pd + j, n), scale * ConstArrMap<T>(pg + j, n), fresh);
  });
}

}  // namespace

// ---- binary, broadcasting --------------------------------------------------------------------

// add: y = a + b.   ∂y/∂a = ∂y/∂b = 1   ⇒   da = Σ↓a g,  db = Σ↓b g
// (a before b: when a and b are one node, b's term finds a's written and adds to it)
template <typename T>
Var<T> add(const Var<T>& a, const Var<T>& b) {
  Tensor<T> y = broadcast_value("add", a, b, [](const auto& A, const auto& B) { return A + B; });
  return make_result<T>(std::move(y), {&a, &b}, "add", [](Node<T>& o) {
    send_sum_grad(o, 0, T(1));
    send_sum_grad(o, 1, T(1));
  });
}

// sub: y = a − b.   ∂y/∂a = 1, ∂y/∂b = −1   ⇒   da = Σ↓a g,  db = −Σ↓b g
template <typename T>
Var<T> sub(const Var<T>& a, const Var<T>& b) {
  Tensor<T> y = broadcast_value("sub", a, b, [](const auto& A, const auto& B) { return A - B; });
  return make_result<T>(std::move(y), {&a, &b}, "sub", [](Node<T>& o) {
    send_sum_grad(o, 0, T(1));
    send_sum_grad(o, 1, T(-1));
  });
}

// mul: y = a ⊙ b.   ∂y/∂a = b, ∂y/∂b = a   ⇒   da = Σ↓a (g ⊙ b),  db = Σ↓b (g ⊙ a)
// (fused: g ⊙ b is reduced row by row, never stored)
template <typename T>
Var<T> mul(const Var<T>& a, const Var<T>& b) {
  Tensor<T> y = broadcast_value("mul", a, b, [](const auto& A, const auto& B) { return A * B; });
  return make_result<T>(std::move(y), {&a, &b}, "mul", [](Node<T>& o) {
    const auto times = [](const auto& G, const auto& Y) { return G * Y; };
    if (Tensor<T>* da = o.input_grad(0)) bcast::reduce_add1(*da, o.grad, o.input_value(1), times);
    if (Tensor<T>* db = o.input_grad(1)) bcast::reduce_add1(*db, o.grad, o.input_value(0), times);
  });
}

// div: y = a / b.   ∂y/∂a = 1/b, ∂y/∂b = −a/b²   ⇒   da = Σ↓a (g / b),  db = −Σ↓b (g ⊙ a / b²)
template <typename T>
Var<T> div(const Var<T>& a, const Var<T>& b) {
  Tensor<T> y = broadcast_value("div", a, b, [](const auto& A, const auto& B) { return A / B; });
  return make_result<T>(std::move(y), {&a, &b}, "div", [](Node<T>& o) {
    const Tensor<T>& a = o.input_value(0);
    const Tensor<T>& b = o.input_value(1);
    if (Tensor<T>* da = o.input_grad(0))
      bcast::reduce_add1(*da, o.grad, b, [](const auto& G, const auto& B) { return G / B; });
    if (Tensor<T>* db = o.input_grad(1))
      bcast::reduce_add2(*db, o.grad, a, b, [](const auto& G, const auto& A, const auto& B) {
        return -(G * A) / (B * B);
      });
  });
}

// ---- unary and scalar ------------------------------------------------------------------------

// neg: y = −a.   dx = −g
template <typename T>
Var<T> neg(const Var<T>& a) {
  Tensor<T> y = unary_value(a, [](const auto& X) { return -X; });
  return make_result<T>(std::move(y), {&a}, "neg", [](Node<T>& o) {
    if (Tensor<T>* dx = o.input_grad(0)) dx->vec() -= o.grad.vec();
  });
}

// add_scalar: y = a + s.   dx = g
template <typename T>
Var<T> add_scalar(const Var<T>& a, double s) {
  const T c = static_cast<T>(s);
  Tensor<T> y = unary_value(a, [c](const auto& X) { return X + c; });
  return make_result<T>(std::move(y), {&a}, "add_scalar", [](Node<T>& o) {
    if (Tensor<T>* dx = o.input_grad(0)) dx->vec() += o.grad.vec();
  });
}

// mul_scalar: y = s·a.   dx = s·g
template <typename T>
Var<T> mul_scalar(const Var<T>& a, double s) {
  const T c = static_cast<T>(s);
  Tensor<T> y = unary_value(a, [c](const auto& X) { return X * c; });
  Var<T> out = make_result<T>(std::move(y), {&a}, "mul_scalar", [](Node<T>& o) {
    if (Tensor<T>* dx = o.input_grad(0)) dx->vec() += static_cast<T>(o.args[0]) * o.grad.vec();
  });
  out.node()->args[0] = s;
  return out;
}

// pow_scalar: y = a^p.   dy/da = p·a^(p−1)   ⇒   dx = g ⊙ p·a^(p−1)
// p = 0 gives a constant: zero gradient (not 0·a^(−1), which is NaN at a = 0).
template <typename T>
Var<T> pow_scalar(const Var<T>& a, double p) {
  const T c = static_cast<T>(p);
  Tensor<T> y = unary_value(a, [c](const auto& X) { return X.pow(c); });
  Var<T> out = make_result<T>(std::move(y), {&a}, "pow_scalar", [](Node<T>& o) {
    Tensor<T>* dx = o.input_grad(0);
    const T p = static_cast<T>(o.args[0]);
    if (!dx || p == T(0)) return;
    const ConstVecMap<T> x = o.input_value(0).vec();
    dx->vec().array() += o.grad.vec().array() * p * x.array().pow(p - T(1));
  });
  out.node()->args[0] = p;
  return out;
}

// exp: y = eᵃ.   dy/da = y   ⇒   dx = g ⊙ y   (y is the node's own value; nothing saved)
template <typename T>
Var<T> exp(const Var<T>& a) {
  Tensor<T> y = unary_value(a, [](const auto& X) { return X.exp(); });
  return make_result<T>(std::move(y), {&a}, "exp", [](Node<T>& o) {
    if (Tensor<T>* dx = o.input_grad(0))
      dx->vec().array() += o.grad.vec().array() * o.value.vec().array();
  });
}

// log: y = ln a.   dy/da = 1/a   ⇒   dx = g / a
template <typename T>
Var<T> log(const Var<T>& a) {
  Tensor<T> y = unary_value(a, [](const auto& X) { return X.log(); });
  return make_result<T>(std::move(y), {&a}, "log", [](Node<T>& o) {
    if (Tensor<T>* dx = o.input_grad(0))
      dx->vec().array() += o.grad.vec().array() / o.input_value(0).vec().array();
  });
}

// sqrt: y = √a.   dy/da = 1/(2√a) = 1/(2y)   ⇒   dx = g / (2y)
template <typename T>
Var<T> sqrt(const Var<T>& a) {
  Tensor<T> y = unary_value(a, [](const auto& X) { return X.sqrt(); });
  return make_result<T>(std::move(y), {&a}, "sqrt", [](Node<T>& o) {
    if (Tensor<T>* dx = o.input_grad(0))
      dx->vec().array() += o.grad.vec().array() / (T(2) * o.value.vec().array());
  });
}

// tanh: y = tanh a.   dy/da = 1 − y²   ⇒   dx = g ⊙ (1 − y²)
template <typename T>
Var<T> tanh(const Var<T>& a) {
  Tensor<T> y = unary_value(a, [](const auto& X) { return X.tanh(); });
  return make_result<T>(std::move(y), {&a}, "tanh", [](Node<T>& o) {
    if (Tensor<T>* dx = o.input_grad(0))
      dx->vec().array() += o.grad.vec().array() * (T(1) - o.value.vec().array().square());
  });
}

// relu: y = max(a, 0).   dy/da = [a > 0] (0 at a = 0, as PyTorch)   ⇒   dx = g ⊙ [a > 0]
template <typename T>
Var<T> relu(const Var<T>& a) {
  Tensor<T> y = unary_value(a, [](const auto& X) { return X.max(T(0)); });
  return make_result<T>(std::move(y), {&a}, "relu", [](Node<T>& o) {
    if (Tensor<T>* dx = o.input_grad(0))
      dx->vec().array() +=
          o.grad.vec().array() * (o.input_value(0).vec().array() > T(0)).template cast<T>();
  });
}

// gelu, erf form: y = x·Φ(x), Φ(x) = ½(1 + erf(x/√2)) the standard normal CDF.
//   dy/dx = Φ(x) + x·φ(x),   φ(x) = e^(−x²/2) / √(2π) the standard normal density.
// gelu, tanh form (PyTorch approximate='tanh'): y = ½x(1 + tanh u),  u = k(x + c·x³),
//   k = √(2/π), c = 0.044715;   du/dx = k(1 + 3c·x²)
//   dy/dx = ½(1 + tanh u) + ½x·(1 − tanh²u)·k(1 + 3c·x²)
// Backward recomputes Φ (or tanh u) from x rather than keeping it: one buffer less per layer. It
// writes dx outright when no other op has reached x (fc1's output, whose only reader is gelu).
template <typename T>
Var<T> gelu(const Var<T>& a, GeluForm form) {
  if (form == GeluForm::kErf) {
    Tensor<T> y = unary_value(
        a, [](const auto& X) { return T(0.5) * X * (T(1) + (X * kInvSqrt2<T>).erf()); });
    return make_result<T>(std::move(y), {&a}, "gelu", [](Node<T>& o) {
      bool fresh = false;
      Tensor<T>* dx = o.input_grad_to_write(0, &fresh);
      if (!dx) return;
      const T* px = o.input_value(0).data();
      const T* pg = o.grad.data();
      T* pd = dx->data();
      for_chunks(dx->numel(), [&](int64_t i, int64_t n) {
        const ConstArrMap<T> x(px + i, n);
        put_grad(ArrMap<T>(pd + i, n),
                 ConstArrMap<T>(pg + i, n) * (T(0.5) * (T(1) + (x * kInvSqrt2<T>).erf()) +
                                              x * kInvSqrt2Pi<T> * (T(-0.5) * x.square()).exp()),
                 fresh);
      });
    });
  }
  Tensor<T> y = unary_value(a, [](const auto& X) {
    return T(0.5) * X * (T(1) + (kK<T> * (X + kC<T> * X.cube())).tanh());
  });
  return make_result<T>(std::move(y), {&a}, "gelu_tanh", [](Node<T>& o) {
    bool fresh = false;
    Tensor<T>* dx = o.input_grad_to_write(0, &fresh);
    if (!dx) return;
    const T* px = o.input_value(0).data();
    const T* pg = o.grad.data();
    T* pd = dx->data();
    for_chunks(dx->numel(), [&](int64_t i0, int64_t n0) {
      constexpr int64_t kBlock = 512;  // tanh u is used twice: kept per block, on the stack
      for (int64_t i = i0; i < i0 + n0; i += kBlock) {
        const int64_t n = std::min(kBlock, i0 + n0 - i);
        const ConstArrMap<T> x(px + i, n);
        const Eigen::Array<T, Eigen::Dynamic, 1, 0, kBlock, 1> t =
            (kK<T> * (x + kC<T> * x.cube())).tanh();
        put_grad(ArrMap<T>(pd + i, n),
                 ConstArrMap<T>(pg + i, n) *
                     (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t.square()) * kK<T> *
                                                (T(1) + T(3) * kC<T> * x.square())),
                 fresh);
      }
    });
  });
}

// ---- masking ---------------------------------------------------------------------------------

// masked_fill: y = mask ? value : a, mask broadcast to a's shape; value may be ±inf (attention
// masks). y does not depend on a where the mask is set, so
//   dx = g ⊙ keep,   keep = 1 − mask   (exact zeros at filled positions)
// keep is saved at the mask's (small) shape, not a's.
template <typename T>
Var<T> masked_fill(const Var<T>& a, const BoolTensor& mask, double value) {
  QKV_CHECK(static_cast<int64_t>(mask.data.size()) == mask.shape.numel(),
            "masked_fill: mask holds {} values for shape {}", mask.data.size(), mask.shape);
  QKV_CHECK(bcast::broadcasts_to(mask.shape, a.shape()),
            "masked_fill: mask of shape {} does not broadcast to {}", mask.shape, a.shape());
  Tensor<T> keep = as_values<T>(mask);
  keep.vec().array() = T(1) - keep.vec().array();
  Tensor<T> y = Tensor<T>::empty(a.shape());
  const T v = static_cast<T>(value);
  bcast::map2(a.value(), keep, y, [v](const auto& A, const auto& K) {
    return (K != T(0)).select(A, bcast::Arr<T>::Constant(A.size(), v));
  });
  Var<T> out = make_result<T>(std::move(y), {&a}, "masked_fill", [](Node<T>& o) {
    if (Tensor<T>* dx = o.input_grad(0))
      bcast::reduce_add1(*dx, o.grad, o.saved[0],
                         [](const auto& G, const auto& K) { return (K != T(0)).select(G, T(0)); });
  });
  if (records(out)) out.node()->saved[0] = std::move(keep);
  return out;
}

// where: y = cond ? a : b, all three broadcast together.
//   da = Σ↓a (g ⊙ c),  db = Σ↓b (g ⊙ (1 − c))      c = cond as 0/1, saved at cond's shape
template <typename T>
Var<T> where(const BoolTensor& cond, const Var<T>& a, const Var<T>& b) {
  QKV_CHECK(static_cast<int64_t>(cond.data.size()) == cond.shape.numel(),
            "where: cond holds {} values for shape {}", cond.data.size(), cond.shape);
  const Shape s = bcast::broadcast_shapes(
      "where", bcast::broadcast_shapes("where", cond.shape, a.shape()), b.shape());
  Tensor<T> c = as_values<T>(cond);
  Tensor<T> y = Tensor<T>::empty(s);
  if (y.numel() > 0) {
    const T* pc = c.data();
    const T* pa = a.value().data();
    const T* pb = b.value().data();
    T* py = y.data();
    const bcast::Plan<3> p = bcast::make_plan<3>(s, {c.shape(), a.shape(), b.shape()});
    const int64_t n = p.n();
    bcast::for_each_row(p, [&](int64_t r, const std::array<int64_t, 3>& off) {
      bcast::with_row(pc + off[0], p.inner(0), n, [&](const auto& C) {
        bcast::with_row(pa + off[1], p.inner(1), n, [&](const auto& A) {
          bcast::with_row(pb + off[2], p.inner(2), n, [&](const auto& B) {
            bcast::ArrMap<T>(py + r, n) = (C != T(0)).select(A, B);
          });
        });
      });
    });
  }
  Var<T> out = make_result<T>(std::move(y), {&a, &b}, "where", [](Node<T>& o) {
    const Tensor<T>& c = o.saved[0];
    if (Tensor<T>* da = o.input_grad(0))
      bcast::reduce_add1(*da, o.grad, c,
                         [](const auto& G, const auto& C) { return (C != T(0)).select(G, T(0)); });
    if (Tensor<T>* db = o.input_grad(1))
      bcast::reduce_add1(*db, o.grad, c,
                         [](const auto& G, const auto& C) { return (C != T(0)).select(T(0), G); });
  });
  if (records(out)) out.node()->saved[0] = std::move(c);
  return out;
}

#define QKV_INSTANTIATE(T)                                               \
  template Var<T> add(const Var<T>&, const Var<T>&);                     \
  template Var<T> sub(const Var<T>&, const Var<T>&);                     \
  template Var<T> mul(const Var<T>&, const Var<T>&);                     \
  template Var<T> div(const Var<T>&, const Var<T>&);                     \
  template Var<T> neg(const Var<T>&);                                    \
  template Var<T> add_scalar(const Var<T>&, double);                     \
  template Var<T> mul_scalar(const Var<T>&, double);                     \
  template Var<T> pow_scalar(const Var<T>&, double);                     \
  template Var<T> exp(const Var<T>&);                                    \
  template Var<T> log(const Var<T>&);                                    \
  template Var<T> sqrt(const Var<T>&);                                   \
  template Var<T> tanh(const Var<T>&);                                   \
  template Var<T> relu(const Var<T>&);                                   \
  template Var<T> gelu(const Var<T>&, GeluForm);                         \
  template Var<T> masked_fill(const Var<T>&, const BoolTensor&, double); \
  template Var<T> where(const BoolTensor&, const Var<T>&, const Var<T>&);
QKV_INSTANTIATE(float)
QKV_INSTANTIATE(double)
#undef QKV_INSTANTIATE

}  // namespace qkv
