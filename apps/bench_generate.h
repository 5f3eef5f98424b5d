// qkv bench --generate: decoding speed with and without the KV cache, measured in one run on a
// standard configuration with random weights (the speed does not depend on the values).
//
//   GenerateBenchResult r = run_generate_bench(bench_config("large"), /*threads=*/1,
//                                              /*prompt_len=*/192, /*new_tokens=*/64, 1337);
//   r.speedup;  // uncached seconds / cached seconds, for the same tokens
//
// Both paths decode greedily from the same prompt of uniform random tokens, so the context grows
// from prompt_len + 1 to prompt_len + new_tokens (at most max_len: no sliding); the time of each
// is the whole decode() call, the prompt's forward pass included.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "apps/bench.h"

namespace qkv {

struct GenerateBenchResult {
  std::string config;
  int threads = 0;
  int64_t prompt_len = 0, new_tokens = 0;
  double uncached_s = 0, cached_s = 0;  // seconds per decode() call (cached: the median of 3)
  double uncached_tokens_per_s = 0, cached_tokens_per_s = 0;
  double speedup = 0;        // uncached_s / cached_s
  bool same_tokens = false;  // both paths chose the same ids
  int64_t cache_bytes = 0;   // the KV cache of one sequence
};

/// Greedy decoding of `new_tokens` after a random prompt of `prompt_len`, uncached once and
/// cached three times, with `threads` OpenMP threads. Throws qkv::Error naming --config for an
/// encoder and --prompt-len / --new-tokens when they do not fit max_len.
GenerateBenchResult run_generate_bench(const BenchConfig& config, int threads, int64_t prompt_len,
                                       int64_t new_tokens, uint64_t seed);

namespace cli {

/// The options `qkv bench --generate` adds to `qkv bench`.
struct GenerateBenchArgs {
  bool on = false;           // --generate
  int64_t prompt_len = 192;  // --prompt-len
  int64_t new_tokens = 64;   // --new-tokens
};

/// Registers --generate, --prompt-len and --new-tokens on the bench subcommand.
std::shared_ptr<GenerateBenchArgs> add_generate_bench_options(CLI::App& bench);

/// Runs and prints the decoding benchmark: `config` "all" means large; a table, or one JSON
/// object with --json.
void run_generate_bench_command(const GenerateBenchArgs& a, const std::string& config, int threads,
                                uint64_t seed, bool json);

}  // namespace cli
}  // namespace qkv
