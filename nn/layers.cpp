#include "nn/layers.h"

#include <algorithm>
#include <cmath>
#include <memory>

namespace qkv {

Activation parse_activation(const std::string& name) {
  if (name == "gelu") return Activation::kGelu;
  if (name == "relu") return Activation::kRelu;
  if (name == "gelu_tanh") return Activation::kGeluTanh;
  fail("activation '{}' is not one of gelu, relu, gelu_tanh", name);
}

Norm parse_norm(const std::string& name) {
  if (name == "pre") return Norm::kPre;
  if (name == "post") return Norm::kPost;
  if (name == "none") return Norm::kNone;
  fail("norm '{}' is not one of pre, post, none", name);
}

// ---- Linear -----------------------------------------------------------------------------------

template <typename T>
Linear<T>::Linear(int64_t in, int64_t out, bool with_bias) : in_features(in), out_features(out) {
  weight = this->register_parameter("weight", Tensor<T>::zeros({out, in}));
  if (with_bias) bias = this->register_parameter("bias", Tensor<T>::zeros({out}));
}

template <typename T>
Var<T> Linear<T>::forward(const Var<T>& x) const {
  return linear(x, weight, bias);
}

// ---- Embedding and positions ------------------------------------------------------------------

template <typename T>
Embedding<T>::Embedding(int64_t num, int64_t dim) {
  weight = this->register_parameter("weight", Tensor<T>::zeros({num, dim}));
}

template <typename T>
Var<T> Embedding<T>::forward(const IndexTensor& ids) const {
  return embedding(weight, ids);
}

namespace {

/// Checks x is [B, T, C] with offset + T ≤ max_len and C = dim, naming the module.
void check_positions(const char* who, const Shape& x, int64_t offset, int64_t max_len,
                     int64_t dim) {
  QKV_CHECK(x.nd == 3 && x[2] == dim, "{}: expected input [B, T, {}], got {}", who, dim, x);
  QKV_CHECK(offset >= 0, "{}: negative first position {}", who, offset);
  QKV_CHECK(offset + x[1] <= max_len, "{}: sequence length {} exceeds max_len {}", who,
            offset + x[1], max_len);
}

}  // namespace

template <typename T>
LearnedPositional<T>::LearnedPositional(int64_t max_len, int64_t dim) {
  weight = this->register_parameter("weight", Tensor<T>::zeros({max_len, dim}));
}

template <typename T>
Var<T> LearnedPositional<T>::forward(const Var<T>& x, int64_t offset) const {
  check_positions("LearnedPositional", x.shape(), offset, weight.size(0), weight.size(1));
  const int64_t T_ = x.size(1);
  IndexTensor ids(Shape{T_});
  for (int64_t t = 0; t < T_; ++t) ids[t] = static_cast<int32_t>(offset + t);
  return add(x, embedding(weight, ids));  // [B, T, C] + [T, C]: broadcast over B
}

template <typename T>
SinusoidalPositional<T>::SinusoidalPositional(int64_t max_len, int64_t dim)
    : table_(Tensor<T>::empty({max_len, dim})) {
  for (int64_t p = 0; p < max_len; ++p) {
    for (int64_t i = 0; 2 * i < dim; ++i) {
      const double angle =
          static_cast<double>(p) / std::pow(10000.0, static_cast<double>(2 * i) / dim);
      table_[p * dim + 2 * i] = static_cast<T>(std::sin(angle));
      if (2 * i + 1 < dim) table_[p * dim + 2 * i + 1] = static_cast<T>(std::cos(angle));
    }
  }
}

template <typename T>
Var<T> SinusoidalPositional<T>::forward(const Var<T>& x, int64_t offset) const {
  check_positions("SinusoidalPositional", x.shape(), offset, table_.size(0), table_.size(1));
  const int64_t T_ = x.size(1), C = x.size(2);
  Tensor<T> pe = Tensor<T>::empty({T_, C});  // rows offset..offset+T, a constant
  std::copy(table_.data() + offset * C, table_.data() + (offset + T_) * C, pe.data());
  return add(x, Var<T>(pe));
}

// ---- LayerNorm, Dropout, FeedForward ----------------------------------------------------------

template <typename T>
LayerNorm<T>::LayerNorm(int64_t dim, double eps_) : eps(eps_) {
  weight = this->register_parameter("weight", Tensor<T>::full({dim}, T(1)));
  bias = this->register_parameter("bias", Tensor<T>::zeros({dim}));
}

template <typename T>
Var<T> LayerNorm<T>::forward(const Var<T>& x) const {
  return layer_norm(x, weight, bias, eps);
}

template <typename T>
Dropout<T>::Dropout(double p_, Rng* rng) : p(p_), rng_(rng) {
  QKV_CHECK(p >= 0 && p < 1, "Dropout: p must be in [0, 1), got {}", p);
  QKV_CHECK(rng_ != nullptr || p == 0, "Dropout: p = {} needs a random generator", p);
}

template <typename T>
Var<T> Dropout<T>::forward(const Var<T>& x) const {
  if (!this->training() || p == 0) return x;
  return dropout(x, p, /*training=*/true, *rng_);
}

template <typename T>
FeedForward<T>::FeedForward(int64_t d_model, int64_t d_ff, Activation act) : activation(act) {
  fc1 = &this->register_module("fc1", std::make_unique<Linear<T>>(d_model, d_ff));
  fc2 = &this->register_module("fc2", std::make_unique<Linear<T>>(d_ff, d_model));
}

template <typename T>
Var<T> FeedForward<T>::forward(const Var<T>& x) const {
  Var<T> h = fc1->forward(x);
  switch (activation) {
    case Activation::kGelu:
      h = gelu(h, GeluForm::kErf);
      break;
    case Activation::kGeluTanh:
      h = gelu(h, GeluForm::kTanh);
      break;
    case Activation::kRelu:
      h = relu(h);
      break;
  }
  return fc2->forward(h);
}

// ---- Attention --------------------------------------------------------------------------------

template <typename T>
Attention<T>::Attention(int64_t d_model_, int64_t n_heads_) : d_model(d_model_), n_heads(n_heads_) {
  QKV_CHECK(n_heads > 0 && d_model % n_heads == 0,
            "Attention: d_model ({}) must be divisible by n_heads ({})", d_model, n_heads);
  W_Q = &this->register_module("W_Q", std::make_unique<Linear<T>>(d_model, d_model));
  W_K = &this->register_module("W_K", std::make_unique<Linear<T>>(d_model, d_model));
  W_V = &this->register_module("W_V", std::make_unique<Linear<T>>(d_model, d_model));
  W_O = &this->register_module("W_O", std::make_unique<Linear<T>>(d_model, d_model));
}

template <typename T>
Var<T> Attention<T>::split_heads(const Var<T>& x) const {
  // [B, T, C] → [B, T, H, d] → [B, H, T, d]
  return permute(reshape(x, {x.size(0), x.size(1), n_heads, d_model / n_heads}), {0, 2, 1, 3});
}

template <typename T>
void Attention<T>::check_queries(const Var<T>& x) const {
  QKV_CHECK(x.dim() == 3 && x.size(2) == d_model,
            "Attention '{}': expected queries [B, T, {}], got {}", this->display_path(), d_model,
            x.shape());
}

template <typename T>
Var<T> Attention<T>::attend(const Var<T>& x, const Var<T>& K, const Var<T>& V, const AttnMask& mask,
                            bool keep_attention, int64_t keys) {
  const Var<T> Q = split_heads(W_Q->forward(x));  // [B, H, T, d]
  Tensor<T> P;
  const Var<T> O = scaled_dot_product_attention(Q, K, V, mask, keep_attention ? &P : nullptr);
  if (last_attention_.defined()) last_attention_ = Tensor<T>();  // see forward()
  if (keep_attention && keys == P.size(3)) {
    last_attention_ = P;
  } else if (keep_attention) {  // the cached K, V rows in use: P [B, H, T, keys]
    const int64_t rows = P.size(0) * P.size(1) * P.size(2), S = P.size(3);
    last_attention_ = Tensor<T>::empty({P.size(0), P.size(1), P.size(2), keys});
    for (int64_t r = 0; r < rows; ++r)
      std::copy(P.data() + r * S, P.data() + r * S + keys, last_attention_.data() + r * keys);
  }
  // [B, H, T, d] → [B, T, H, d] → [B, T, C]
  const Var<T> merged = reshape(permute(O, {0, 2, 1, 3}), {x.size(0), x.size(1), d_model});
  return W_O->forward(merged);
}

template <typename T>
Var<T> Attention<T>::forward(const Var<T>& x, const Var<T>& memory, const AttnMask& mask,
                             bool keep_attention) {
  const Var<T>& kv = memory.defined() ? memory : x;
  check_queries(x);
  QKV_CHECK(kv.dim() == 3 && kv.size(2) == d_model && kv.size(0) == x.size(0),
            "Attention '{}': memory {} does not match queries {}", this->display_path(), kv.shape(),
            x.shape());
  // The heads stay side by side in the projections' features: no copies to split or merge them.
  const Var<T> Q = W_Q->forward(x);   // [B, T, C]
  const Var<T> K = W_K->forward(kv);  // [B, S, C]
  const Var<T> V = W_V->forward(kv);  // [B, S, C]
  Tensor<T> P;
  const Var<T> O = multi_head_attention(Q, K, V, n_heads, mask, keep_attention ? &P : nullptr);
  // [B, H, T, S], or undefined. Written only when it changes: a model's forward without
  // keep_attention must not write the module, so that batch shards can run one model's forward
  // on several threads at once (train/thread_shards.h; Model::forward hands kept maps over).
  if (keep_attention || last_attention_.defined()) last_attention_ = P;
  return W_O->forward(O);
}

template <typename T>
KVBuffers<T> Attention<T>::project_kv(const Var<T>& memory) const {
  NoGradGuard no_grad;
  return {split_heads(W_K->forward(memory)).value(), split_heads(W_V->forward(memory)).value()};
}

template <typename T>
Var<T> Attention<T>::forward_kv(const Var<T>& x, const KVBuffers<T>& kv, const AttnMask& mask,
                                bool keep_attention) {
  NoGradGuard no_grad;
  check_queries(x);
  return attend(x, Var<T>(kv.K), Var<T>(kv.V), mask, keep_attention, kv.K.size(2));
}

// The cache holds K, V [B, H, L, d] for all L = max_len positions; rows n..n+T of each (b, h)
// block are written here, straight from the projections' [B, T, C] layout (column h·d + j of
// position t is row n + t, column j of head h). Q then attends over all L rows: the rows not yet
// written (and earlier sequences' leftovers after KVCache::clear) are hidden by the caller's
// mask, so their P is exactly 0 and they add exactly 0 to O = P·V.
template <typename T>
Var<T> Attention<T>::forward_cached(const Var<T>& x, KVBuffers<T>& cache, int64_t n,
                                    const AttnMask& mask, bool keep_attention) {
  NoGradGuard no_grad;
  check_queries(x);
  const int64_t B = x.size(0), T_ = x.size(1), H = n_heads, d = d_model / n_heads;
  const int64_t L = cache.K.size(2);
  QKV_CHECK(cache.K.shape() == Shape({B, H, L, d}) && n >= 0 && n + T_ <= L,
            "Attention '{}': positions {}..{} do not fit the cache {}", this->display_path(), n,
            n + T_ - 1, cache.K.shape());
  const Tensor<T> K_new = W_K->forward(x).value();  // [B, T, C]
  const Tensor<T> V_new = W_V->forward(x).value();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T_; ++t) {
        const int64_t from = (b * T_ + t) * d_model + h * d, to = ((b * H + h) * L + n + t) * d;
        std::copy(K_new.data() + from, K_new.data() + from + d, cache.K.data() + to);
        std::copy(V_new.data() + from, V_new.data() + from + d, cache.V.data() + to);
      }
  return attend(x, Var<T>(cache.K), Var<T>(cache.V), mask, keep_attention, n + T_);
}

