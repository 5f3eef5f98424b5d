// The effective configuration of a run: the training hyper-parameters (TrainConfig), and the
// task, model and train configs together (RunConfig), resolved from the task's defaults, a
// config file and command-line overrides.
//
//   RunConfig cfg = resolve_run_config("pronoun", /*file=*/{}, {{"train", {{"steps", 500}}}});
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/task.h"
#include "nn/config.h"

namespace qkv {

/// The most batch shards a step may run at once (TrainConfig::shards).
inline constexpr int64_t kMaxShards = 64;

/// The training hyper-parameters: the "train" object of a checkpoint's /config.
struct TrainConfig {
  int64_t steps = 1000;             // optimizer steps of the whole run
  int64_t batch_size = 64;          // examples per step
  double lr = 1e-3;                 // peak learning rate
  std::string optimizer = "adamw";  // "adamw" | "adam" | "sgd"
  double weight_decay = 0.01;       // AdamW: decoupled; Adam and SGD: L2
  int64_t warmup = 0;               // linear warm-up steps
  std::string schedule = "cosine";  // "constant" | "cosine" | "linear"
  double min_lr_ratio = 0.0;        // final lr / lr (cosine, linear)
  double clip = 1.0;                // max global gradient norm; 0 = no clipping
  int64_t eval_every = 250;         // steps between evaluations (and one at the end)
  int64_t eval_examples = 0;        // val examples per evaluation; 0 = the whole split
  int64_t save_every = 0;           // steps between checkpoints; 0 = eval_every
  int64_t keep = 3;                 // step-XXXXXX.h5 files kept
  uint64_t seed = 0;                // initialisation, data order and dropout
  bool skip_nonfinite = false;      // skip (and count) steps with a non-finite gradient
  int64_t shards = 0;  // batch shards whose forward/backward run at once on threads; 0 = auto

  /// The JSON keys, in the order above.
  static const std::vector<std::string>& keys();
  /// Parses a JSON object (absent keys take the defaults above); unknown keys, wrong types and
  /// invalid values throw qkv::Error naming the key.
  static TrainConfig from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
  /// Throws qkv::Error naming the first invalid value.
  void validate() const;
  /// save_every, or eval_every when 0.
  int64_t save_interval() const { return save_every > 0 ? save_every : eval_every; }
};

/// The effective configuration of a run: task defaults ← config file ← flags.
struct RunConfig {
  nlohmann::json task;  // {"name": NAME, ...options}: make_task_from_config() rebuilds the task
  ModelConfig model;
  TrainConfig train;

  /// {"task": …, "model": …, "train": …}: the layout of a config file.
  nlohmann::json to_json() const;
};

/// The task config a checkpoint stores: task.options() plus "name".
nlohmann::json task_config(const Task& task);
/// Rebuilds a task from a task config ({"name": NAME, ...options}) and, for a trained model, the
/// vocabularies stored with it (see make_task); throws qkv::Error.
std::unique_ptr<Task> make_task_from_config(const nlohmann::json& config,
                                            const StoredVocab* stored = nullptr);

/// The effective config. `file` and `overrides` are objects with optional keys "task" (a name, or
/// an object with "name" and task options), "model" (ModelConfig keys) and "train" (TrainConfig
/// keys); `task_name` (may be empty) is overridden by a name in `overrides` and overrides one in
/// `file`. Starts from the task's default_model_config() / default_train_config(). Throws
/// qkv::Error naming the offending key (unknown keys, bad values, a model that does not fit the
/// task). When d_model is changed and d_ff is not given, d_ff follows (4·d_model) if the task's
/// default had that ratio.
RunConfig resolve_run_config(const std::string& task_name, const nlohmann::json& file,
                             const nlohmann::json& overrides);

/// Throws qkv::Error unless the model config fits the task (arch, vocabulary, classes, lengths).
void check_model_fits(const ModelConfig& model, const Task& task);

}  // namespace qkv
