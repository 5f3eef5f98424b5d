// Every differentiable op of qkv, declared in one place: the table of primitives.
//
// Each op is a free function templated on the scalar type (instantiated for float and double in
// its .cpp). It checks shapes (a mismatch throws qkv::Error naming the op and both shapes),
// computes its value with Eigen, and records a backward function beside it, with the derivation
// in a comment. Dimension legend: B batch, H heads, T query positions, S key positions,
// d head size, C channels (d_model), V vocabulary / classes, N rows.
#pragma once

#include <vector>

#include "autograd/var.h"
#include "core/index_tensor.h"
#include "core/rng.h"

namespace qkv {

// ---- elementwise (ops_elementwise.cpp) -------------------------------------------------------
// Binary ops broadcast as NumPy does (shapes aligned at the right, size-1 axes stretch); the
// backward sums the gradient back to each input's shape.
template <typename T>
Var<T> add(const Var<T>& a, const Var<T>& b);
template <typename T>
Var<T> sub(const Var<T>& a, const Var<T>& b);
template <typename T>
Var<T> mul(const Var<T>& a, const Var<T>& b);
template <typename T>
Var<T> div(const Var<T>& a, const Var<T>& b);
template <typename T>
Var<T> neg(const Var<T>& a);
template <typename T>
Var<T> add_scalar(const Var<T>& a, double s);  // a + s
template <typename T>
Var<T> mul_scalar(const Var<T>& a, double s);  // a · s
template <typename T>
Var<T> pow_scalar(const Var<T>& a, double p);  // a^p
template <typename T>
Var<T> exp(const Var<T>& a);
template <typename T>
Var<T> log(const Var<T>& a);
template <typename T>
Var<T> sqrt(const Var<T>& a);
template <typename T>
Var<T> tanh(const Var<T>& a);
template <typename T>
Var<T> relu(const Var<T>& a);
enum class GeluForm { kErf, kTanh };
/// gelu(x) = x·Φ(x) (erf form), or PyTorch's approximate='tanh' form.
template <typename T>
Var<T> gelu(const Var<T>& a, GeluForm form = GeluForm::kErf);

/// a with `value` where mask is 1 (mask broadcasts to a's shape); value may be ±inf.
template <typename T>
Var<T> masked_fill(const Var<T>& a, const BoolTensor& mask, double value);
/// cond ? a : b elementwise, broadcasting all three.
template <typename T>
Var<T> where(const BoolTensor& cond, const Var<T>& a, const Var<T>& b);

template <typename T>
Var<T> operator+(const Var<T>& a, const Var<T>& b) {
  return add(a, b);
}
template <typename T>
Var<T> operator-(const Var<T>& a, const Var<T>& b) {
  return sub(a, b);
}
template <typename T>
Var<T> operator*(const Var<T>& a, const Var<T>& b) {
  return mul(a, b);
}
template <typename T>
Var<T> operator/(const Var<T>& a, const Var<T>& b) {
  return div(a, b);
}
template <typename T>
Var<T> operator-(const Var<T>& a) {
  return neg(a);
}
template <typename T>
Var<T> operator+(const Var<T>& a, double s) {
  return add_scalar(a, s);
}
template <typename T>
Var<T> operator*(const Var<T>& a, double s) {
  return mul_scalar(a, s);
}
template <typename T>
Var<T> operator*(double s, const Var<T>& a) {
  return mul_scalar(a, s);
}

// ---- shape (ops_shape.cpp) -------------------------------------------------------------------
/// Same elements, new shape (one entry may be -1: inferred); the value is a view of a's storage.
template <typename T>
Var<T> reshape(const Var<T>& a, std::vector<int64_t> shape);
/// Reorders axes: out.shape[i] = a.shape[axes[i]].
template <typename T>
Var<T> permute(const Var<T>& a, const std::vector<int>& axes);
/// Swaps two axes.
template <typename T>
Var<T> transpose(const Var<T>& a, int axis0, int axis1);
/// Elements [start, end) along `axis`.
template <typename T>
Var<T> slice(const Var<T>& a, int axis, int64_t start, int64_t end);
/// Joins along `axis`; all other axes must agree.
template <typename T>
Var<T> concat(const std::vector<Var<T>>& parts, int axis);
/// Splits into `n` equal parts along `axis` (for heads).
template <typename T>
std::vector<Var<T>> split(const Var<T>& a, int axis, int n);
/// out[b, :] = x[b, positions[b], :] for x [B, T, C] and positions [B]: the read-out rows.
template <typename T>
Var<T> select_positions(const Var<T>& x, const IndexTensor& positions);

// ---- reductions (ops_reduce.cpp) -------------------------------------------------------------
/// Sum of every element: a scalar.
template <typename T>
Var<T> sum(const Var<T>& a);
/// Sum over `axes` (negative counts from the end); keepdim keeps them as size 1.
template <typename T>
Var<T> sum(const Var<T>& a, const std::vector<int>& axes, bool keepdim = false);
template <typename T>
Var<T> mean(const Var<T>& a);
template <typename T>
Var<T> mean(const Var<T>& a, const std::vector<int>& axes, bool keepdim = false);

// ---- products (ops_matmul.cpp) ---------------------------------------------------------------
/// a [..., N, K] · b [..., K, M] → [..., N, M]; 2-D, or batched with the leading (batch) axes
/// broadcast as torch.matmul does. A 2-D b applies to every matrix of a batched a.
template <typename T>
Var<T> matmul(const Var<T>& a, const Var<T>& b);
/// y = x·Wᵀ + b over the last axis: x [..., in], W [out, in], b [out] (b may be undefined).
template <typename T>
Var<T> linear(const Var<T>& x, const Var<T>& W, const Var<T>& b);

// ---- softmax (ops_softmax.cpp) ---------------------------------------------------
/// Softmax over the last axis; stable (rows of ±1000 give no NaN). A row that is all -inf gives
/// zeros.
template <typename T>
Var<T> softmax(const Var<T>& a);
/// log-softmax over the last axis, stable.
template <typename T>
Var<T> log_softmax(const Var<T>& a);

// ---- normalisation (ops_norm.cpp) ------------------------------------------------------------
/// LayerNorm over the last axis, biased variance, fused backward: x [..., C], weight/bias [C].
template <typename T>
Var<T> layer_norm(const Var<T>& x, const Var<T>& weight, const Var<T>& bias, double eps = 1e-5);

// ---- lookup and noise (ops_embedding.cpp) ----------------------------------------------------
/// out[..., :] = weight[ids[...], :]; weight [V, C]. Backward scatter-adds (repeated ids
/// accumulate). An id outside [0, V) throws.
template <typename T>
Var<T> embedding(const Var<T>& weight, const IndexTensor& ids);
/// Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1-p),
/// drawing from rng; the identity when !training or p == 0.
template <typename T>
Var<T> dropout(const Var<T>& x, double p, bool training, Rng& rng);

// ---- losses (ops_loss.cpp) -------------------------------------------------------------------
/// Mean cross-entropy of logits [N, V] against targets [N] (ids in [0, V), -1 = ignored), fused
/// with a stable log-softmax. With every target ignored the loss is 0 (and so is its gradient).
template <typename T>
Var<T> cross_entropy(const Var<T>& logits, const IndexTensor& targets);

// ---- attention (attention.cpp) ---------------------------------------------------------------
/// Which keys each query may see. Every present part must allow a key for it to be visible.
struct AttnMask {
  bool causal = false;     // query i sees keys j <= i
  BoolTensor key_padding;  // [B, S], 1 = a real token (visible); empty = none
  BoolTensor allowed;      // broadcastable to [B, H, T, S] (e.g. [T, S]), 1 = visible; empty = none
};

/// Attention(Q, K, V) = softmax(Q·Kᵀ/√d + mask)·V with a fused, hand-written backward.
/// Q [B, H, T, d], K [B, H, S, d], V [B, H, S, dv] → [B, H, T, dv]. A query row whose keys are all
/// masked outputs zeros and passes zero gradient. When P is given it receives the attention
/// probabilities [B, H, T, S]. Parallel over B·H with OpenMP; the same result on every run.
template <typename T>
Var<T> scaled_dot_product_attention(const Var<T>& Q, const Var<T>& K, const Var<T>& V,
                                    const AttnMask& mask = {}, Tensor<T>* P = nullptr);

/// The same attention with the heads side by side in the features, as the projections give them:
/// Q [B, T, H·d], K [B, S, H·d], V [B, S, H·dv] → O [B, T, H·dv], head h in columns h·d … h·d+d−1
/// (h·dv … for V and O). Equal to splitting the heads ([B, H, T, d]), scaled_dot_product_attention
/// and merging them back, without the copies of either. P as above, [B, H, T, S].
template <typename T>
Var<T> multi_head_attention(const Var<T>& Q, const Var<T>& K, const Var<T>& V, int64_t n_heads,
                            const AttnMask& mask = {}, Tensor<T>* P = nullptr);

/// The same attention composed from primitive ops (matmul, masked_fill, softmax): the reference
/// the fused op is tested against, and what `qkv graph` can draw op by op.
template <typename T>
Var<T> attention_composed(const Var<T>& Q, const Var<T>& K, const Var<T>& V,
                          const AttnMask& mask = {});

}  // namespace qkv
