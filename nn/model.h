// Model<T>: the three architectures of DESIGN.md (encoder, decoder, seq2seq), built from a
// ModelConfig and a seed, with the canonical parameter names of param_shapes(config).
//
//   ModelConfig cfg = ModelConfig::parse(R"({"arch": "encoder", "vocab_size": 11, ...})");
//   Model<float> model(cfg, /*seed=*/1);
//   ForwardResult<float> r = model.forward(batch, /*keep_attention=*/true);
//   r.loss.backward();                       // grads in model.named_parameters()
//   r.attention_map("blocks.0.attn");        // P [B, H, T, S]
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/batch.h"
#include "core/rng.h"
#include "nn/config.h"
#include "nn/layers.h"
#include "nn/module.h"

namespace qkv {

template <typename T>
struct ForwardResult {
  Var<T> logits;  // encoder [B, n_out]; decoder and seq2seq [B, T, V]
  Var<T> loss;    // scalar mean cross-entropy; undefined when the batch has no targets
  /// With keep_attention: every attention module's P [B, H, T, S] in forward order, keyed by its
  /// path ("blocks.0.attn", "enc.blocks.1.attn", "dec.blocks.0.xattn"). P shares storage with
  /// the graph: read it, do not write it.
  std::vector<std::pair<std::string, Tensor<T>>> attention;

  /// The attention map of the module at `path`; throws qkv::Error listing the known paths.
  const Tensor<T>& attention_map(const std::string& path) const;
};

template <typename T>
class Model : public Module<T> {
 public:
  /// Builds the model of `config` (resolved and validated first; nothing is allocated for an
  /// invalid config) and initialises it from `seed` as GPT-2 does (see reset_parameters).
  Model(const ModelConfig& config, uint64_t seed);

  /// Runs the batch through the model. Encoder: logits at batch.positions, loss against
  /// batch.targets [B]. Decoder: logits at every position, loss over targets [B, T] ≠ -1.
  /// Seq2seq: the encoder reads batch.src (src_mask), the decoder batch.tokens (mask).
  /// The loss is undefined when batch.targets is empty.
  ForwardResult<T> forward(const Batch& batch, bool keep_attention = false);

  /// Re-draws every parameter from an Rng seeded by `seed`, in canonical name order:
  /// weights and embeddings ~ N(0, 0.02); W_O and fc2 weights ~ N(0, 0.02/√(2·n_layers));
  /// LayerNorm weights 1; biases 0. Values are drawn in double, so float and double models of
  /// the same seed agree to float rounding.
  void reset_parameters(uint64_t seed);

  /// The resolved config this model was built from.
  const ModelConfig& config() const { return config_; }

  /// Every attention module with its path, in forward order.
  std::vector<std::pair<std::string, Attention<T>*>> attention_modules();

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
    LayerNorm<T>* ln_f = nullptr;  // norm = pre
    Linear<T>* head = nullptr;     // absent when tied (or for the encoder side)
    Dropout<T>* drop = nullptr;    // on the embeddings
  };

  void build_stack(Stack& s, Module<T>& owner, int64_t vocab, int64_t max_len, bool cross,
                   bool head);
  /// Token + position embeddings, then dropout: ids [B, T] → [B, T, C].
  Var<T> embed(const Stack& s, const IndexTensor& ids) const;
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

extern template struct ForwardResult<float>;
extern template struct ForwardResult<double>;
extern template class Model<float>;
extern template class Model<double>;

}  // namespace qkv
