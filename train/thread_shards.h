// ThreadShards: data parallelism inside one process. A step's batch is cut into S shards of
// consecutive examples; their forwards and backwards run at the same time on separate threads,
// each into its own parameter gradients (LeafGradScope), and the gradients are then summed
// weighted by each shard's loss denominator, as the ranks of a data-parallel run do
// (train/data_parallel.h):
//
//   ThreadShards shards(2, model.named_parameters());
//   optimizer.zero_grad();
//   ShardTotals t = shards.run(batch, model);  // forward, loss and backward of each shard
//   optimizer.step();                          // .grad holds the whole batch's gradient
//
// Why: a small model's ops are too small to share between threads (each parallel loop costs a
// wake-up of the other thread), but half a batch is plenty. One fork and one join per step.
//
// The result depends on S, never on the thread count: the shards are cut by the batch alone, a
// shard's result does not depend on the thread that runs it (an op's OpenMP loop inside a shard
// is a nested region, run by that thread alone), and the sum runs over the shards in order. With
// S = 1 the step is the plain one: gradients straight into .grad.
//
// The model must allow concurrent forwards: it may read its parameters, but must neither draw
// from a generator it holds nor store anything in a member. Dropout draws, so a model with
// dropout takes S = 1 (resolve_shards below); Model keeps attention maps only when asked to
// and hands them over in the result.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <vector>

#include "core/batch.h"
#include "nn/batch_model.h"
#include "train/optimizer.h"
#include "train/run_config.h"

namespace qkv {

/// What a sharded step measured, over the whole batch.
struct ShardTotals {
  double loss = 0;    // mean loss over the counted targets (Σ n_s · loss_s / Σ n_s)
  double count = 0;   // the loss's denominator (counted targets; examples for an encoder)
  double tokens = 0;  // real tokens
};

class ThreadShards {
 public:
  /// shards ≥ 1; params: every parameter whose gradient the step computes.
  ThreadShards(int shards, OptimParams<float> params);
  int shards() const { return shards_; }
  /// Runs forward_backward(shard) (which returns the shard's mean loss) for every shard that
  /// counts at least one target, on up to shards() threads, then adds Σ_s (n_s / N) · g_s into
  /// each parameter's .grad. An exception from any shard is rethrown (the first shard's first)
  /// after every shard has ended, before any gradient is changed.
  ShardTotals run(const Batch& batch, const std::function<double(const Batch&)>& forward_backward);
  /// run() with the training step's forward_backward: model.forward(shard), then backward of its
  /// loss (each shard's graph is freed as its backward ends).
  ShardTotals run(const Batch& batch, BatchModel<float>& model);

 private:
  /// One shard's part of a step; kept between steps, so a step allocates no vectors of its own.
  struct Shard {
    Batch part;
    double count = 0, loss = 0;
    std::vector<Tensor<float>> grads;  // per parameter, from the shard's LeafGradScope
    std::exception_ptr error;
  };
  int shards_;
  OptimParams<float> params_;
  std::vector<Shard> state_;
};

/// Model FLOPs per step (6 · parameters · batch_size · max_len) at or below which auto
/// (train.shards = 0) runs 2 shards. The tiny bench configuration and the pronoun task are below
/// it; `qkv bench --config small` (about 3 GFLOP) ran slower in 2 shards than in one with its ops
/// on both threads (docs/bench.md).
inline constexpr double kAutoShardWork = 1.5e9;

/// train.shards for `model`: the configured count, or for 0 (auto) 2 when `model` is a Model
/// without dropout whose step is at most kAutoShardWork, else 1. A function of the
/// configuration only, never of the machine or the thread count. Throws qkv::Error when more
/// than one shard is asked of a model with dropout (its one generator cannot serve two threads).
int resolve_shards(const TrainConfig& train, const BatchModel<float>& model);

}  // namespace qkv
