#include "apps/bench_dist.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <fmt/core.h>

#include "core/error.h"
#include "train/data_parallel.h"
#include "train/evaluate.h"

namespace qkv {
namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::vector<const BenchConfig*> bench_config_list(const std::string& names) {
  std::vector<const BenchConfig*> out;
  if (names == "all") {
    for (const BenchConfig& c : bench_configs()) out.push_back(&c);
    return out;
  }
  size_t start = 0;
  while (start <= names.size()) {
    const size_t comma = std::min(names.find(',', start), names.size());
    out.push_back(&bench_config(names.substr(start, comma - start)));
    start = comma + 1;
  }
  return out;
}

RankBenchResult run_rank_bench(Communicator& comm, const BenchConfig& config, int threads,
                               int64_t steps, int64_t warmup, uint64_t seed) {
  QKV_CHECK(config.batch >= comm.size(),
            "--config {}: a batch of {} cannot be shared by {} ranks; run fewer ranks", config.name,
            config.batch, comm.size());
  omp_set_dynamic(0);
  omp_set_num_threads(threads);
  // The model, optimizer and batch of BenchStep, every rank from the same seed.
  Model<float> model(config.model, seed);
  AdamWOptions o;
  o.lr = 1e-4;
  o.weight_decay = 0.0;
  o.decays = [](const std::string&) { return true; };
  AdamW<float> optimizer(model.named_parameters(), o);
  const Batch whole = bench_batch(config, seed + 7);
  const int64_t B = config.batch, r = comm.rank(), N = comm.size();
  const Batch mine = batch_rows(whole, B * r / N, B * (r + 1) / N);
  GradientAverager averager(comm, model.named_parameters());

  RankBenchResult res;
  res.config = config.name;
  res.ranks = comm.size();
  res.threads = threads;
  res.steps = steps;
  res.warmup = warmup;
  res.params = model.num_parameters();
  res.bytes_reduced = averager.bytes_per_step();
  res.ring_bytes_per_rank = 2.0 * double(N - 1) / double(N) * double(res.bytes_reduced);
  std::vector<double> step_ms, reduce_ms;
  for (int64_t i = 0; i < warmup + steps; ++i) {
    comm.barrier();  // every rank starts the step together
    const auto t0 = std::chrono::steady_clock::now();
    optimizer.zero_grad();
    RankShare share;
    {
      ForwardResult<float> f = model.forward(mine);
      share.loss = f.loss.item();
      f.loss.backward();
    }
    share.count = double(count_targets(mine));
    res.loss = averager.average(share).loss;
    optimizer.step();
    // The step of the job is the slowest rank's: the maximum over ranks, as a sum of one slot.
    std::vector<double> all(static_cast<size_t>(N), 0.0);
    all[static_cast<size_t>(r)] = ms_since(t0);
    comm.allreduce_sum(all.data(), N);
    if (i >= warmup) {
      step_ms.push_back(*std::max_element(all.begin(), all.end()));
      reduce_ms.push_back(1000.0 * averager.last_allreduce_seconds());
    }
  }
  res.ms_per_step = median(step_ms);
  res.allreduce_ms = median(reduce_ms);
  res.tokens_per_s = double(B * config.seq_len()) / (res.ms_per_step / 1000.0);
  return res;
}

void print_rank_bench(Communicator& comm, const std::vector<const BenchConfig*>& configs,
                      int threads, int64_t steps, int64_t warmup, uint64_t seed, bool json) {
  const bool speaks = comm.rank() == 0;
  if (speaks && !json) {
    fmt::print(
        "qkv bench across {} ranks × {} thread{}: one data-parallel training step (forward and "
        "backward of each rank's share of the batch, one gradient allreduce, AdamW), float32; "
        "median over the timed steps after {} warm-up\n",
        comm.size(), threads, threads == 1 ? "" : "s", warmup);
    fmt::print("{:<7} {:>9} {:>7} {:>5} {:>8} {:>10} {:>11} {:>13} {:>7} {:>11} {:>12}\n", "config",
               "params", "B x T", "ranks", "steps", "ms/step", "tokens/s", "allreduce ms", "share",
               "bytes", "ring B/rank");
    std::fflush(stdout);
  }
  for (const BenchConfig* c : configs) {
    const RankBenchResult r =
        run_rank_bench(comm, *c, threads, steps > 0 ? steps : c->steps, warmup, seed);
    if (!speaks) continue;
    const double share = r.allreduce_ms / r.ms_per_step;
    if (json) {
      fmt::print(
          "{{\"config\": \"{}\", \"ranks\": {}, \"threads\": {}, \"ms_per_step\": {:.3f}, "
          "\"tokens_per_s\": {:.1f}, \"allreduce_ms\": {:.3f}, \"allreduce_share\": {:.4f}, "
          "\"bytes_reduced\": {}, \"ring_bytes_per_rank\": {:.0f}, \"params\": {}, \"steps\": {}, "
          "\"warmup\": {}, \"loss\": {:.6f}}}\n",
          r.config, r.ranks, r.threads, r.ms_per_step, r.tokens_per_s, r.allreduce_ms, share,
          r.bytes_reduced, r.ring_bytes_per_rank, r.params, r.steps, r.warmup, r.loss);
    } else {
      fmt::print(
          "{:<7} {:>9} {:>7} {:>5} {:>8} {:>10.2f} {:>11.0f} {:>13.2f} {:>6.1f}% {:>11} "
          "{:>12.0f}\n",
          r.config, r.params, fmt::format("{}x{}", c->batch, c->seq_len()), r.ranks,
          fmt::format("{}+{}", r.warmup, r.steps), r.ms_per_step, r.tokens_per_s, r.allreduce_ms,
          100 * share, r.bytes_reduced, r.ring_bytes_per_rank);
    }
    std::fflush(stdout);
  }
}

}  // namespace qkv
