// layer_norm over the last axis, with a fused backward.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "autograd/kernels.h"
#include "autograd/ops.h"

namespace qkv {
namespace {

constexpr int64_t kParallelElements = 65536;  // below this, one thread does every row
constexpr int64_t kMaxBlocks = 16;            // row blocks of the backward's weight/bias sums
constexpr int64_t kMinBlockRows = 8;

/// Row blocks for the backward's partial sums: a function of the shape only, so dweight and dbias
/// are summed in the same order whatever the thread count.
int64_t row_blocks(int64_t rows, int64_t C) {
  if (rows * C < kParallelElements) return 1;
  return std::max<int64_t>(1, std::min(kMaxBlocks, rows / kMinBlockRows));
}

/// Σ_{j<n} f(j), summed in kLanes interleaved partial sums that are then added pairwise (lane l
/// and l + h, h halving), then the tail: loops the compiler vectorizes (a single running sum it may
/// not reorder), the same bits at any thread count and for any alignment of the row.
constexpr int kLanes = 8;
template <typename T, typename F>
T lane_sum(int64_t n, F f) {
  T acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += f(j + l);
  T tail = 0;  // the last n mod kLanes entries, apart: acc stays in a register
  for (; j < n; ++j) tail += f(j);
#ifdef EIGEN_VECTORIZE_AVX
  // Eigen's predux of 8 floats adds lanes l and l + 4, then l and l + 2, then 0 and 1: the
  // pairwise order below, kept in registers (GCC sent the loop below through the stack: stores
  // and scalar reloads on each row's chain of dependent steps; layer norm's rows of 32 are one
  // such sum each).
  if constexpr (std::is_same_v<T, float> && kLanes == 8)
    return Eigen::internal::predux(Eigen::internal::ploadu<Eigen::internal::Packet8f>(acc)) + tail;
#endif
  for (int h = kLanes / 2; h > 0; h /= 2)
    for (int l = 0; l < h; ++l) acc[l] += acc[l + h];
  return acc[0] + tail;
}

}  // namespace

// LayerNorm, per row x of C elements (R rows):
//   μ = mean(x),  σ² = mean((x − μ)²)  (biased, as PyTorch),  r = 1/√(σ² + ε)
//   x̂ = (x − μ)·r,  y = x̂ ⊙ w + b        (w = 1, b = 0 when undefined)
// μ and r are saved per row (saved[0], saved[1]); x̂ is recomputed from x in the backward.
// Backward, g = dL/dy:
//   in the forward pass this was y = x̂ ⊙ w + b, so now we have
//     db += Σ_rows g,   dw += Σ_rows g ⊙ x̂,   dx̂ = g ⊙ w
//   and x̂_j = (x_j − μ)·r with ∂μ/∂x_k = 1/C and ∂r/∂x_k = −r³ (x_k − μ)/C (the Σ(x − μ) term of
//   ∂σ²/∂x_k vanishes), so ∂x̂_j/∂x_k = r (δ_jk − 1/C − x̂_j x̂_k / C), and summing over j:
//     dx_k += r · (dx̂_k − mean(dx̂) − x̂_k · mean(dx̂ ⊙ x̂))
// Rows are independent (OpenMP over rows); dw and db are summed per fixed row block, then the
// blocks in order, so the result is the same on every run and for any thread count.
template <typename T>
Var<T> layer_norm(const Var<T>& x, const Var<T>& weight, const Var<T>& bias, double eps) {
  QKV_CHECK(x.dim() >= 1, "layer_norm: needs at least one axis, got shape {}", x.shape());
  const int64_t C = x.size(-1), R = x.shape().span(0, x.dim() - 1);
  const bool has_w = weight.defined(), has_b = bias.defined();
  QKV_CHECK(!has_w || (weight.dim() == 1 && weight.size(0) == C),
            "layer_norm: weight {} does not match input {} (C = {})", weight.shape(), x.shape(), C);
  QKV_CHECK(!has_b || (bias.dim() == 1 && bias.size(0) == C),
            "layer_norm: bias {} does not match input {} (C = {})", bias.shape(), x.shape(), C);
  QKV_CHECK(eps >= 0 && std::isfinite(eps), "layer_norm: eps must be finite and >= 0, got {}", eps);
  Tensor<T> y = Tensor<T>::empty(x.shape());
  Tensor<T> mean = Tensor<T>::empty({R}), rstd = Tensor<T>::empty({R});
  T* mean_r = mean.data();
  T* rstd_r = rstd.data();
  // Without a weight, w = 1 (a pooled row of ones keeps one code path); without a bias, b = 0.
  const Tensor<T> wt = has_w ? weight.value() : Tensor<T>::full({C}, T(1));
  const Tensor<T> bt = has_b ? bias.value() : Tensor<T>::zeros({C});
  const T* X = x.value().data();
  const T* w = wt.data();
  const T* b = bt.data();
  T* Y = y.data();
  const T n = static_cast<T>(C);
  // Three passes over the rows, so that each row's chain of dependent steps (Σ, the variance's Σ,
  // √, 1/·) overlaps other rows' instead of stalling every row in turn: μ and σ² per row, then
  // r for all rows at once (a vector loop), then y.
  const bool par = R * C >= kParallelElements;
  parallel_for(R, par, [&](int64_t r) {
    const T* x_r = X + r * C;
    const T mu = lane_sum<T>(C, [x_r](int64_t j) { return x_r[j]; }) / n;
    mean_r[r] = mu;
    rstd_r[r] = lane_sum<T>(C, [x_r, mu](int64_t j) { return (x_r[j] - mu) * (x_r[j] - mu); }) / n;
  });
  const T e = static_cast<T>(eps);
  // A vector loop (vsqrtps, vdivps) thanks to -fno-math-errno (CMakeLists.txt).
  for (int64_t r = 0; r < R; ++r) rstd_r[r] = T(1) / std::sqrt(rstd_r[r] + e);
  parallel_for(R, par, [&](int64_t r) {
    const T* x_r = X + r * C;
    T* y_r = Y + r * C;
    const T mu = mean_r[r], rs = rstd_r[r];
    for (int64_t j = 0; j < C; ++j) y_r[j] = (x_r[j] - mu) * rs * w[j] + b[j];
  });
  auto backward = [](Node<T>& o) {
    const bool has_w = o.args[0] != 0, has_b = o.args[1] != 0;
    const Tensor<T>& xv = o.input_value(0);
    const int64_t C = xv.size(-1), R = xv.shape().span(0, xv.dim() - 1);
    const T* X = xv.data();
    const T* G = o.grad.data();
    const T* mean = o.saved[0].data();
    const T* rstd = o.saved[1].data();
    const Tensor<T> wt = has_w ? o.input_value(1) : Tensor<T>::full({C}, T(1));
    const T* w = wt.data();
    bool fresh = false;  // dx written outright when no other op has reached x (asked first)
    Tensor<T>* dx = o.input_grad_to_write(0, &fresh);
    Tensor<T>* dw = has_w ? o.input_grad(1) : nullptr;
    Tensor<T>* db = has_b ? o.input_grad(has_w ? 2 : 1) : nullptr;
    const int64_t nblk = row_blocks(R, C);
    Tensor<T> partial;  // per block: Σ g ⊙ x̂ (row 2·blk) and Σ g (row 2·blk + 1)
    if (dw || db) partial = Tensor<T>(Shape{2 * nblk, C});
    const T n = static_cast<T>(C);
    parallel_for(nblk, true, [&](int64_t blk) {
      for (int64_t r = R * blk / nblk; r < R * (blk + 1) / nblk; ++r) {
        const T mu = mean[r], rs = rstd[r];
        const T* x_r = X + r * C;
        const T* g = G + r * C;
        // x̂ = (x − μ)·r and dx̂ = g ⊙ w, computed where used (no scratch rows).
        if (partial.defined()) {
          T* gx = partial.data() + 2 * blk * C;
          T* gs = gx + C;
          for (int64_t j = 0; j < C; ++j) {
            gx[j] += g[j] * (x_r[j] - mu) * rs;
            gs[j] += g[j];
          }
        }
        if (!dx) continue;
        const T m1 = lane_sum<T>(C, [g, w](int64_t j) { return g[j] * w[j]; }) / n;  // mean(dx̂)
        const T m2 =
            lane_sum<T>(C, [g, w, x_r, mu](int64_t j) { return g[j] * w[j] * (x_r[j] - mu); }) / n *
            rs;  // mean(dx̂ ⊙ x̂)
        T* dx_r = dx->data() + r * C;
        for (int64_t j = 0; j < C; ++j)  // 0 + term when fresh: the bits of adding to zeros
          dx_r[j] = (fresh ? T(0) : dx_r[j]) + rs * (g[j] * w[j] - m1 - (x_r[j] - mu) * (rs * m2));
      }
    });
    for (int64_t blk = 0; blk < nblk && partial.defined(); ++blk) {
      RowsMap<T> P(partial.data() + 2 * blk * C, 2, C);
      if (dw) dw->vec() += P.row(0).transpose();
      if (db) db->vec() += P.row(1).transpose();
    }
  };
  auto record = [&](std::initializer_list<const Var<T>*> inputs) {
    return make_result<T>(std::move(y), inputs, "layer_norm", backward);
  };
  Var<T> out = has_w ? (has_b ? record({&x, &weight, &bias}) : record({&x, &weight}))
                     : (has_b ? record({&x, &bias}) : record({&x}));
  if (records(out)) {
    out.node()->saved[0] = std::move(mean);
    out.node()->saved[1] = std::move(rstd);
    out.node()->args[0] = has_w;
    out.node()->args[1] = has_b;
  }
  return out;
}

template Var<float> layer_norm(const Var<float>&, const Var<float>&, const Var<float>&, double);
template Var<double> layer_norm(const Var<double>&, const Var<double>&, const Var<double>&, double);

}  // namespace qkv
