// Evaluation of a model on a task's split: mean loss, the task's score, and every probe the task
// supplies (datasets/probe.h); and the attention of a task's probe sentence at its read-out row.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "datasets/task.h"
#include "nn/batch_model.h"
#include "train/distributed.h"

namespace qkv {

struct EvalResult {
  double loss = 0;  // mean cross-entropy over the split's non-ignored targets
  Score score;
  /// Each of the task's probes: (name, report), in the task's order.
  std::vector<std::pair<std::string, ProbeReport>> probes;
  /// True when a stop request (stop_requested()) ended the evaluation early.
  bool interrupted = false;

  /// The report of the probe called `name`, or nullptr.
  const ProbeReport* probe(const std::string& name) const;
  /// The first probe report with a focus head, or an empty HeadRef.
  HeadRef focus() const;
};

/// Told after each batch of an evaluation: examples done so far, examples in all.
using EvalProgress = std::function<void(int64_t done, int64_t total)>;

/// Evaluates `model` (switched to eval mode, no graph) on the first `max_examples` of `split`
/// (0 = all) in batches of `batch_size`; restores the model's training mode. Predictions are the
/// argmax of the logits (decoder / seq2seq: at every target position, under teacher forcing).
/// The task's probes see every batch (with attention maps when they need them). A stop request
/// ends it between batches (result.interrupted). `progress`, when set, is told after each batch.
EvalResult evaluate(BatchModel<float>& model, const Task& task, Split split,
                    int64_t batch_size = 256, int64_t max_examples = 0,
                    const EvalProgress& progress = {});

/// Whether an evaluation across ranks must report the task's probes.
enum class ProbeUse { kReport, kSkip };

/// evaluate() over the ranks of `comm`, the same result on every rank (collective). Each rank
/// scores a contiguous share of the examples and the loss sums, counts and scores are added up.
/// Probes cannot be added up (their state is the task's): with ProbeUse::kReport and a task that
/// has probes, rank 0 evaluates the whole split with its probes, as one process would, and the
/// other ranks receive its loss and score (their result has no probe reports). With one rank it
/// is evaluate(). `progress` is told of this rank's own share.
EvalResult evaluate_across(Communicator& comm, BatchModel<float>& model, const Task& task,
                           Split split, int64_t batch_size, int64_t max_examples,
                           ProbeUse probe_use, const EvalProgress& progress = {});

/// The read-out row of every self-attention module on one sentence (the row at the batch's
/// read-out position, or the last position for a decoder): [H][S] per module. Eval mode.
struct ProbeAttention {
  std::vector<std::string> tokens;
  int64_t position = 0;
  bool read_out = false;  // the task reads out at `position` (an encoder task)
  std::vector<std::pair<std::string, std::vector<std::vector<double>>>> rows;
};
ProbeAttention probe_attention(BatchModel<float>& model, const Task& task, const std::string& text);

/// Argmax over the last axis of `logits`, shaped like the targets ([B] or [B, T]).
IndexTensor argmax(const Tensor<float>& logits, const Shape& shape);
/// Targets that are not -1.
int64_t count_targets(const Batch& b);
/// Real (unmasked) tokens of the batch, source included.
int64_t count_tokens(const Batch& b);

}  // namespace qkv
