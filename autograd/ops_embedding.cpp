// embedding (a row lookup with a scatter-add backward) and inverted dropout.
#include <cstring>

#include "autograd/ops.h"

namespace qkv {
namespace {

// Node::saved holds Tensor<T>, so the ids the backward needs travel bit for bit inside one: n
// int32 values copied into ⌈4n / sizeof(T)⌉ elements of pooled, 64-byte aligned storage.
template <typename T>
Tensor<T> pack_ids(const IndexTensor& ids) {
  const int64_t n = ids.numel();
  const int64_t bytes = n * static_cast<int64_t>(sizeof(int32_t));
  const int64_t size = static_cast<int64_t>(sizeof(T));
  Tensor<T> t = Tensor<T>::empty({(bytes + size - 1) / size});
  if (n > 0) std::memcpy(t.data(), ids.data.data(), static_cast<size_t>(bytes));
  return t;
}

template <typename T>
const int32_t* unpack_ids(const Tensor<T>& packed) {
  return reinterpret_cast<const int32_t*>(packed.data());
}

}  // namespace

// embedding: out[i, :] = W[ids[i], :] for every position i of ids (flattened), W [V, C].
// Backward, G = dL/dout [n, C]:
//   in the forward pass this was out_ic = W_{ids_i, c}, so ∂out_ic/∂W_vc = [ids_i = v] and now
//   we have dW_v += Σ_{i: ids_i = v} G_i — a scatter-add: a repeated id accumulates every row it
//   fed. It runs serially, in i order, so repeated ids sum the same way on every run.
template <typename T>
Var<T> embedding(const Var<T>& weight, const IndexTensor& ids) {
  QKV_CHECK(weight.dim() == 2, "embedding: weight must be [V, C], got {}", weight.shape());
  QKV_CHECK(ids.shape.nd < kMaxDims && ids.shape.numel() == ids.numel(),
            "embedding: ids of shape {} ({} values) do not give an output of at most {} dimensions",
            ids.shape, ids.numel(), kMaxDims);
  const int64_t V = weight.size(0), C = weight.size(1), n = ids.numel();
  for (int64_t i = 0; i < n; ++i)
    QKV_CHECK(ids[i] >= 0 && ids[i] < V, "embedding: id {} is out of range for a vocabulary of {}",
              ids[i], V);
  Shape so = ids.shape;
  so.d[static_cast<size_t>(so.nd++)] = C;
  Tensor<T> y = Tensor<T>::empty(so);
  const T* W = weight.value().data();
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(y.data() + i * C, W + ids[i] * C, static_cast<size_t>(C) * sizeof(T));
  Var<T> out = make_result<T>(std::move(y), {&weight}, "embedding", [](Node<T>& o) {
    Tensor<T>* dw = o.input_grad(0);
    if (!dw) return;
    const int64_t n = static_cast<int64_t>(o.args[0]), C = dw->size(1);
    const int32_t* id = unpack_ids(o.saved[0]);
    auto G = o.grad.mat(n, C);
    auto dW = dw->mat();
    for (int64_t i = 0; i < n; ++i) dW.row(id[i]) += G.row(i);
  });
  if (records(out)) {
    out.node()->saved[0] = pack_ids<T>(ids);
    out.node()->args[0] = static_cast<double>(n);
  }
  return out;
}

// Inverted dropout: m_i = [u_i ≥ p] / (1 − p) with u_i ~ U[0, 1) drawn from rng in element order
// (so the mask is a function of the rng state), y = x ⊙ m. Kept elements are scaled by 1/(1 − p)
// so the expectation of y is x and evaluation needs no rescaling.
// Backward: in the forward pass this was y_i = x_i m_i, so now we have dx_i += g_i m_i
// (m is saved; dropped elements pass no gradient).
template <typename T>
Var<T> dropout(const Var<T>& x, double p, bool training, Rng& rng) {
  QKV_CHECK(p >= 0 && p < 1, "dropout: p must be in [0, 1), got {}", p);
  if (!training || p == 0) return x;
  const T scale = static_cast<T>(1 / (1 - p));
  Tensor<T> m = Tensor<T>::empty(x.shape());
  for (T& v : m) v = rng.uniform() < p ? T(0) : scale;
  Tensor<T> y = Tensor<T>::empty(x.shape());
  y.vec().array() = x.value().vec().array() * m.vec().array();
  Var<T> out = make_result<T>(std::move(y), {&x}, "dropout", [](Node<T>& o) {
    if (Tensor<T>* dx = o.input_grad(0))
      dx->vec().array() += o.grad.vec().array() * o.saved[0].vec().array();
  });
  if (records(out)) out.node()->saved[0] = std::move(m);
  return out;
}

template Var<float> embedding(const Var<float>&, const IndexTensor&);
template Var<double> embedding(const Var<double>&, const IndexTensor&);
template Var<float> dropout(const Var<float>&, double, bool, Rng&);
template Var<double> dropout(const Var<double>&, double, bool, Rng&);

}  // namespace qkv
