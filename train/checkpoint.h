// Checkpoints: the qkv HDF5 file (format version 1), written atomically and
// read back with every dataset validated. docs/checkpoint-format.md documents the layout.
//
//   /                  attrs format = "qkv-checkpoint", format_version = 1, qkv_version
//   /config            attrs model, train, task: JSON strings
//   /model/<name>      float32, one dataset per parameter (canonical dotted name and shape)
//   /optimizer         attrs type, step, one attr per hyper-parameter; /optimizer/<slot>/<name>
//   /train             attrs step, epoch, state (JSON of extra resume state);
//                      rng uint64 [n, 4] and rng_names strings [n]
//   /vocab, /src_vocab variable-length UTF-8 strings, id i = row i
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "core/shape.h"
#include "core/tensor.h"
#include "nn/config.h"
#include "train/optimizer.h"

namespace qkv {

constexpr const char* kCheckpointFormat = "qkv-checkpoint";
constexpr int64_t kCheckpointFormatVersion = 1;

/// Where training stands, for an exact resume.
struct TrainState {
  int64_t step = 0;
  int64_t epoch = 0;
  /// Anything else resume needs (a JSON object; stored as the JSON string attr /train.state).
  nlohmann::json extra = nlohmann::json::object();
  /// Named generator states ("data", "dropout", …), in order.
  std::vector<std::pair<std::string, Rng::State>> rng;
};

struct Checkpoint {
  nlohmann::json model_config = nlohmann::json::object();  // /config.model
  nlohmann::json train_config = nlohmann::json::object();  // /config.train
  nlohmann::json task_config = nlohmann::json::object();   // /config.task
  /// (canonical name, value), in the model's named_parameters() order.
  std::vector<std::pair<std::string, Tensor<float>>> params;
  /// Absent for a model-only checkpoint. hparams: a flat object of numbers, bools, strings and
  /// arrays of numbers (each becomes one attribute of /optimizer).
  std::optional<OptimizerState<float>> optimizer;
  /// Always written; a file without /train (written by other tools) loads with the defaults.
  TrainState train;
  /// Token of id i at i; empty = the task has no vocabulary (no /vocab dataset).
  std::vector<std::string> vocab;
  /// seq2seq source vocabulary; empty = none (no /src_vocab dataset).
  std::vector<std::string> src_vocab;
  /// The qkv version that wrote the file (filled on load; save writes this build's version).
  std::string qkv_version;

  /// The parameter called `name`; throws qkv::Error when there is none.
  const Tensor<float>& param(const std::string& name) const;
};

/// (canonical name, shape) of every parameter a model expects, in its order.
using ParamShapes = std::vector<std::pair<std::string, Shape>>;

/// Writes `ckpt` to `path` atomically: it writes path + ".tmp" in the same folder, flushes,
/// fsyncs, renames it over `path` and fsyncs the folder. On failure the .tmp file is removed and
/// qkv::Error is thrown; an existing file at `path` is never damaged. Refuses (before writing
/// anything) non-finite values, duplicate or malformed names and hyper-parameters that cannot be
/// attributes.
void save_checkpoint(const std::string& path, const Checkpoint& ckpt);

/// Reads and validates a checkpoint: format and version, configs (JSON objects), every /model and
/// /optimizer dataset float32, of rank ≤ 4 and finite. Throws one qkv::Error naming the file and
/// the problem. Parameters come back in the file's creation order (name order if untracked).
Checkpoint load_checkpoint(const std::string& path);

/// As above, and the parameters must be exactly `expected` (no missing, no extra, same shapes);
/// optimizer slots may only hold expected parameters, with their shapes. Parameters come back in
/// `expected` order.
Checkpoint load_checkpoint(const std::string& path, const ParamShapes& expected);

/// As above with `expected` = the parameters of the model the file's own /config 'model'
/// describes, read in one pass; that config, parsed, goes to `config`. A config that does not
/// describe a model is a qkv::Error naming the file.
Checkpoint load_model_checkpoint(const std::string& path, ModelConfig& config);

}  // namespace qkv
