// cross_entropy, fused with a stable log-softmax.
#include <algorithm>
#include <cmath>

#include "autograd/kernels.h"
#include "autograd/ops.h"

namespace qkv {
namespace {

constexpr int64_t kParallelElements = 65536;  // below this, one thread does every row

}  // namespace

// Mean cross-entropy over the counted rows (target ≠ −1), n = how many there are:
//   ℓ_r = lse(x_r) − x_r[t_r],   lse(x) = m + log Σ_j exp(x_j − m),  m = max_j x_j
//   L   = (1/n) Σ_{r counted} ℓ_r          (L = 0 when n = 0)
// Subtracting the row max keeps every exponent ≤ 0, so logits of ±1000 give a finite loss.
// Backward, g = dL/dL_out (a scalar):
//   in the forward pass this was ℓ_r = lse(x_r) − x_r[t_r], and ∂lse/∂x_j = softmax(x)_j = p_j,
//   so now we have dx_rj += g · (p_rj − [j = t_r]) / n for counted rows, and 0 for ignored rows.
// The forward saves only each row's m and z = Σ_j exp(x_j − m) (and the targets); the backward
// recomputes D_r = (p_r − onehot_r)/n = exp(x_r − m)·(1/n)/z − onehot_r/n one row at a time, with
// the forward's expression, and adds g·D_r into dx. No [N, V] buffer besides the logits and their
// gradient is ever held. Rows are independent (OpenMP over rows); the row losses are summed in row
// order, in double, so the loss is the same on every run.
template <typename T>
Var<T> cross_entropy(const Var<T>& logits, const IndexTensor& targets) {
  QKV_CHECK(logits.dim() == 2, "cross_entropy: logits must be [N, V], got {}", logits.shape());
  const int64_t N = logits.size(0), V = logits.size(1);
  QKV_CHECK(targets.numel() == N, "cross_entropy: {} targets for logits of shape {}",
            targets.numel(), logits.shape());
  int64_t count = 0;
  for (int64_t r = 0; r < N; ++r) {
    const int32_t t = targets[r];
    QKV_CHECK(t >= -1 && t < V,
              "cross_entropy: target {} is out of range for {} classes (use -1 to ignore a row)", t,
              V);
    count += t != -1;
  }
  const bool want_grad = grad_enabled() && logits.requires_grad();
  // Per row: m, z and the target (as T: exact, since |t| < V and V ≤ 2^24 is checked below).
  Tensor<T> stats = want_grad ? Tensor<T>::empty({N, 3}) : Tensor<T>();
  QKV_CHECK(!want_grad || V <= (int64_t{1} << 24),
            "cross_entropy: {} classes is more than the 2^24 the backward can index", V);
  Tensor<double> row_loss = Tensor<double>::empty({N});
  auto X = logits.value().mat(N, V);
  parallel_for(N, N * V >= kParallelElements, [&](int64_t r) {
    const int32_t t = targets[r];
    if (t == -1) {
      row_loss[r] = 0;
      if (want_grad) stats.mat(N, 3).row(r) << T(0), T(1), T(-1);
      return;
    }
    const T m = X.row(r).maxCoeff();
    const T z = (X.row(r).array() - m).exp().sum();
    const T lse = m + std::log(z);
    row_loss[r] = static_cast<double>(lse - X(r, t));
    if (want_grad) stats.mat(N, 3).row(r) << m, z, static_cast<T>(t);
  });
  double total = 0;
  for (int64_t r = 0; r < N; ++r) total += row_loss[r];
  const T loss = count > 0 ? static_cast<T>(total / static_cast<double>(count)) : T(0);
  const T inv_n = count > 0 ? T(1) / static_cast<T>(count) : T(0);
  Var<T> out = make_result<T>(Tensor<T>::scalar(loss), {&logits}, "cross_entropy", [](Node<T>& o) {
    bool fresh = false;  // the logits' gradient written outright when the loss is their only reader
    Tensor<T>* dx = o.input_grad_to_write(0, &fresh);
    if (!dx) return;
    const Tensor<T>& x = o.input_value(0);
    const int64_t N = x.size(0), V = x.size(1);
    auto X = x.mat(N, V);
    auto S = o.saved[0].mat(N, 3);  // m, z, t per row
    auto dX = dx->mat(N, V);
    const T inv_n = static_cast<T>(o.args[0]), g = o.grad[0];
    parallel_for(N, N * V >= kParallelElements, [&](int64_t r) {
      const auto t = static_cast<int64_t>(S(r, 2));
      if (t == -1) {  // an ignored row: D_r = 0
        if (fresh) dX.row(r).setZero();
        return;
      }
      const T m = S(r, 0), z = S(r, 1);
      RowsMap<T> Dr(scratch<T>(V), 1, V);
      Dr = ((X.row(r).array() - m).exp() * (inv_n / z)).matrix();  // p / n
      Dr(0, t) -= inv_n;                                           // − onehot / n
      put_grad(dX.row(r).array(), g * Dr.array(), fresh);
    });
  });
  if (records(out)) {
    out.node()->saved[0] = std::move(stats);
    out.node()->args[0] = static_cast<double>(inv_n);  // exact: a T is a double
  }
  return out;
}

template Var<float> cross_entropy(const Var<float>&, const IndexTensor&);
template Var<double> cross_entropy(const Var<double>&, const IndexTensor&);

}  // namespace qkv
