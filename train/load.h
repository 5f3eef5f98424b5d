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

/// Loads and validates `path` and rebuilds its model (ckpt and model; no task): for tools that
/// need no task, and checkpoints written by other programs without one. Throws qkv::Error naming
/// the file on any problem.
TrainedModel load_model(const std::string& path);
/// load_model(), then rebuilds the task it was trained on. A checkpoint with no task config is a
/// qkv::Error naming the file.
TrainedModel load_trained(const std::string& path);

}  // namespace qkv
