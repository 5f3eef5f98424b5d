// The layers of a transformer, each a Module<T> over the fused ops of autograd/ops.h.
//
// Dimension legend: B batch, T query positions, S key (memory) positions, C = d_model channels,
// H heads, d = C / H head size, F = d_ff, V vocabulary.
// Initialisation: building a layer draws no random numbers. Linear, Embedding and
// LearnedPositional start with every weight and bias ZERO; LayerNorm starts at weight 1, bias 0.
// Model<T> then initialises all of them (GPT-2 scheme) in canonical name order, so a layer's
// values never depend on the order layers were built in. A model of your own made from these
// layers must draw its own initial values (docs/model.md, "Initialisation").
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "autograd/ops.h"
#include "core/index_tensor.h"
#include "core/rng.h"
#include "nn/kv_cache.h"
#include "nn/module.h"

namespace qkv {

enum class Activation { kGelu, kRelu, kGeluTanh };
/// "gelu" | "relu" | "gelu_tanh"; anything else throws qkv::Error naming it.
Activation parse_activation(const std::string& name);

enum class Norm { kPre, kPost, kNone };
/// "pre" | "post" | "none"; anything else throws qkv::Error naming it.
Norm parse_norm(const std::string& name);

/// y = x·Wᵀ + b: x [..., in] → [..., out]. weight [out, in], bias [out]; both start at zero.
template <typename T>
class Linear : public Module<T> {
 public:
  Linear(int64_t in_features, int64_t out_features, bool with_bias = true);
  Var<T> forward(const Var<T>& x) const;

  int64_t in_features, out_features;
  Var<T> weight;  // [out, in]
  Var<T> bias;    // [out]; undefined when built without bias
};

/// out[..., :] = weight[ids[...], :]. weight [num, dim], starts at zero.
template <typename T>
class Embedding : public Module<T> {
 public:
  Embedding(int64_t num_embeddings, int64_t dim);
  Var<T> forward(const IndexTensor& ids) const;

  Var<T> weight;  // [num, dim]
};

/// x + weight[offset..offset+T): learned positions. x [B, T, C], weight [max_len, C] (starts at
/// zero); offset + T ≤ max_len. A cached decoding step's positions start at offset > 0.
template <typename T>
class LearnedPositional : public Module<T> {
 public:
  LearnedPositional(int64_t max_len, int64_t dim);
  Var<T> forward(const Var<T>& x, int64_t offset = 0) const;

  Var<T> weight;  // [max_len, C]
};

/// x + PE[offset..offset+T): fixed sinusoidal positions (not a parameter). x [B, T, C];
/// offset + T ≤ max_len.
///   PE[p, 2i] = sin(p / 10000^(2i/C)),  PE[p, 2i+1] = cos(p / 10000^(2i/C))
template <typename T>
class SinusoidalPositional : public Module<T> {
 public:
  SinusoidalPositional(int64_t max_len, int64_t dim);
  Var<T> forward(const Var<T>& x, int64_t offset = 0) const;
  /// The table [max_len, C], computed in double and rounded to T.
  const Tensor<T>& table() const { return table_; }

 private:
  Tensor<T> table_;
};

/// LayerNorm over the last axis (biased variance, as PyTorch). weight [C] = 1, bias [C] = 0 first.
template <typename T>
class LayerNorm : public Module<T> {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5);
  Var<T> forward(const Var<T>& x) const;

  double eps;
  Var<T> weight;  // [C]
  Var<T> bias;    // [C]
};

/// Inverted dropout with probability p, drawing from `rng` (owned by the model, so its state can
/// be saved for an exact resume); the identity in eval mode or when p = 0.
template <typename T>
class Dropout : public Module<T> {
 public:
  Dropout(double p, Rng* rng);
  Var<T> forward(const Var<T>& x) const;

  double p;

 private:
  Rng* rng_;
};

/// fc2(act(fc1(x))): x [..., C] → [..., C] through F hidden units.
template <typename T>
class FeedForward : public Module<T> {
 public:
  FeedForward(int64_t d_model, int64_t d_ff, Activation activation);
  Var<T> forward(const Var<T>& x) const;

  Activation activation;
  Linear<T>* fc1;  // [F, C]
  Linear<T>* fc2;  // [C, F]
};

