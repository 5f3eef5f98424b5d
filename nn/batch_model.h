// BatchModel<T>: what the trainer, evaluation and the probes need of a model: a Module (named
// parameters, train/eval mode) whose forward pass maps a Batch to logits, a loss and, on request,
// its attention maps. qkv's own architectures (nn/model.h) are one; a user's model is another.
//
//   class MyModel : public BatchModel<float> {
//     ForwardResult<float> forward(const Batch& b, bool keep_attention) override { ... }
//     nlohmann::json config_json() const override { return {{"arch", "my_model"}, ...}; }
//   };
//   Trainer trainer(std::move(task), std::make_unique<MyModel>(...), train_config, options);
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/var.h"
#include "core/attention_map.h"
#include "core/batch.h"
#include "core/rng.h"
#include "nn/module.h"

namespace qkv {

template <typename T>
struct ForwardResult {
  Var<T> logits;  // encoder [B, n_out]; decoder and seq2seq [B, T, V]
  Var<T> loss;    // scalar mean cross-entropy; undefined when the batch has no targets
  /// With keep_attention: every attention module's P [B, H, T, S] in forward order, with its path
  /// ("blocks.0.attn", "enc.blocks.1.attn", "dec.blocks.0.xattn") and its role. P shares storage
  /// with the graph: read it, do not write it.
  std::vector<AttentionMap<T>> attention;

  /// The attention map of the module at `path`; throws qkv::Error listing the known paths.
  const Tensor<T>& attention_map(const std::string& path) const;
};

template <typename T>
class BatchModel : public Module<T> {
 public:
  /// Runs the batch through the model: logits, and the loss when batch.targets is not empty.
  virtual ForwardResult<T> forward(const Batch& batch, bool keep_attention = false) = 0;
  /// The model's configuration, stored as a checkpoint's /config 'model' (JSON object).
  virtual nlohmann::json config_json() const = 0;
  /// What the model is, for progress output: "encoder (d_model 64, n_heads 4, n_layers 2,
  /// 104066 parameters)".
  virtual std::string describe() const {
    return "a model of " + std::to_string(this->num_parameters()) + " parameters";
  }
  /// Named random generators (dropout, …) whose states an exact resume restores.
  virtual std::vector<std::pair<std::string, Rng::State>> rng_states() const { return {}; }
  /// Restores a generator named by rng_states(); unknown names are ignored.
  virtual void set_rng_state(const std::string& /*name*/, const Rng::State& /*state*/) {}
};

/// Restores a model's training mode when it goes out of scope (evaluation runs in eval mode).
template <typename T>
class EvalModeGuard {
 public:
  explicit EvalModeGuard(Module<T>& m) : m_(m), was_(m.training()) { m_.eval(); }
  ~EvalModeGuard() { m_.train(was_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  Module<T>& m_;
  bool was_;
};

extern template struct ForwardResult<float>;
extern template struct ForwardResult<double>;

}  // namespace qkv
