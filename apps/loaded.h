// A trained checkpoint ready for inference: its validated parameters in a float32 model, and the
// task it was trained on (rebuilt from the checkpoint's task config) for tokenising text.
#pragma once

#include <memory>
#include <string>

#include "datasets/task.h"
#include "nn/model.h"
#include "train/checkpoint.h"
#include "train/load.h"

namespace qkv::cli {

/// A trained checkpoint ready for inference (train/load.h).
using Loaded = TrainedModel;
using qkv::load_trained;

/// Greedy continuation of a decoder or seq2seq batch of one example: appends argmax tokens to
/// batch.tokens until <eos> or the model's max_len; returns the appended ids. batch.targets is
/// cleared (the continued batch has no answer to score).
std::vector<int32_t> greedy_decode(Model<float>& model, Batch& batch, int32_t eos_id);

}  // namespace qkv::cli