/// Multi-head attention with W_Q, W_K, W_V, W_O (each Linear C → C with bias):
///   Q = x·W_Qᵀ + b_Q [B, T, C];  K, V from `memory` [B, S, C] (x itself for self-attention)
///   split into H heads of d = C/H;  P = softmax(Q·Kᵀ/√d + mask);  O = P·V;  merge heads
///   out = O·W_Oᵀ + b_O [B, T, C]
/// forward() runs multi_head_attention on the projections as they are (head h in columns
/// h·d … h·d+d−1), so splitting and merging the heads copies nothing.
template <typename T>
class Attention : public Module<T> {
 public:
  Attention(int64_t d_model, int64_t n_heads);
  /// Self-attention when memory is undefined, cross-attention otherwise. mask.key_padding is
  /// [B, S] over memory's positions. With keep_attention, last_attention() then holds P.
  Var<T> forward(const Var<T>& x, const Var<T>& memory, const AttnMask& mask,
                 bool keep_attention = false);
  /// Incremental self-attention (Model::forward_cached; no graph is recorded): x [B, T, C] holds
  /// positions n..n+T−1, whose K, V are written into rows n.. of cache.K, cache.V [B, H, L, d];
  /// then Q attends to the rows `mask` allows (its key_padding and allowed span all L rows).
  /// With keep_attention, last_attention() holds P [B, H, T, n+T].
  Var<T> forward_cached(const Var<T>& x, KVBuffers<T>& cache, int64_t n, const AttnMask& mask,
                        bool keep_attention = false);
  /// K, V [B, H, S, d] of memory [B, S, C]: a cross-attention's keys and values, computed once.
  KVBuffers<T> project_kv(const Var<T>& memory) const;
  /// Cross-attention of x [B, T, C] over keys and values from project_kv().
  Var<T> forward_kv(const Var<T>& x, const KVBuffers<T>& kv, const AttnMask& mask,
                    bool keep_attention = false);
  /// The probabilities P [B, H, T, S] of the last forward that kept them (undefined otherwise).
  const Tensor<T>& last_attention() const { return last_attention_; }
  /// last_attention(), handed over: the module keeps none after (Model::forward, so that its
  /// attention modules hold no map between forwards).
  Tensor<T> take_last_attention() { return std::exchange(last_attention_, Tensor<T>()); }

  int64_t d_model, n_heads;
  Linear<T>* W_Q;
  Linear<T>* W_K;
  Linear<T>* W_V;
  Linear<T>* W_O;

 private:
  Var<T> split_heads(const Var<T>& x) const;  // [B, T, C] → [B, H, T, d]
  void check_queries(const Var<T>& x) const;
  /// W_O(merge_heads(attention(Q, K, V))) for queries x [B, T, C] over the cached K, V
  /// [B, H, L, d]; keeps P's first `keys` columns when keep_attention.
  Var<T> attend(const Var<T>& x, const Var<T>& K, const Var<T>& V, const AttnMask& mask,
                bool keep_attention, int64_t keys);
  Tensor<T> last_attention_;
};

/// The options of a TransformerBlock (one per model config).
struct BlockOptions {
  int64_t d_model = 64;
  int64_t n_heads = 4;
  int64_t d_ff = 256;
  Activation activation = Activation::kGelu;
  Norm norm = Norm::kPre;
  double ln_eps = 1e-5;
  double dropout = 0.0;  // on the attention and feed-forward outputs, before the residual add
  bool cross = false;    // a seq2seq decoder block: adds ln_x and xattn
};

/// One transformer block. Registration (and canonical name) order: ln1, attn, [ln_x, xattn],
/// ln2, ff. With D = dropout:
///   pre-LN:  x = x + D(Attn(LN1(x)));  [x = x + D(XAttn(LN_x(x), memory))];  x = x + D(FF(LN2(x)))
///   post-LN: x = LN1(x + D(Attn(x)));  [x = LN_x(x + D(XAttn(x, memory)))];  x = LN2(x + D(FF(x)))
///   none:    the pre-LN form without any LayerNorm (no ln* parameters).
template <typename T>
class TransformerBlock : public Module<T> {
 public:
  TransformerBlock(const BlockOptions& options, Rng* dropout_rng);
  /// x [B, T, C] → [B, T, C]. For a cross block, memory [B, S, C] and cross_mask (key_padding
  /// [B, S]) feed xattn.
  Var<T> forward(const Var<T>& x, const AttnMask& self_mask, const Var<T>& memory = {},
                 const AttnMask& cross_mask = {}, bool keep_attention = false);
  /// The same block for positions n..n+T−1 of x [B, T, C] against `cache` (Attention::
  /// forward_cached for attn, Attention::forward_kv for xattn); no graph is recorded.
  Var<T> forward_cached(const Var<T>& x, BlockCache<T>& cache, int64_t n, const AttnMask& self_mask,
                        const AttnMask& cross_mask, bool keep_attention = false);

  BlockOptions options;
  LayerNorm<T>* ln1 = nullptr;  // null when norm = none
  Attention<T>* attn = nullptr;
  LayerNorm<T>* ln_x = nullptr;   // cross blocks with a norm only
  Attention<T>* xattn = nullptr;  // cross blocks only
  LayerNorm<T>* ln2 = nullptr;
  FeedForward<T>* ff = nullptr;
  Dropout<T>* drop = nullptr;

 private:
  /// One residual sub-layer in the configured norm placement.
  template <typename F>
  Var<T> residual(const Var<T>& x, LayerNorm<T>* ln, F&& sublayer);
  /// The sub-layers in order: self-attention, [cross-attention], feed-forward.
  template <typename Self, typename Cross>
  Var<T> sublayers(const Var<T>& x, Self&& self_attn, Cross&& cross_attn);
};

extern template class Linear<float>;
extern template class Linear<double>;
extern template class Embedding<float>;
extern template class Embedding<double>;
extern template class LearnedPositional<float>;
extern template class LearnedPositional<double>;
extern template class SinusoidalPositional<float>;
extern template class SinusoidalPositional<double>;
extern template class LayerNorm<float>;
extern template class LayerNorm<double>;
extern template class Dropout<float>;
extern template class Dropout<double>;
extern template class FeedForward<float>;
extern template class FeedForward<double>;
extern template class Attention<float>;
extern template class Attention<double>;
extern template class TransformerBlock<float>;
extern template class TransformerBlock<double>;

}  // namespace qkv
