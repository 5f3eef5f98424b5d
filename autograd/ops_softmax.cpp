// softmax and log_softmax over the last axis.
#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/kernels.h"
#include "autograd/ops.h"

namespace qkv {
namespace {

/// ln of the smallest normal T: below it exp(x) would be subnormal, and Eigen's exp clamps its
/// argument there (exp(−inf) would come out as 2.9e-39, not 0).
template <typename T>
constexpr T kExpLow = T(-87.336544750553102);  // ln(FLT_MIN)
template <>
constexpr double kExpLow<double> = -708.39641853226408;  // ln(DBL_MIN)

}  // namespace

// softmax over the last axis: y = exp(x − max) / Σ exp(x − max). Subtracting the row max keeps
// every exponent ≤ 0, so rows of ±1000 neither overflow nor give NaN. A row that is all −inf
// (every entry masked) has no max to subtract: it gives zeros, by definition.
// Backward, per row, g = dL/dy:
//   ∂y_j/∂x_k = y_j (δ_jk − y_k)            (J = diag(y) − y yᵀ)
//   dL/dx_k   = Σ_j g_j y_j (δ_jk − y_k) = y_k (g_k − ⟨g, y⟩)      O(n), never forms J
// Only y is kept for backward (not x).
// The kernel works in Eigen's packets (8 floats with AVX2, 16 with AVX-512), the row's last
// partial packet padded with −inf, so Eigen's vectorized exp (within 1 ulp of std::exp for float)
// computes every entry: no scalar peel or tail whose bits would depend on where the row starts in
// memory. Entries with x − max below kExpLow<T> (−inf among them) give exactly 0. Σ is summed per
// lane, then the lanes in a fixed order: the same bits for a row wherever it lies, at any thread
// count.
template <typename T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t n) {
  namespace ei = Eigen::internal;
  using Packet = typename ei::packet_traits<T>::type;
  constexpr int64_t W = ei::packet_traits<T>::size;
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  const int64_t whole = n / W * W;  // entries in whole packets
  const Packet low = ei::pset1<Packet>(kExpLow<T>);
  for (int64_t r = 0; r < rows; ++r) {
    const T* xi = x + r * n;
    T* yi = y + r * n;
    Packet pm = ei::pset1<Packet>(ninf);
    for (int64_t j = 0; j < whole; j += W) pm = ei::pmax(pm, ei::ploadu<Packet>(xi + j));
    T m = ei::predux_max(pm);
    for (int64_t j = whole; j < n; ++j) m = std::max(m, xi[j]);
    if (m == ninf) {
      std::fill(yi, yi + n, T(0));
      continue;
    }
    const Packet pmax = ei::pset1<Packet>(m);
    Packet z = ei::pzero(pmax);  // Σ exp(x − max), per lane
    // e = exp(x − max) of W entries from src into dst, added to z.
    const auto exp_packet = [&](const T* src, T* dst) {
      const Packet d = ei::psub(ei::ploadu<Packet>(src), pmax);
      const Packet e = ei::pandnot(ei::pexp(d), ei::pcmp_lt(d, low));
      z = ei::padd(z, e);
      ei::pstoreu(dst, e);
    };
    for (int64_t j = 0; j < whole; j += W) exp_packet(xi + j, yi + j);
    if (whole < n) {
      alignas(64) T tail[W];
      std::fill(tail, tail + W, ninf);
      std::copy(xi + whole, xi + n, tail);
      exp_packet(tail, tail);
      std::copy(tail, tail + (n - whole), yi + whole);
    }
    const T inv = T(1) / ei::predux(z);
    for (int64_t j = 0; j < n; ++j) yi[j] *= inv;
  }
}

template <typename T>
Var<T> softmax(const Var<T>& a) {
  QKV_CHECK(a.dim() >= 1, "softmax: needs at least one axis, got shape {}", a.shape());
  const int64_t n = a.size(-1), rows = a.numel() / std::max<int64_t>(n, 1);
  Tensor<T> y = Tensor<T>::empty(a.shape());
  softmax_rows(a.value().data(), y.data(), rows, n);
  Var<T> out = make_result<T>(y, {&a}, "softmax", [](Node<T>& o) {
    Tensor<T>* dx = o.input_grad(0);
    if (!dx) return;
    const Tensor<T>& y = o.saved[0];
    const ConstMatMap<T> Y = y.mat();  // two declarations: Y is const, G is not (clang insists)
    const MatMap<T> G = o.grad.mat();
    auto dX = dx->mat();
    const Vec<T> gy = (G.array() * Y.array()).rowwise().sum();  // ⟨g, y⟩ per row
    dX.array() += Y.array() * (G.colwise() - gy).array();
  });
  if (records(out)) out.node()->saved[0] = y;
  return out;
}

// log_softmax over the last axis: y = x − max − log Σ exp(x − max)   (stable, as softmax above).
// Backward, per row, g = dL/dy, p = exp(y) = softmax(x):
//   ∂y_j/∂x_k = δ_jk − p_k   ⇒   dL/dx_k = g_k − p_k Σ_j g_j
// A fully −inf row gives −inf outputs (log 0); there p = 0, so its gradient passes g through.
template <typename T>
Var<T> log_softmax(const Var<T>& a) {
  QKV_CHECK(a.dim() >= 1, "log_softmax: needs at least one axis, got shape {}", a.shape());
  const int64_t n = a.size(-1), rows = a.numel() / std::max<int64_t>(n, 1);
  Tensor<T> y = Tensor<T>::empty(a.shape());
  const T* x = a.value().data();
  for (int64_t r = 0; r < rows; ++r) {
    const T* xi = x + r * n;
    T* yi = y.data() + r * n;
    T m = -std::numeric_limits<T>::infinity();
    for (int64_t j = 0; j < n; ++j) m = std::max(m, xi[j]);
    if (m == -std::numeric_limits<T>::infinity()) {
      std::fill(yi, yi + n, m);
      continue;
    }
    T z = 0;
    for (int64_t j = 0; j < n; ++j) z += std::exp(xi[j] - m);
    const T lse = m + std::log(z);
    for (int64_t j = 0; j < n; ++j) yi[j] = xi[j] - lse;
  }
  Var<T> out = make_result<T>(y, {&a}, "log_softmax", [](Node<T>& o) {
    Tensor<T>* dx = o.input_grad(0);
    if (!dx) return;
    auto Y = o.saved[0].mat(), G = o.grad.mat();
    auto dX = dx->mat();
    const Vec<T> gsum = G.rowwise().sum();
    // exp(−inf) = 0: fully masked rows contribute nothing.
    dX.array() += G.array() - Y.array().exp() * gsum.replicate(1, G.cols()).array();
  });
  if (records(out)) out.node()->saved[0] = y;
  return out;
}

template void softmax_rows<float>(const float*, float*, int64_t, int64_t);
template void softmax_rows<double>(const double*, double*, int64_t, int64_t);
template Var<float> softmax(const Var<float>&);
template Var<double> softmax(const Var<double>&);
template Var<float> log_softmax(const Var<float>&);
template Var<double> log_softmax(const Var<double>&);

}  // namespace qkv