// ---- TransformerBlock -------------------------------------------------------------------------

template <typename T>
TransformerBlock<T>::TransformerBlock(const BlockOptions& o, Rng* dropout_rng) : options(o) {
  const bool ln = o.norm != Norm::kNone;
  auto layer_norm = [&](const char* name) {
    return &this->register_module(name, std::make_unique<LayerNorm<T>>(o.d_model, o.ln_eps));
  };
  if (ln) ln1 = layer_norm("ln1");
  attn = &this->register_module("attn", std::make_unique<Attention<T>>(o.d_model, o.n_heads));
  if (o.cross) {
    if (ln) ln_x = layer_norm("ln_x");
    xattn = &this->register_module("xattn", std::make_unique<Attention<T>>(o.d_model, o.n_heads));
  }
  if (ln) ln2 = layer_norm("ln2");
  ff = &this->register_module("ff",
                              std::make_unique<FeedForward<T>>(o.d_model, o.d_ff, o.activation));
  drop = &this->register_module("dropout", std::make_unique<Dropout<T>>(o.dropout, dropout_rng));
}

template <typename T>
template <typename F>
Var<T> TransformerBlock<T>::residual(const Var<T>& x, LayerNorm<T>* ln, F&& sublayer) {
  switch (options.norm) {
    case Norm::kPre:
      return add(x, drop->forward(sublayer(ln->forward(x))));
    case Norm::kPost:
      return ln->forward(add(x, drop->forward(sublayer(x))));
    case Norm::kNone:
      break;
  }
  return add(x, drop->forward(sublayer(x)));
}

