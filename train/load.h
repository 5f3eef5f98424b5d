// Loading a trained checkpoint for use: the one path that `qkv eval`, `attend`, `generate`,
// `graph` and `grads` take. Every parameter is checked against the model the checkpoint's config
// describes, and the task is rebuilt with the checkpoint's stored vocabulary (so a task whose data
// file has moved still tokenises, see make_task).
#pragma once

#include <memory>
#include <string>

#include "datasets/task.h"
#include "nn/model.h"
#include "train/checkpoint.h"

namespace qkv {

struct TrainedModel {
  Checkpoint ckpt;
  std::unique_ptr<Task> task;
  std::unique_ptr<Model<float>> model;  // in eval mode
};

/// Loads and validates `path` and rebuilds its task and model. Throws qkv::Error naming the file
/// on any problem (a checkpoint with no task config included).
TrainedModel load_trained(const std::string& path);

}  // namespace qkv
