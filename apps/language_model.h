// Which tasks are language models, for the commands that treat them apart (attend shows the last
// prompt token's row without generating; eval compares per-token accuracy).
#pragma once

#include "datasets/task.h"

namespace qkv::cli {

/// A decoder task that continues any text: best_by_loss() is what marks language models among
/// the tasks (their exact-sequence accuracy says little).
inline bool is_language_model(const Task& task) {
  return task.arch() == Arch::kDecoder && task.best_by_loss();
}

}  // namespace qkv::cli
