// Scaled dot-product attention: the fused op with its hand-written backward, and the same
// attention composed from primitive ops (the reference the fused op is tested against).
//
// Dimension legend: B batch, H heads, T query positions, S key positions, d head size (Q and K),
// dv value size. Q [B, H, T, d], K [B, H, S, d], V [B, H, S, dv], P [B, H, T, S], O [B, H, T, dv].
// Every (b, h) pair is an independent T×S problem: the loops below run over bh = b·H + h, and each
// iteration owns the slices of its outputs (O, P, dQ, dK, dV), so OpenMP gives the same bits on
// every run whatever the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "autograd/gemm_kernel.h"
#include "autograd/kernels.h"
#include "autograd/ops.h"

namespace qkv {
namespace {

struct AttnDims {
  int64_t B, H, T, S, d, dv;
};

/// Checks Q, K, V against [B, H, T, d], [B, H, S, d], [B, H, S, dv]; `op` names the caller.
AttnDims check_shapes(const char* op, const Shape& q, const Shape& k, const Shape& v) {
  QKV_CHECK(q.dim() == 4, "{}: Q must have shape [B, H, T, d], got {}", op, q);
  QKV_CHECK(k.dim() == 4, "{}: K must have shape [B, H, S, d], got {}", op, k);
  QKV_CHECK(v.dim() == 4, "{}: V must have shape [B, H, S, dv], got {}", op, v);
  QKV_CHECK(q[0] == k[0] && q[1] == k[1], "{}: Q {} and K {} differ in batch or heads [B, H]", op,
            q, k);
  QKV_CHECK(k[0] == v[0] && k[1] == v[1], "{}: K {} and V {} differ in batch or heads [B, H]", op,
            k, v);
  QKV_CHECK(q[3] == k[3], "{}: Q {} and K {} differ in head size d ({} vs {})", op, q, k, q[3],
            k[3]);
  QKV_CHECK(k[2] == v[2], "{}: K {} and V {} differ in key count S ({} vs {})", op, k, v, k[2],
            v[2]);
  QKV_CHECK(q[3] > 0, "{}: head size d must be positive, got Q {}", op, q);
  return {q[0], q[1], q[2], k[2], q[3], v[3]};
}

/// A validated AttnMask, read in place: which keys of row (b, h, t) are visible.
struct MaskView {
  bool causal = false;
  const uint8_t* key_padding = nullptr;  // [B, S] or null
  const uint8_t* allowed = nullptr;      // broadcast to [B, H, T, S] by the strides below, or null
  int64_t ab = 0, ah = 0, at = 0, as = 0;
  int64_t S = 0;

