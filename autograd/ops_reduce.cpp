// Reductions: sum and mean, over every element or over chosen axes.
#include <limits>

#include "autograd/broadcast.h"
#include "autograd/ops.h"

namespace qkv {
namespace {

// Over every element: y = s·Σᵢ aᵢ (s = 1 for sum, 1/n for mean), a scalar.
//   ∂y/∂aᵢ = s   ⇒   dx = s·g   (g is the one upstream number)
template <typename T>
Var<T> reduce_all(const Var<T>& a, const char* op, double scale) {
  Tensor<T> y = Tensor<T>::scalar(static_cast<T>(scale) * a.value().vec().sum());
  Var<T> out = make_result<T>(std::move(y), {&a}, op, [](Node<T>& o) {
    if (Tensor<T>* dx = o.input_grad(0)) dx->vec().array() += static_cast<T>(o.args[0]) * o.grad[0];
  });
  out.node()->args[0] = scale;
  return out;
}

/// a's shape with the axes in `bits` set to 1.
Shape kept_shape(const Shape& a, uint32_t bits) {
  Shape k = a;
  for (int i = 0; i < a.nd; ++i)
    if (bits & (1u << i)) k.d[static_cast<size_t>(i)] = 1;
  return k;
}

// Over axes R: y = s·Σ_{R} a, computed as a's gradient-style reduction onto the keepdim shape
// (a broadcasts to itself with the R axes stretched from 1). Each aᵢ reaches exactly one yⱼ, with
// weight s, so
//   dx = s·broadcast(g)   (g viewed at the keepdim shape, stretched back over R)
// args: [0] bit mask of R, [1] s.
template <typename T>
Var<T> reduce_axes(const Var<T>& a, const std::vector<int>& axes, bool keepdim, const char* op,
                   bool average) {
  const Shape& s = a.shape();
  uint32_t bits = 0;
  for (int ax : axes) {
    QKV_CHECK(ax >= -s.nd && ax < s.nd, "{}: axis {} is out of range for shape {}", op, ax, s);
    const int norm = ax < 0 ? ax + s.nd : ax;
    QKV_CHECK(!(bits & (1u << norm)), "{}: axis {} is repeated in the axes for shape {}", op, ax,
              s);
    bits |= 1u << norm;
  }
  const Shape k = kept_shape(s, bits);
  Shape out_shape;
  for (int i = 0; i < s.nd; ++i)
    if (keepdim || !(bits & (1u << i))) out_shape.d[static_cast<size_t>(out_shape.nd++)] = k[i];
  const int64_t count = k.numel() == 0 ? 0 : s.numel() / k.numel();
  const double scale = average ? (count == 0 ? std::numeric_limits<double>::quiet_NaN()
                                             : 1.0 / static_cast<double>(count))
                               : 1.0;
  Tensor<T> y(k);  // zeros, accumulated into
  bcast::reduce_add(y, a.value(), static_cast<T>(scale));
  if (count == 0 && average) y.fill_(static_cast<T>(scale));  // mean of nothing: NaN, as PyTorch
  Var<T> out = make_result<T>(y.reshape(out_shape), {&a}, op, [](Node<T>& o) {
    Tensor<T>* dx = o.input_grad(0);
    if (!dx) return;
    const Shape k = kept_shape(dx->shape(), static_cast<uint32_t>(o.args[0]));
    bcast::broadcast_add(*dx, o.grad.reshape(k), static_cast<T>(o.args[1]));
  });
  out.node()->args[0] = bits;
  out.node()->args[1] = scale;
  return out;
}

}  // namespace

template <typename T>
Var<T> sum(const Var<T>& a) {
  return reduce_all(a, "sum", 1.0);
}

template <typename T>
Var<T> sum(const Var<T>& a, const std::vector<int>& axes, bool keepdim) {
  return reduce_axes(a, axes, keepdim, "sum", /*average=*/false);
}

template <typename T>
Var<T> mean(const Var<T>& a) {
  const int64_t n = a.numel();
  return reduce_all(
      a, "mean", n == 0 ? std::numeric_limits<double>::quiet_NaN() : 1.0 / static_cast<double>(n));
}

template <typename T>
Var<T> mean(const Var<T>& a, const std::vector<int>& axes, bool keepdim) {
  return reduce_axes(a, axes, keepdim, "mean", /*average=*/true);
}

#define QKV_INSTANTIATE(T)                                           \
  template Var<T> sum(const Var<T>&);                                \
  template Var<T> sum(const Var<T>&, const std::vector<int>&, bool); \
  template Var<T> mean(const Var<T>&);                               \
  template Var<T> mean(const Var<T>&, const std::vector<int>&, bool);
QKV_INSTANTIATE(float)
QKV_INSTANTIATE(double)
#undef QKV_INSTANTIATE

}  // namespace qkv
