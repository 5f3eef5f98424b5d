// qkv bench across ranks (`mpirun -np N qkv bench`): one data-parallel training step of a
// standard configuration (apps/bench.h), each rank on its share of the global batch, with the
// gradient allreduce of `qkv train` (train/data_parallel.h) timed on its own.
//
//   RankBenchResult r = run_rank_bench(world(), bench_config("large"), /*threads=*/1, 10, 3, 1337);
//   r.allreduce_ms / r.ms_per_step;  // the allreduce's share of the step
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "apps/bench.h"
#include "train/distributed.h"

namespace qkv {

/// The configurations named by --config: one name, "all", or a comma-separated list
/// ("medium,large"); throws qkv::Error naming --config and the known names.
std::vector<const BenchConfig*> bench_config_list(const std::string& names);

struct RankBenchResult {
  std::string config;
  int ranks = 1, threads = 1;  // threads per rank
  int64_t steps = 0, warmup = 0, params = 0;
  double ms_per_step = 0;     // median over the timed steps (the slowest rank's, as the ranks wait)
  double allreduce_ms = 0;    // median time inside the allreduce, on rank 0
  double tokens_per_s = 0;    // global B·T / ms_per_step
  int64_t bytes_reduced = 0;  // the allreduce buffer: 4 bytes × (parameters + a few scalars)
  /// Bytes each rank sends (and receives) per step in a ring allreduce: 2·(N−1)/N × the buffer.
  double ring_bytes_per_rank = 0;
  double loss = 0;  // of the last step, over the whole batch
};

/// Collective: every rank builds `config` from `seed` and trains it on its contiguous share of the
/// global batch (config.batch rows; at least one per rank), `warmup` untimed and `steps` timed
/// steps with `threads` OpenMP threads per rank.
RankBenchResult run_rank_bench(Communicator& comm, const BenchConfig& config, int threads,
                               int64_t steps, int64_t warmup, uint64_t seed);

/// `qkv bench` under mpirun: run_rank_bench for each configuration, a table (or JSON lines) from
/// rank 0.
void print_rank_bench(Communicator& comm, const std::vector<const BenchConfig*>& configs,
                      int threads, int64_t steps, int64_t warmup, uint64_t seed, bool json);

}  // namespace qkv
