// qkv bench: training-step throughput on the four standard configurations (docs/bench.md), the
// same models, batches and optimizer as the PyTorch peer script, so the two can be run side by
// side and compared as a ratio measured in one run.
//
//   BenchConfig c = bench_config("small");
//   BenchResult r = run_bench(c, /*threads=*/2, /*steps=*/30, /*warmup=*/3, /*seed=*/1337);
//   r.ms_per_step;  // median over the timed steps
//
// One timed step = zero_grad + forward + loss + backward + AdamW step, on one fixed batch.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/batch.h"
#include "nn/config.h"
#include "nn/model.h"
#include "train/optimizer.h"
#include "train/thread_shards.h"

namespace qkv {

/// One row of the benchmark table (docs/bench.md), as a qkv model config and a batch size.
struct BenchConfig {
  std::string name;   // "tiny" | "small" | "medium" | "large"
  ModelConfig model;  // resolved: arch, vocab_size V, max_len T, d_model C, layers, heads, d_ff
  int64_t batch = 0;  // B
  int64_t steps = 0;  // default timed steps (the peer's)
  int64_t seq_len() const { return model.max_len; }
};

/// The four configurations in the table's order: tiny (encoder), small, medium, large (decoders).
const std::vector<BenchConfig>& bench_configs();
/// The configuration called `name`; throws qkv::Error naming --config and the known names.
const BenchConfig& bench_config(const std::string& name);

/// Model FLOPs of one training step, counted as the PyTorch peer counts them (PaLM's convention):
/// per token 6·N_mm, where N_mm are the weights of the products (per layer W_Q, W_K, W_V, W_O:
/// 4·C², fc1 and fc2: 2·C·d_ff; the decoder's LM head V·C), plus attention 12·L·T·C (forward
/// S = Q·Kᵀ and P·V, 2·T·C each, backward twice that; the causal half is not subtracted); times
/// B·T tokens. The encoder's head runs on one position per example: 6·C·V·B. Embedding lookups,
/// layer norms, biases, softmax and the optimizer are not counted.
double model_flops_per_step(const BenchConfig& config);

/// random_batch (nn/random_batch.h) of `config` from an Rng seeded by `seed`, unpadded. Decoder:
/// B·T+1 uniform tokens, inputs the first B·T and targets the last B·T (next-token prediction, as
/// the peer). Encoder: tokens [B, T] and targets [B] uniform, read out at position 0.
Batch bench_batch(const BenchConfig& config, uint64_t seed);

/// The model, AdamW(lr 1e-4, betas 0.9/0.999, eps 1e-8, weight decay 0) and batch of one
/// configuration: step() is one full training step and returns its loss.
class BenchStep {
 public:
  BenchStep(const BenchConfig& config, uint64_t seed);
  /// zero_grad + forward + loss + backward + optimizer step; returns the loss before the update.
  double step();
  Model<float>& model() { return *model_; }
  const Batch& batch() const { return batch_; }
  /// The batch shards of the step: what `qkv train` runs for this model and batch (train.shards
  /// auto, train/thread_shards.h).
  int shards() const { return shards_->shards(); }

 private:
  std::unique_ptr<Model<float>> model_;
  std::unique_ptr<AdamW<float>> optimizer_;
  std::unique_ptr<ThreadShards> shards_;
  Batch batch_;
};

/// Timings of one configuration at one thread count.
struct BenchResult {
  std::string config;
  int threads = 0;
  int64_t steps = 0, warmup = 0;
  int64_t params = 0;
  int shards = 1;          // batch shards per step (BenchStep::shards)
  double ms_per_step = 0;  // median of the timed steps
  double min_ms = 0, max_ms = 0;
  double tokens_per_s = 0;  // B·T / median step time
  double loss = 0;          // of the last step
  double gflops = 0;        // model_flops_per_step / median step time, in 1e9 FLOP/s
  double peak_rss_mb = 0;   // the measuring process's peak resident set (run_bench_in_child)
};

/// Builds `config` (seeded by `seed`), runs `warmup` untimed and `steps` timed training steps with
/// `threads` OpenMP threads (set for the whole process), timing each with a steady clock.
BenchResult run_bench(const BenchConfig& config, int threads, int64_t steps, int64_t warmup,
                      uint64_t seed);

/// run_bench in a forked child process, so that peak_rss_mb (the child's ru_maxrss, from wait4)
/// is this configuration's alone: the child starts as a copy of the program before any model
/// exists. Call it before this process enters any OpenMP region (a forked child cannot use the
/// parent's OpenMP threads). Throws qkv::Error with the child's message when it fails.
BenchResult run_bench_in_child(const BenchConfig& config, int threads, int64_t steps,
                               int64_t warmup, uint64_t seed);

/// fma_peak_gflops(threads) (apps/fma_peak.h) in a forked child, for the same reason.
double fma_peak_in_child(int threads);

/// The median of `v` (mean of the two middle values for an even count, as Python's statistics).
double median(std::vector<double> v);

/// The index of v's median element: for an even count the lower of the two middle ones, so that it
/// names a measurement that was made (a round of `qkv bench --rounds`); ties go to the earlier.
size_t median_index(const std::vector<double>& v);

/// The PyTorch peer script: $QKV_TORCH_PEER if set, else bench/torch_peer.py of the source tree
/// (found above this source file or above the running program); nullopt when none exists.
std::optional<std::string> find_torch_peer();

/// Runs `/usr/bin/python3 PEER --config NAME --threads best --json` (plus --steps / --warmup when
/// > 0) and returns its JSON line; throws qkv::Error with one line saying why it could not.
nlohmann::json run_torch_peer(const std::string& peer, const std::string& config, int64_t steps,
                              int64_t warmup);

}  // namespace qkv