template <typename T>
template <typename Self, typename Cross>
Var<T> TransformerBlock<T>::sublayers(const Var<T>& x, Self&& self_attn, Cross&& cross_attn) {
  Var<T> h = residual(x, ln1, self_attn);
  if (xattn) h = residual(h, ln_x, cross_attn);
  return residual(h, ln2, [&](const Var<T>& a) { return ff->forward(a); });
}

template <typename T>
Var<T> TransformerBlock<T>::forward(const Var<T>& x, const AttnMask& self_mask,
                                    const Var<T>& memory, const AttnMask& cross_mask,
                                    bool keep_attention) {
  QKV_CHECK(!xattn || memory.defined(),
            "TransformerBlock '{}': a cross-attention block needs memory", this->display_path());
  return sublayers(
      x, [&](const Var<T>& a) { return attn->forward(a, Var<T>(), self_mask, keep_attention); },
      [&](const Var<T>& a) { return xattn->forward(a, memory, cross_mask, keep_attention); });
}

template <typename T>
Var<T> TransformerBlock<T>::forward_cached(const Var<T>& x, BlockCache<T>& cache, int64_t n,
                                           const AttnMask& self_mask, const AttnMask& cross_mask,
                                           bool keep_attention) {
  NoGradGuard no_grad;
  QKV_CHECK(!xattn || cache.cross.K.defined(),
            "TransformerBlock '{}': a cross-attention block needs the memory's K, V in its cache",
            this->display_path());
  return sublayers(
      x,
      [&](const Var<T>& a) {
        return attn->forward_cached(a, cache.self, n, self_mask, keep_attention);
      },
      [&](const Var<T>& a) {
        return xattn->forward_kv(a, cache.cross, cross_mask, keep_attention);
      });
}

template class Linear<float>;
template class Linear<double>;
template class Embedding<float>;
template class Embedding<double>;
template class LearnedPositional<float>;
template class LearnedPositional<double>;
template class SinusoidalPositional<float>;
template class SinusoidalPositional<double>;
template class LayerNorm<float>;
template class LayerNorm<double>;
template class Dropout<float>;
template class Dropout<double>;
template class FeedForward<float>;
template class FeedForward<double>;
template class Attention<float>;
template class Attention<double>;
template class TransformerBlock<float>;
template class TransformerBlock<double>;

}  // namespace qkv
