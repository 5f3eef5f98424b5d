// A trained checkpoint ready for inference: its validated parameters in a float32 model, and the
// task it was trained on (rebuilt from the checkpoint's task config) for tokenising text.
#pragma once

#include <memory>
#include <string>

#include "datasets/task.h"
#include "nn/model.h"
#include "train/checkpoint.h"

namespace qkv::cli {

struct Loaded {
  Checkpoint ckpt;
  std::unique_ptr<Task> task;
  std::unique_ptr<Model<float>> model;  // in eval mode
};

/// Loads and validates `path` (every parameter checked against the config's canonical names and
/// shapes) and rebuilds its task. Throws qkv::Error naming the file on any problem.
Loaded load_trained(const std::string& path);

}  // namespace qkv::cli
