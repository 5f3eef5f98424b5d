// Model<T>: the three architectures (encoder, decoder, seq2seq; docs/model.md), built from a
// ModelConfig and a seed, with the canonical parameter names of param_shapes(config).
//
//   ModelConfig cfg = ModelConfig::parse(R"({"arch": "encoder", "vocab_size": 11, ...})");
//   Model<float> model(cfg, /*seed=*/1);
//   ForwardResult<float> r = model.forward(batch, /*keep_attention=*/true);
//   r.loss.backward();                       // grads in model.named_parameters()
//   r.attention_map("blocks.0.attn");        // P [B, H, T, S]
//
// Incremental decoding (decoder and seq2seq; inference only, no autograd graph): the cache keeps
// every layer's K and V, so each new token costs one position's forward pass (nn/kv_cache.h).
//   KVCache<float> cache = model.begin_decode(batch);     // seq2seq: the encoder runs once here
//   model.forward_cached(cache, batch.tokens);            // the prompt, positions 0..T−1
//   r = model.forward_cached(cache, next);                // next [B, 1] at position T: [B, 1, V]
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/attention_map.h"
#include "core/batch.h"
#include "core/rng.h"
#include "nn/batch_model.h"
#include "nn/config.h"
#include "nn/kv_cache.h"
#include "nn/layers.h"
#include "nn/module.h"

namespace qkv {

/// What Model::forward_cached returns besides updating the cache.
struct CachedForwardOptions {
  BoolTensor mask;              // [B, T] of the new tokens: 1 = real, 0 = padding; empty = all real
  bool last_only = false;       // logits of the last new position only: [B, 1, V]
  bool keep_attention = false;  // P of the decoder's attention modules for the new positions
};

template <typename T>
class Model : public BatchModel<T> {
 public:
  /// Builds the model of `config` (resolved and validated first; nothing is allocated for an
  /// invalid config) and initialises it from `seed` as GPT-2 does (see reset_parameters).
  Model(const ModelConfig& config, uint64_t seed);

  /// Runs the batch through the model. Encoder: logits at batch.positions, loss against
  /// batch.targets [B]. Decoder: logits at every position, loss over targets [B, T] ≠ -1.
  /// Seq2seq: the encoder reads batch.src (src_mask), the decoder batch.tokens (mask).
  /// The loss is undefined when batch.targets is empty.
  ForwardResult<T> forward(const Batch& batch, bool keep_attention = false) override;
  /// Starts incremental decoding of batch's B examples (decoder or seq2seq; an encoder throws):
  /// an empty cache of capacity max_len. Seq2seq: runs the encoder over batch.src (src_mask)
  /// once and keeps each cross-attention's K, V of its output. batch.tokens only gives B here.
  KVCache<T> begin_decode(const Batch& batch);
  /// Appends ids [B, T] at positions cache.length().. (they must fit in max_len; a full cache
  /// throws) and returns their logits [B, T, V] (o.last_only: [B, 1, V]) — the same values
  /// forward() gives those positions for the whole sequence so far, to float rounding, at the cost
  /// of T positions. No graph is recorded; dropout acts as in forward(), so decode in eval mode.
  /// With o.keep_attention, result.attention holds P [B, H, T, length] of the decoder's
  /// self-attention and P [B, H, T, S] of its cross-attention, for the new positions.
  ForwardResult<T> forward_cached(KVCache<T>& cache, const IndexTensor& ids,
                                  const CachedForwardOptions& o = {});
  /// config().to_json().
  nlohmann::json config_json() const override { return config_.to_json(); }
  /// "encoder (d_model 64, n_heads 4, n_layers 2, 104066 parameters)".
  std::string describe() const override;
  /// {"dropout": state}.
  std::vector<std::pair<std::string, Rng::State>> rng_states() const override {
    return {{"dropout", dropout_rng_state()}};
  }
  void set_rng_state(const std::string& name, const Rng::State& state) override {
    if (name == "dropout") set_dropout_rng_state(state);
  }

  /// Re-draws every parameter from an Rng seeded by `seed`, in canonical name order:
  /// weights and embeddings ~ N(0, 0.02); W_O and fc2 weights ~ N(0, 0.02/√(2·n_layers));
  /// LayerNorm weights 1; biases 0. Values are drawn in double, so float and double models of
  /// the same seed agree to float rounding.
  void reset_parameters(uint64_t seed);

  /// The resolved config this model was built from.
  const ModelConfig& config() const { return config_; }

  /// An attention module of the model: its path, its role and the module.
  struct AttentionModule {
    std::string path;
    AttnRole role;
    Attention<T>* module;
  };
  /// Every attention module, in forward order.
  std::vector<AttentionModule> attention_modules();

  /// The dropout generator's state, saved in checkpoints for an exact resume.
  Rng::State dropout_rng_state() const { return dropout_rng_->state(); }
  void set_dropout_rng_state(const Rng::State& state) { dropout_rng_->set_state(state); }

 private:
  // One stack of embeddings, blocks, final LayerNorm and head, registered into a module (the
  // model itself, or "enc" / "dec" for seq2seq). Pointers are to registered submodules.
  struct Stack {
    Embedding<T>* tok_emb = nullptr;
    LearnedPositional<T>* pos_emb = nullptr;         // pos = learned
    std::unique_ptr<SinusoidalPositional<T>> sinus;  // pos = sinusoidal (not a parameter)
    std::vector<TransformerBlock<T>*> blocks;
    AttnStack stack = AttnStack::kDecoder;  // the role of its blocks' self-attention
    LayerNorm<T>* ln_f = nullptr;           // norm = pre
    Linear<T>* head = nullptr;              // absent when tied (or for the encoder side)
    Dropout<T>* drop = nullptr;             // on the embeddings
  };

  void build_stack(Stack& s, Module<T>& owner, AttnStack stack, int64_t vocab, int64_t max_len,
                   bool cross, bool head);
  /// Token + position embeddings (positions offset..offset+T), then dropout: ids [B, T] → [B, T,
  /// C].
  Var<T> embed(const Stack& s, const IndexTensor& ids, int64_t offset = 0) const;
  /// The seq2seq encoder over batch.src (src_mask): the decoder's memory [B, S, C].
  Var<T> encode_source(const Batch& batch, bool keep_attention) const;
  /// The blocks, then ln_f where present.
  Var<T> run_blocks(const Stack& s, Var<T> x, const AttnMask& self_mask, const Var<T>& memory,
                    const AttnMask& cross_mask, bool keep_attention) const;
  /// head(x), or x·tok_embᵀ when tied.
  Var<T> project(const Stack& s, const Var<T>& x) const;

  ModelConfig config_;
  std::unique_ptr<Rng> dropout_rng_;  // on the heap: layers keep a pointer to it
  Stack main_;                        // encoder / decoder, or the seq2seq decoder side
  Stack src_;                         // the seq2seq encoder side
};

/// A copy of `model` in another scalar type (a float-trained model as float64, for gradchecking
/// it): same config, parameters converted, same dropout state, same train/eval mode.
template <typename U, typename T>
Model<U> convert_model(const Model<T>& model) {
  Model<U> out(model.config(), 0);
  out.copy_parameters_from(model);
  out.set_dropout_rng_state(model.dropout_rng_state());
  out.train(model.training());
  return out;
}

extern template class Model<float>;
extern template class Model<double>;

}  // namespace qkv
