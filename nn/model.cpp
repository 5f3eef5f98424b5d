#include "nn/model.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

namespace qkv {
namespace {

/// The config, resolved and validated (for T's parameter size) before anything is allocated.
ModelConfig checked(const ModelConfig& config, size_t bytes_per_param) {
  config.validate(bytes_per_param);
  return config.resolved();
}

/// The dropout stream's seed: derived from the model seed, independent of the init stream.
uint64_t dropout_seed(uint64_t seed) {
  return seed ^ 0xD1B54A32D192ED03ull;
}

void check_ids(const char* what, const IndexTensor& ids) {
  QKV_CHECK(ids.shape.nd == 2 && ids.shape[0] > 0 && ids.shape[1] > 0,
            "Model: batch {} must be [B, T] with B, T > 0, got {}", what, ids.shape);
}

void check_mask(const char* what, const BoolTensor& mask, const Shape& expected) {
  QKV_CHECK(mask.empty() || mask.shape == expected, "Model: batch {} has shape {}, expected {}",
            what, mask.shape, expected);
}

/// targets [B, T] as [B·T], for the cross-entropy over every position.
IndexTensor flat(const IndexTensor& t) {
  return IndexTensor(Shape{t.numel()}, t.data);
}

}  // namespace

template <typename T>
const Tensor<T>& ForwardResult<T>::attention_map(const std::string& path) const {
  std::string known;
  for (const AttentionMap<T>& a : attention) {
    if (a.path == path) return a.P;
    known += (known.empty() ? "" : ", ") + a.path;
  }
  fail("no attention map '{}' (known: {}; forward with keep_attention = true)", path,
       known.empty() ? "none" : known);
}

template <typename T>
std::string Model<T>::describe() const {
  return fmt::format("{} (d_model {}, n_heads {}, n_layers {}, {} parameters)", config_.arch,
                     config_.d_model, config_.n_heads, config_.n_layers, this->num_parameters());
}

template <typename T>
Model<T>::Model(const ModelConfig& config, uint64_t seed)
    : config_(checked(config, sizeof(T))), dropout_rng_(std::make_unique<Rng>(dropout_seed(seed))) {
  const ModelConfig& c = config_;
  const bool head = !c.tie_embeddings;
  if (c.arch == Arch::kSeq2seq) {
    Module<T>& enc = this->register_module("enc", std::make_unique<Module<T>>());
    Module<T>& dec = this->register_module("dec", std::make_unique<Module<T>>());
    build_stack(src_, enc, AttnStack::kEncoder, c.src_vocab_size, c.src_max_len, /*cross=*/false,
                /*head=*/false);
    build_stack(main_, dec, AttnStack::kDecoder, c.vocab_size, c.max_len, /*cross=*/true, head);
  } else {
    const AttnStack stack = c.arch == Arch::kEncoder ? AttnStack::kEncoder : AttnStack::kDecoder;
    build_stack(main_, *this, stack, c.vocab_size, c.max_len, /*cross=*/false, head);
  }
  reset_parameters(seed);
}

template <typename T>
void Model<T>::build_stack(Stack& s, Module<T>& owner, AttnStack stack, int64_t vocab,
                           int64_t max_len, bool cross, bool head) {
  const ModelConfig& c = config_;
  s.stack = stack;
  const int64_t C = c.d_model;
  s.tok_emb = &owner.register_module("tok_emb", std::make_unique<Embedding<T>>(vocab, C));
  if (c.pos == "learned") {
    s.pos_emb =
        &owner.register_module("pos_emb", std::make_unique<LearnedPositional<T>>(max_len, C));
  } else {
    s.sinus = std::make_unique<SinusoidalPositional<T>>(max_len, C);
  }
  s.drop = &owner.register_module("dropout",
                                  std::make_unique<Dropout<T>>(c.dropout, dropout_rng_.get()));
  BlockOptions o;
  o.d_model = C;
  o.n_heads = c.n_heads;
  o.d_ff = c.d_ff;
  o.activation = parse_activation(c.activation);
  o.norm = parse_norm(c.norm);
  o.ln_eps = c.ln_eps;
  o.dropout = c.dropout;
  o.cross = cross;
  Module<T>& blocks = owner.register_module("blocks", std::make_unique<Module<T>>());
  for (int64_t i = 0; i < c.n_layers; ++i)
    s.blocks.push_back(&blocks.register_module(
        std::to_string(i), std::make_unique<TransformerBlock<T>>(o, dropout_rng_.get())));
  if (o.norm == Norm::kPre)
    s.ln_f = &owner.register_module("ln_f", std::make_unique<LayerNorm<T>>(C, c.ln_eps));
  if (head) s.head = &owner.register_module("head", std::make_unique<Linear<T>>(C, c.n_out));
}

template <typename T>
void Model<T>::reset_parameters(uint64_t seed) {
  // Which parameters are LayerNorm weights (ones) and residual output projections (scaled).
  std::unordered_set<const Node<T>*> ones, residual;
  for (auto& [path, m] : this->named_modules()) {
    if (auto* ln = dynamic_cast<LayerNorm<T>*>(m)) ones.insert(ln->weight.node());
    if (auto* a = dynamic_cast<Attention<T>*>(m)) residual.insert(a->W_O->weight.node());
    if (auto* f = dynamic_cast<FeedForward<T>*>(m)) residual.insert(f->fc2->weight.node());
  }
  const double std = 0.02;
  const double std_residual = std / std::sqrt(2.0 * static_cast<double>(config_.n_layers));
  Rng rng(seed);
  for (auto& [name, p] : this->named_parameters()) {
    Tensor<T>& v = p.value();
    if (ones.count(p.node())) {
      v.fill_(T(1));
    } else if (p.dim() == 1) {  // every bias (LayerNorm weights are handled above)
      v.zero_();
    } else {
      const double s = residual.count(p.node()) ? std_residual : std;
      for (T& x : v) x = static_cast<T>(rng.normal(0.0, s));
    }
  }
}

template <typename T>
std::vector<typename Model<T>::AttentionModule> Model<T>::attention_modules() {
  // Roles come from the stacks as built; paths from the registry, so the two cannot disagree.
  std::unordered_map<const Attention<T>*, AttnRole> roles;
  for (const Stack* s : {&src_, &main_}) {
    for (size_t i = 0; i < s->blocks.size(); ++i) {
      const auto layer = static_cast<int64_t>(i);
      roles[s->blocks[i]->attn] = {s->stack, AttnKind::kSelf, layer};
      if (s->blocks[i]->xattn) roles[s->blocks[i]->xattn] = {s->stack, AttnKind::kCross, layer};
    }
  }
  std::vector<AttentionModule> out;
  for (auto& [path, m] : this->named_modules())
    if (auto* a = dynamic_cast<Attention<T>*>(m)) out.push_back({path, roles.at(a), a});
  // Forward order: the encoder's blocks run before the decoder's; within a block, self before
  // cross (registration order already gives this).
  return out;
}

template <typename T>
Var<T> Model<T>::embed(const Stack& s, const IndexTensor& ids, int64_t offset) const {
  Var<T> x = s.tok_emb->forward(ids);  // [B, T, C]
  x = s.pos_emb ? s.pos_emb->forward(x, offset) : s.sinus->forward(x, offset);
  return s.drop->forward(x);
}

template <typename T>
Var<T> Model<T>::encode_source(const Batch& batch, bool keep_attention) const {
  check_ids("src", batch.src);
  QKV_CHECK(batch.src.shape[0] == batch.batch_size(), "Model: batch src has {} rows, tokens {}",
            batch.src.shape[0], batch.batch_size());
  check_mask("src_mask", batch.src_mask, batch.src.shape);
  AttnMask src_mask;  // the encoder side is bidirectional
  src_mask.key_padding = batch.src_mask;
  return run_blocks(src_, embed(src_, batch.src), src_mask, Var<T>(), AttnMask(), keep_attention);
}

template <typename T>
Var<T> Model<T>::run_blocks(const Stack& s, Var<T> x, const AttnMask& self_mask,
                            const Var<T>& memory, const AttnMask& cross_mask,
                            bool keep_attention) const {
  for (TransformerBlock<T>* block : s.blocks)
    x = block->forward(x, self_mask, memory, cross_mask, keep_attention);
  return s.ln_f ? s.ln_f->forward(x) : x;
}

template <typename T>
Var<T> Model<T>::project(const Stack& s, const Var<T>& x) const {
  return s.head ? s.head->forward(x) : linear(x, s.tok_emb->weight, Var<T>());
}

template <typename T>
ForwardResult<T> Model<T>::forward(const Batch& batch, bool keep_attention) {
  const ModelConfig& c = config_;
  check_ids("tokens", batch.tokens);
  const int64_t B = batch.batch_size(), T_ = batch.seq_len();
  check_mask("mask", batch.mask, batch.tokens.shape);
  ForwardResult<T> r;
  if (c.arch == Arch::kEncoder) {
    QKV_CHECK(batch.positions.shape == Shape{B}, "Model: batch positions has shape {}, expected {}",
              batch.positions.shape, Shape{B});
    for (int64_t b = 0; b < B; ++b)
      QKV_CHECK(batch.positions[b] >= 0 && batch.positions[b] < T_,
                "Model: read-out position {} of example {} is outside [0, {})", batch.positions[b],
                b, T_);
    AttnMask mask;  // bidirectional: padding only
    mask.key_padding = batch.mask;
    Var<T> x = embed(main_, batch.tokens);
    for (TransformerBlock<T>* block : main_.blocks)
      x = block->forward(x, mask, Var<T>(), AttnMask(), keep_attention);
    // ln_f is per position, so reading out first and normalising after is the same, cheaper.
    Var<T> h = select_positions(x, batch.positions);  // [B, C]
    if (main_.ln_f) h = main_.ln_f->forward(h);
    r.logits = project(main_, h);  // [B, n_out]
    if (!batch.targets.empty()) {
      QKV_CHECK(batch.targets.shape == Shape{B}, "Model: batch targets has shape {}, expected {}",
                batch.targets.shape, Shape{B});
      r.loss = cross_entropy(r.logits, batch.targets);
    }
  } else {
    AttnMask self_mask;
    self_mask.causal = true;
    self_mask.key_padding = batch.mask;
    Var<T> memory;
    AttnMask cross_mask;
    if (c.arch == Arch::kSeq2seq) {
      memory = encode_source(batch, keep_attention);
      cross_mask.key_padding = batch.src_mask;
    }
    Var<T> x = run_blocks(main_, embed(main_, batch.tokens), self_mask, memory, cross_mask,
                          keep_attention);
    // The head runs on the rows [B·T, C] and r.logits is a view of its output: the loss reads
    // the [B·T, V] logits directly, so backward holds one [B·T, V] gradient, not a second one
    // for a reshape.
    const Var<T> rows = project(main_, reshape(x, {B * T_, c.d_model}));  // [B·T, V]
    r.logits = reshape(rows, {B, T_, c.n_out});                           // [B, T, V]
    if (!batch.targets.empty()) {
      QKV_CHECK(batch.targets.shape == batch.tokens.shape,
                "Model: batch targets has shape {}, expected {}", batch.targets.shape,
                batch.tokens.shape);
      r.loss = cross_entropy(rows, flat(batch.targets));
    }
  }
  if (keep_attention)
    for (const AttentionModule& a : attention_modules())
      r.attention.push_back({a.path, a.role, a.module->take_last_attention()});
  return r;
}

// ---- Incremental decoding --------------------------------------------------------------------

template <typename T>
KVCache<T> Model<T>::begin_decode(const Batch& batch) {
  const ModelConfig& c = config_;
  QKV_CHECK(c.arch != Arch::kEncoder,
            "Model: begin_decode needs a decoder or a seq2seq model; an encoder predicts no next "
            "token");
  check_ids("tokens", batch.tokens);
  NoGradGuard no_grad;
  KVCache<T> cache;
  cache.batch_ = batch.batch_size();
  cache.capacity_ = c.max_len;
  cache.key_mask_ = BoolTensor({cache.batch_, c.max_len}, 0);
  const int64_t H = c.n_heads, d = c.d_model / c.n_heads;
  Var<T> memory;
  if (c.arch == Arch::kSeq2seq) {
    memory = encode_source(batch, /*keep_attention=*/false);
    cache.src_mask_ = batch.src_mask;
  }
  for (TransformerBlock<T>* block : main_.blocks) {
    BlockCache<T> b;
    // Zeros, not garbage: rows not yet written meet P = 0 in O = P·V, and 0·NaN would be NaN.
    b.self.K = Tensor<T>::zeros({cache.batch_, H, c.max_len, d});
    b.self.V = Tensor<T>::zeros({cache.batch_, H, c.max_len, d});
    if (block->xattn) b.cross = block->xattn->project_kv(memory);
    cache.blocks_.push_back(std::move(b));
  }
  return cache;
}

// New positions n..n+T−1 attend to cached rows s with s ≤ n + t (causal, as in forward()) whose
// token is real (cache.key_mask_, which this call extends by o.mask). One `allowed` mask [T, L]
// states the causal part for any n; rows past n + T are never visible.
template <typename T>
ForwardResult<T> Model<T>::forward_cached(KVCache<T>& cache, const IndexTensor& ids,
                                          const CachedForwardOptions& o) {
  check_ids("tokens", ids);
  const int64_t B = ids.shape[0], T_ = ids.shape[1], n = cache.length_, L = cache.capacity_;
  QKV_CHECK(cache.blocks_.size() == main_.blocks.size() && L == config_.max_len,
            "Model: this cache was not made by this model's begin_decode");
  QKV_CHECK(B == cache.batch_, "Model: {} examples given to a cache of {}", B, cache.batch_);
  QKV_CHECK(n + T_ <= L,
            "Model: {} new positions do not fit the cache ({} of max_len {} used); clear it and "
            "run the last max_len tokens again",
            T_, n, L);
  check_mask("mask", o.mask, ids.shape);
  NoGradGuard no_grad;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T_; ++t)
      cache.key_mask_[b * L + n + t] = o.mask.empty() ? 1 : o.mask[b * T_ + t];
  AttnMask self_mask;
  self_mask.key_padding = cache.key_mask_;
  self_mask.allowed = BoolTensor({T_, L}, 0);
  for (int64_t t = 0; t < T_; ++t)
    std::fill_n(self_mask.allowed.data.begin() + t * L, n + t + 1, uint8_t(1));
  AttnMask cross_mask;
  cross_mask.key_padding = cache.src_mask_;

  Var<T> x = embed(main_, ids, n);
  for (size_t i = 0; i < main_.blocks.size(); ++i)
    x = main_.blocks[i]->forward_cached(x, cache.blocks_[i], n, self_mask, cross_mask,
                                        o.keep_attention);
  cache.length_ += T_;
  if (o.last_only && T_ > 1) x = slice(x, 1, T_ - 1, T_);  // ln_f and the head are per position
  if (main_.ln_f) x = main_.ln_f->forward(x);
  ForwardResult<T> r;
  r.logits = project(main_, x);
  if (o.keep_attention)
    for (const AttentionModule& a : attention_modules())
      if (a.role.stack == AttnStack::kDecoder)
        r.attention.push_back({a.path, a.role, a.module->take_last_attention()});
  return r;
}

template struct ForwardResult<float>;
template struct ForwardResult<double>;
template class Model<float>;
template class Model<double>;

}  // namespace qkv
