// cross_entropy, fused with a stable log-softmax.
#include <algorithm>
#include <cmath>

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
// D = (p − onehot)/n is computed in the forward, where p is at hand (only when a graph is being
// recorded), and saved; the backward is one scaled add. Rows are independent (OpenMP over rows);
// the row losses are summed in row order, in double, so the loss is the same on every run.
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
  Tensor<T> D = want_grad ? Tensor<T>::empty(logits.shape()) : Tensor<T>();
  Tensor<double> row_loss = Tensor<double>::empty({N});
  auto X = logits.value().mat(N, V);
  const T inv_n = count > 0 ? T(1) / static_cast<T>(count) : T(0);
#pragma omp parallel for schedule(static) if (N * V >= kParallelElements)
  for (int64_t r = 0; r < N; ++r) {
    const int32_t t = targets[r];
    if (t == -1) {
      row_loss[r] = 0;
      if (want_grad) std::fill(D.data() + r * V, D.data() + (r + 1) * V, T(0));
      continue;
    }
    const T m = X.row(r).maxCoeff();
    const T z = (X.row(r).array() - m).exp().sum();
    const T lse = m + std::log(z);
    row_loss[r] = static_cast<double>(lse - X(r, t));
    if (want_grad) {
      RowsMap<T> Dr(D.data() + r * V, 1, V);
      Dr = ((X.row(r).array() - m).exp() * (inv_n / z)).matrix();  // p / n
      Dr(0, t) -= inv_n;                                           // − onehot / n
    }
  }
  double total = 0;
  for (int64_t r = 0; r < N; ++r) total += row_loss[r];
  const T loss = count > 0 ? static_cast<T>(total / static_cast<double>(count)) : T(0);
  Var<T> out = make_result<T>(Tensor<T>::scalar(loss), {&logits}, "cross_entropy", [](Node<T>& o) {
    if (Tensor<T>* dx = o.input_grad(0)) dx->vec().noalias() += o.grad[0] * o.saved[0].vec();
  });
  if (records(out)) out.node()->saved[0] = std::move(D);
  return out;
}

template Var<float> cross_entropy(const Var<float>&, const IndexTensor&);
template Var<double> cross_entropy(const Var<double>&, const IndexTensor&);

}  // namespace qkv
