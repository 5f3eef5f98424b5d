// Data-parallel gradient averaging: every rank computes the gradient of its share of the global
// batch, and one allreduce per step over one buffer that holds every parameter's gradient (and a
// few scalars) gives each rank the gradient of the whole batch.
//
//   GradientAverager avg(comm, model.named_parameters());
//   RankShare mine{loss, count, tokens};           // after this rank's backward
//   BatchTotals all = avg.average(mine);           // collective; the gradients are now averaged
//
// The loss is a mean over its denominator (counted targets for a decoder / seq2seq, examples for
// an encoder), so rank r's gradient g_r weighs n_r / Σ n: the average is Σ_r n_r·g_r / Σ_r n_r,
// the gradient of the whole batch's mean loss, exactly as one process computes it up to float
// rounding.
#pragma once

#include <cstdint>
#include <vector>

#include "core/batch.h"
#include "train/distributed.h"
#include "train/optimizer.h"

namespace qkv {

/// Examples [begin, end) of a batch: every tensor of it cut along its first axis (B).
Batch batch_rows(const Batch& batch, int64_t begin, int64_t end);

/// What one rank measured in its share of a step.
struct RankShare {
  double loss = 0;    // mean loss over this rank's counted targets
  double count = 0;   // the loss's denominator on this rank
  double tokens = 0;  // real tokens of this rank's batch (for tokens/s)
  bool failed = false;
  bool stop = false;  // a stop request (SIGINT, SIGTERM) reached this rank
};

/// The whole batch's values, the same on every rank.
struct BatchTotals {
  double loss = 0;  // mean loss over the whole batch
  double count = 0, tokens = 0;
  bool failed = false;  // some rank failed (its gradient is meaningless; agree_status says who)
  bool stop = false;    // some rank was asked to stop
};

class GradientAverager {
 public:
  GradientAverager(Communicator& comm, OptimParams<float> params);
  /// Collective: replaces every parameter's gradient by the count-weighted average over the
  /// ranks (a gradient no rank defined stays undefined) and returns the batch's totals.
  BatchTotals average(const RankShare& mine);
  /// Bytes each rank contributes to the allreduce per step.
  int64_t bytes_per_step() const { return static_cast<int64_t>(buffer_.size() * sizeof(float)); }
  /// Seconds the last average() spent inside the allreduce.
  double last_allreduce_seconds() const { return allreduce_s_; }

 private:
  Communicator& comm_;
  OptimParams<float> params_;
  std::vector<float> buffer_;  // every gradient, then a defined flag per parameter, then scalars
  double allreduce_s_ = 0;
};

}  // namespace qkv