  bool any() const { return causal || key_padding || allowed; }
  bool visible(int64_t b, int64_t h, int64_t t, int64_t s) const {
    return !(causal && s > t) && !(key_padding && !key_padding[b * S + s]) &&
           !(allowed && !allowed[b * ab + h * ah + t * at + s * as]);
  }
  /// Sets the hidden scores of row (b, h, t) to −inf.
  template <typename T>
  void apply(int64_t b, int64_t h, int64_t t, T* row) const {
    const T ninf = -std::numeric_limits<T>::infinity();
    if (causal)
      for (int64_t s = t + 1; s < S; ++s) row[s] = ninf;
    if (key_padding) {
      const uint8_t* kp = key_padding + b * S;
      for (int64_t s = 0; s < S; ++s)
        if (!kp[s]) row[s] = ninf;
    }
    if (allowed) {
      const uint8_t* al = allowed + b * ab + h * ah + t * at;
      for (int64_t s = 0; s < S; ++s)
        if (!al[s * as]) row[s] = ninf;
    }
  }
};

/// Checks the mask's parts against the problem's sizes. `allowed` broadcasts as NumPy does
/// (aligned at the right, size-1 axes stretch): [T, S], [B, 1, T, S], [1, 1, T, S], [B, H, T, S]…
MaskView view_mask(const char* op, const AttnMask& mask, const AttnDims& n) {
  MaskView m;
  m.causal = mask.causal;
  m.S = n.S;
  const Shape full{n.B, n.H, n.T, n.S};
  if (!mask.key_padding.empty()) {
    const Shape& s = mask.key_padding.shape;
    QKV_CHECK(s == Shape({n.B, n.S}),
              "{}: key_padding mask has shape {}, expected [B, S] = [{}, {}]", op, s, n.B, n.S);
    QKV_CHECK(mask.key_padding.numel() == s.numel(),
              "{}: key_padding mask holds {} values for its shape {}", op, mask.key_padding.numel(),
              s);
    m.key_padding = mask.key_padding.data.data();
  }
  if (!mask.allowed.empty()) {
    const Shape& s = mask.allowed.shape;
    QKV_CHECK(mask.allowed.numel() == s.numel(),
              "{}: allowed mask holds {} values for its shape {}", op, mask.allowed.numel(), s);
    int64_t strides[4] = {0, 0, 0, 0};
    int64_t stride = 1;
    for (int i = s.dim() - 1, a = 3; i >= 0; --i, --a) {
      QKV_CHECK(s[i] == full[a] || s[i] == 1,
                "{}: allowed mask of shape {} does not broadcast to [B, H, T, S] = {}", op, s,
                full);
      strides[a] = s[i] == 1 ? 0 : stride;
      stride *= s[i];
    }
    m.allowed = mask.allowed.data.data();
    m.ab = strides[0];
    m.ah = strides[1];
    m.at = strides[2];
    m.as = strides[3];
  }
  return m;
}

/// Below this many multiply-adds per call a parallel region costs more than it saves.
constexpr int64_t kParallelWork = 1 << 15;

/// Where the (b, h) block of an operand with `rows` rows of `cols` per head lies, and how far apart
/// its rows are: heads split out, [B, H, rows, cols] (block bh·rows·cols, rows cols apart), or
/// heads side by side in the features, [B, rows, H·cols] (block b·rows·H·cols + h·cols, rows
/// H·cols apart) as the projections x·W_Qᵀ give them.
struct HeadLayout {
  int64_t H;
  bool merged;
  int64_t offset(int64_t bh, int64_t rows, int64_t cols) const {
    return merged ? (bh / H * rows * H + bh % H) * cols : bh * rows * cols;
  }
  int64_t stride(int64_t cols) const { return merged ? H * cols : cols; }
};

template <typename T>
using HeadMap = Eigen::Map<Mat<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using ConstHeadMap = Eigen::Map<const Mat<T>, 0, Eigen::OuterStride<>>;

/// The (b, h) block of a buffer in layout L: `rows` × `cols`.
template <typename T>
ConstHeadMap<T> head(const T* x, const HeadLayout& L, int64_t bh, int64_t rows, int64_t cols) {
  return ConstHeadMap<T>(x + L.offset(bh, rows, cols), rows, cols,
                         Eigen::OuterStride<>(L.stride(cols)));
}
template <typename T>
HeadMap<T> head(T* x, const HeadLayout& L, int64_t bh, int64_t rows, int64_t cols) {
  return HeadMap<T>(x + L.offset(bh, rows, cols), rows, cols, Eigen::OuterStride<>(L.stride(cols)));
}

/// The problem's sizes from Q, K, V in layout L (checked), named by `op`.
AttnDims attention_dims(const char* op, const HeadLayout& L, const Shape& q, const Shape& k,
                        const Shape& v) {
  if (!L.merged) return check_shapes(op, q, k, v);
  QKV_CHECK(q.dim() == 3, "{}: Q must have shape [B, T, H·d], got {}", op, q);
  QKV_CHECK(k.dim() == 3, "{}: K must have shape [B, S, H·d], got {}", op, k);
  QKV_CHECK(v.dim() == 3, "{}: V must have shape [B, S, H·dv], got {}", op, v);
  QKV_CHECK(L.H > 0 && q[2] % L.H == 0 && k[2] % L.H == 0 && v[2] % L.H == 0,
            "{}: {} heads do not divide the features of Q {}, K {} and V {}", op, L.H, q, k, v);
  return check_shapes(op, {q[0], L.H, q[1], q[2] / L.H}, {k[0], L.H, k[1], k[2] / L.H},
                      {v[0], L.H, v[1], v[2] / L.H});
}

/// Heads of at most this many keys and features run their products on the packing-free float
/// kernel of gemm_kernel.h rather than Eigen's GEMM, which hands each (b, h) block's small
/// product to the BLAS and its packing (`qkv bench --config tiny`: T = S = 16, d = 32).
constexpr int64_t kSmallHead = 64;

template <typename T>
bool small_heads(const AttnDims& n) {
  return std::is_same_v<T, float> && n.S <= kSmallHead && n.d <= kSmallHead && n.dv <= kSmallHead;
}

/// C = A·B or C += A·B for head blocks, A(m, k) = a[m·a_m + k·a_k], B and C row-major with their
/// row strides: the small kernel when `small` (float only), else the same product through Eigen.
template <typename T>
void head_gemm(bool small, int64_t M, int64_t N, int64_t K, const T* a, int64_t a_m, int64_t a_k,
               const T* b, int64_t ldb, T* c, int64_t ldc, bool accumulate) {
  if (gemm::small_gemm_if(small, M, N, K, a, a_m, a_k, b, ldb, c, ldc, nullptr,
                          accumulate ? gemm::Init::kAccumulate : gemm::Init::kZero))
    return;
  const ConstHeadMap<T> B(b, K, N, Eigen::OuterStride<>(ldb));
  HeadMap<T> C(c, M, N, Eigen::OuterStride<>(ldc));
  auto product = [&](const auto& A) {
    if (accumulate)
      C.noalias() += A * B;
    else
      C.noalias() = A * B;
  };
  // A is a row-major block (a_k = 1) or the transpose of one (a_m = 1), as Eigen expressions.
  if (a_k == 1)
    product(ConstHeadMap<T>(a, M, K, Eigen::OuterStride<>(a_m)));
  else
    product(ConstHeadMap<T>(a, K, M, Eigen::OuterStride<>(a_k)).transpose());
}

/// C [rows of A, rows of X] = α · A Xᵀ for head blocks. The small kernel reads B row by row, so it
/// gets (α·X)ᵀ copied into `xt` ([cols, rows of X]); Eigen takes the transpose as it is.
template <typename T>
void times_transposed(bool small, const ConstHeadMap<T>& A, const ConstHeadMap<T>& X, T alpha,
                      RowsMap<T> C, T* xt) {
  if (small) {
    RowsMap<T>(xt, X.cols(), X.rows()).noalias() = alpha * X.transpose();
    head_gemm(true, A.rows(), X.rows(), A.cols(), A.data(), A.outerStride(), int64_t{1}, xt,
              X.rows(), C.data(), C.cols(), false);
  } else {
    C.noalias() = alpha * (A * X.transpose());
  }
}

/// P's (b, h) block: S = c·Q Kᵀ, the hidden entries −inf, softmax by rows (`kt`: room for Kᵀ).
/// The forward and the backward's recomputation both call this, so they get the same bits.
template <typename T>
void probabilities(bool small, const ConstHeadMap<T>& Qi, const ConstHeadMap<T>& Ki, T c,
                   const MaskView& m, int64_t bh, int64_t H, RowsMap<T> Pi, T* kt) {
  times_transposed(small, Qi, Ki, c, Pi, kt);
  if (m.any())
    for (int64_t t = 0; t < Pi.rows(); ++t) m.apply(bh / H, bh % H, t, Pi.data() + t * Pi.cols());
  softmax_rows(Pi.data(), Pi.data(), Pi.rows(), Pi.cols());
}

/// The causal flag and key padding of the forward of `nd` (args[3], saved[1]), for recomputing P;
/// a forward with an `allowed` mask kept P itself.
template <typename T>
AttnMask saved_mask(const Node<T>& nd) {
  AttnMask mask;
  mask.causal = nd.args[3] != 0;
  if (const Tensor<T>& kp = nd.saved[1]; kp.defined()) {
    mask.key_padding = BoolTensor(kp.shape());
    for (int64_t i = 0; i < kp.numel(); ++i) mask.key_padding[i] = kp[i] != T(0);
  }
  return mask;
}

// Forward, one (b, h), rows are positions:
//   S = Q Kᵀ / √d                     [T, S]   (written straight into P's slice)
//   S[t, s] = −inf where key s is hidden from query t (causal, key padding, allowed)
//   P = softmax_rows(S)               [T, S]   (an all −inf row gives zeros: its output is 0)
//   O = P V                           [T, dv]
// Backward, given dO = dL/dO (Q, K, V are the inputs' values; P as below):
//   dV = Pᵀ dO                        [S, dv]
//   dP = dO Vᵀ                        [T, S]
//   dS = P ⊙ (dP − rowsum(dP ⊙ P))    [T, S]   ← the softmax rule, row by row, O(S) per row
//   dQ = dS K / √d                    [T, d]
//   dK = dSᵀ Q / √d                   [S, d]
// Hidden entries have P = 0, so dS = 0 there: the −inf never reaches the arithmetic, and a fully
// masked row (P row all 0) passes exactly zero gradient to Q, K and V.
// The (b, h) blocks of Q, K, V, O and their gradients are read and written where the layout puts
// them (HeadLayout), so the merged layout needs no copies to split or merge the heads; P is always
// [B, H, T, S].
// P is kept for backward when the caller asks for it (P_out), when an `allowed` mask is given
// (which may itself be as large as P), or when P is no larger than O (S ≤ dv: few keys, as in
// short sequences, where holding P costs no more memory than the output already held, and
// recomputing it would cost a T×S×d product and a softmax per block). Otherwise the backward
// recomputes each (b, h) block of P, with the forward's own code on the same Q, K and mask, into a
// scratch block: the same bits, and no [B, H, T, S] tensor held from forward to backward. The mask
// is kept for that: causal in args[3], the key padding as a 0/1 tensor in saved[1].
// args: [0] 1/√d, [1] heads, [2] 1 when the heads are merged, [3] 1 when causal.
template <typename T>
Var<T> attention_impl(const char* op, const HeadLayout& L, const Var<T>& Q, const Var<T>& K,
                      const Var<T>& V, const AttnMask& mask, Tensor<T>* P_out) {
  const AttnDims n = attention_dims(op, L, Q.shape(), K.shape(), V.shape());
  const MaskView m = view_mask(op, mask, n);
  const double scale = 1.0 / std::sqrt(static_cast<double>(n.d));
  Shape os = Q.shape();
  os[-1] = L.merged ? n.H * n.dv : n.dv;
  Tensor<T> O = Tensor<T>::empty(os);
  const bool keep_P = P_out || !mask.allowed.empty() || n.S <= n.dv;  // else block by block
  Tensor<T> P = keep_P ? Tensor<T>::empty({n.B, n.H, n.T, n.S}) : Tensor<T>();
  const T *q = Q.value().data(), *k = K.value().data(), *v = V.value().data();
  T *p = P.data(), *o = O.data();
  const T c = static_cast<T>(scale);
  const bool parallel = n.B * n.H * n.T * n.S * (n.d + n.dv) >= kParallelWork;
  const bool small = small_heads<T>(n);
  parallel_for(n.B * n.H, parallel, [&](int64_t bh) {
    T* work = scratch<T>(line_up<T>(n.T * n.S) + n.d * n.S);  // [P block if not kept | c·Kᵀ]
    const ConstHeadMap<T> Qi = head(q, L, bh, n.T, n.d), Ki = head(k, L, bh, n.S, n.d);
    const ConstHeadMap<T> Vi = head(v, L, bh, n.S, n.dv);
    RowsMap<T> Pi(keep_P ? p + bh * n.T * n.S : work, n.T, n.S);
    HeadMap<T> Oi = head(o, L, bh, n.T, n.dv);
    probabilities(small, Qi, Ki, c, m, bh, n.H, Pi, work + line_up<T>(n.T * n.S));
    head_gemm(small, n.T, n.dv, n.S, Pi.data(), n.S, int64_t{1}, Vi.data(), Vi.outerStride(),
              Oi.data(), Oi.outerStride(), false);
  });
  Var<T> out = make_result<T>(std::move(O), {&Q, &K, &V}, op, [](Node<T>& nd) {
    // Each (b, h) block of dQ, dK, dV is written by one iteration below, so a gradient no other
    // op has reached yet is assigned, not zero-filled and accumulated; not when two of Q, K, V
    // are one node (self-attention on one input), whose blocks then receive several terms.
    const bool distinct = nd.inputs[0] != nd.inputs[1] && nd.inputs[0] != nd.inputs[2] &&
                          nd.inputs[1] != nd.inputs[2];
    bool fq = false, fk = false, fv = false;
    Tensor<T>* dQ = distinct ? nd.input_grad_to_write(0, &fq) : nd.input_grad(0);
    Tensor<T>* dK = distinct ? nd.input_grad_to_write(1, &fk) : nd.input_grad(1);
    Tensor<T>* dV = distinct ? nd.input_grad_to_write(2, &fv) : nd.input_grad(2);
    if (!dQ && !dK && !dV) return;
    const Tensor<T>& P = nd.saved[0];  // undefined: recomputed block by block
    const HeadLayout L{static_cast<int64_t>(nd.args[1]), nd.args[2] != 0};
    const AttnDims n = attention_dims(nd.op, L, nd.input_value(0).shape(),
                                      nd.input_value(1).shape(), nd.input_value(2).shape());
    const AttnMask mask = P.defined() ? AttnMask() : saved_mask(nd);
    const MaskView m = view_mask(nd.op, mask, n);
    const int64_t BH = n.B * n.H, T_ = n.T, S = n.S, d = n.d, dv = n.dv;
    const T c = static_cast<T>(nd.args[0]);
    const T *q = nd.input_value(0).data(), *k = nd.input_value(1).data(),
            *v = nd.input_value(2).data(), *p = P.data(), *go = nd.grad.data();
    T* gq = dQ ? dQ->data() : nullptr;
    T* gk = dK ? dK->data() : nullptr;
    T* gv = dV ? dV->data() : nullptr;
    const bool parallel = BH * T_ * S * (d + dv) >= kParallelWork;
    const bool small = small_heads<T>(n);
    const int64_t ld_o = L.stride(dv), ld_k = L.stride(d);  // row strides of head blocks
    parallel_for(BH, parallel, [&](int64_t bh) {
      // [P block if recomputed | dS | c·Kᵀ, then Vᵀ]
      const int64_t at_dS = line_up<T>(T_ * S), at_t = at_dS + line_up<T>(T_ * S);
      T* work = scratch<T>(at_t + std::max(d, dv) * S);
      const ConstHeadMap<T> Qi = head(q, L, bh, T_, d), Ki = head(k, L, bh, S, d);
      if (!p) probabilities(small, Qi, Ki, c, m, bh, n.H, RowsMap<T>(work, T_, S), work + at_t);
      ConstRowsMap<T> Pi(p ? p + bh * T_ * S : work, T_, S);
      const ConstHeadMap<T> dOi = head(go, L, bh, T_, dv);
      if (gv)  // dV += Pᵀ dO: A(s, t) = P[t, s]
        head_gemm(small, S, dv, T_, Pi.data(), int64_t{1}, S, dOi.data(), ld_o,
                  gv + L.offset(bh, S, dv), ld_o, !fv);
      if (!gq && !gk) return;
      const ConstHeadMap<T> Vi = head(v, L, bh, S, dv);
      RowsMap<T> dS(work + at_dS, T_, S);
      times_transposed(small, dOi, Vi, T(1), dS, work + at_t);  // dP = dO Vᵀ
      for (int64_t t = 0; t < T_; ++t) {  // c·dS = c·P ⊙ (dP − ⟨dP, P⟩) per row
        const T r = dS.row(t).dot(Pi.row(t));
        dS.row(t).array() = c * Pi.row(t).array() * (dS.row(t).array() - r);
      }
      if (gq)  // dQ += (c·dS) K
        head_gemm(small, T_, d, S, dS.data(), S, int64_t{1}, Ki.data(), ld_k,
                  gq + L.offset(bh, T_, d), ld_k, !fq);
      if (gk)  // dK += (c·dS)ᵀ Q: A(s, t) = dS[t, s]
        head_gemm(small, S, d, T_, dS.data(), int64_t{1}, S, Qi.data(), ld_k,
                  gk + L.offset(bh, S, d), ld_k, !fk);
    });
  });
  if (records(out)) {
    Node<T>& nd = *out.node();
    nd.saved[0] = P;
    if (!keep_P && !mask.key_padding.empty()) nd.saved[1] = as_values<T>(mask.key_padding);
    nd.args[0] = scale;
    nd.args[1] = static_cast<double>(L.H);
    nd.args[2] = L.merged ? 1 : 0;
    nd.args[3] = mask.causal ? 1 : 0;
  }
  // P_out shares P's storage with the saved tensor: read it, do not write it before backward.
  if (P_out) *P_out = std::move(P);
  return out;
}

}  // namespace

template <typename T>
Var<T> scaled_dot_product_attention(const Var<T>& Q, const Var<T>& K, const Var<T>& V,
                                    const AttnMask& mask, Tensor<T>* P_out) {
  const HeadLayout split{Q.dim() == 4 ? Q.size(1) : 1, false};
  return attention_impl("scaled_dot_product_attention", split, Q, K, V, mask, P_out);
}

template <typename T>
Var<T> multi_head_attention(const Var<T>& Q, const Var<T>& K, const Var<T>& V, int64_t n_heads,
                            const AttnMask& mask, Tensor<T>* P_out) {
  return attention_impl("multi_head_attention", HeadLayout{n_heads, true}, Q, K, V, mask, P_out);
}

// The same attention from primitives, each with its own backward, for reference:
//   P = softmax(masked_fill(matmul(Q, Kᵀ) · 1/√d, hidden, −inf));   O = matmul(P, V)
// `hidden` is the mask expanded to [B, H, T, S] (1 = hidden). softmax gives an all −inf row
// zeros, so fully masked rows behave as in the fused op.
template <typename T>
Var<T> attention_composed(const Var<T>& Q, const Var<T>& K, const Var<T>& V, const AttnMask& mask) {
  static constexpr const char* kOp = "attention_composed";
  const AttnDims n = check_shapes(kOp, Q.shape(), K.shape(), V.shape());
  const MaskView m = view_mask(kOp, mask, n);
  Var<T> S = mul_scalar(matmul(Q, transpose(K, 2, 3)), 1.0 / std::sqrt(static_cast<double>(n.d)));
  if (m.any()) {
    BoolTensor hidden({n.B, n.H, n.T, n.S});
    int64_t i = 0;
    for (int64_t b = 0; b < n.B; ++b)
      for (int64_t h = 0; h < n.H; ++h)
        for (int64_t t = 0; t < n.T; ++t)
          for (int64_t s = 0; s < n.S; ++s) hidden[i++] = m.visible(b, h, t, s) ? 0 : 1;
    S = masked_fill(S, hidden, -std::numeric_limits<double>::infinity());
  }
  return matmul(softmax(S), V);
}

template Var<float> scaled_dot_product_attention(const Var<float>&, const Var<float>&,
                                                 const Var<float>&, const AttnMask&,
                                                 Tensor<float>*);
template Var<double> scaled_dot_product_attention(const Var<double>&, const Var<double>&,
                                                  const Var<double>&, const AttnMask&,
                                                  Tensor<double>*);

template Var<float> multi_head_attention(const Var<float>&, const Var<float>&, const Var<float>&,
                                         int64_t, const AttnMask&, Tensor<float>*);
template Var<double> multi_head_attention(const Var<double>&, const Var<double>&,
                                          const Var<double>&, int64_t, const AttnMask&,
                                          Tensor<double>*);

template Var<float> attention_composed(const Var<float>&, const Var<float>&, const Var<float>&,
                                       const AttnMask&);
template Var<double> attention_composed(const Var<double>&, const Var<double>&, const Var<double>&,
                                        const AttnMask&);

}  // namespace qkv
