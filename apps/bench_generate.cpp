#include "apps/bench_generate.h"

#include <omp.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "apps/cli_checks.h"
#include "core/error.h"
#include "core/rng.h"
#include "train/decode.h"

namespace qkv {
namespace {

/// Seconds of one greedy decode of `new_tokens` after `prompt`; the ids land in `out`.
double time_decode(Model<float>& model, const std::vector<int32_t>& prompt, int64_t new_tokens,
                   DecodePath path, std::vector<int32_t>& out) {
  SamplingOptions greedy;
  greedy.temperature = 0;
  Rng unused(0);
  const auto t0 = std::chrono::steady_clock::now();
  out = generate(model, prompt, new_tokens, /*eos_id=*/-1, greedy, unused, {}, path);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

GenerateBenchResult run_generate_bench(const BenchConfig& config, int threads, int64_t prompt_len,
                                       int64_t new_tokens, uint64_t seed) {
  const ModelConfig& c = config.model;
  QKV_CHECK(c.arch == Arch::kDecoder,
            "--config {}: an encoder generates no tokens; use small, medium or large", config.name);
  QKV_CHECK(prompt_len >= 1 && new_tokens >= 1 && prompt_len + new_tokens <= c.max_len,
            "--prompt-len {} and --new-tokens {}: need at least 1 each and at most max_len {} "
            "together (the {} configuration)",
            prompt_len, new_tokens, c.max_len, config.name);
  omp_set_dynamic(0);
  omp_set_num_threads(threads);
  Model<float> model(c, seed);
  model.eval();
  Rng rng(seed + 1);
  std::vector<int32_t> prompt(static_cast<size_t>(prompt_len));
  for (int32_t& id : prompt)  // never <pad> (id 0)
    id = static_cast<int32_t>(1 + rng.below(static_cast<uint64_t>(c.vocab_size - 1)));

  GenerateBenchResult r;
  r.config = config.name;
  r.threads = threads;
  r.prompt_len = prompt_len;
  r.new_tokens = new_tokens;
  std::vector<int32_t> uncached, cached;
  r.uncached_s = time_decode(model, prompt, new_tokens, DecodePath::kUncached, uncached);
  std::vector<double> times;
  for (int i = 0; i < 3; ++i)
    times.push_back(time_decode(model, prompt, new_tokens, DecodePath::kCached, cached));
  r.cached_s = median(times);
  r.same_tokens = cached == uncached;
  r.uncached_tokens_per_s = double(new_tokens) / r.uncached_s;
  r.cached_tokens_per_s = double(new_tokens) / r.cached_s;
  r.speedup = r.uncached_s / r.cached_s;
  Batch one;
  one.tokens = IndexTensor({1, 1}, 1);
  r.cache_bytes = model.begin_decode(one).bytes();
  return r;
}

namespace cli {

std::shared_ptr<GenerateBenchArgs> add_generate_bench_options(CLI::App& bench) {
  auto a = std::make_shared<GenerateBenchArgs>();
  bench.add_flag("--generate", a->on,
                 "Instead of training steps: greedy decoding tokens/s with and without the KV "
                 "cache, in one run (the large configuration unless --config names another; "
                 "threads best = 1)");
  bench.add_option("--prompt-len", a->prompt_len, "--generate: prompt tokens (random ids)")
      ->check(positive_integer())
      ->capture_default_str();
  bench
      .add_option("--new-tokens", a->new_tokens,
                  "--generate: tokens to decode after the prompt (prompt + new <= max_len)")
      ->check(positive_integer())
      ->capture_default_str();
  return a;
}

void run_generate_bench_command(const GenerateBenchArgs& a, const std::string& config, int threads,
                                uint64_t seed, bool json) {
  const BenchConfig& c = bench_config(config == "all" ? "large" : config);
  const GenerateBenchResult r = run_generate_bench(c, threads, a.prompt_len, a.new_tokens, seed);
  if (json) {
    fmt::print("{}\n", nlohmann::json{{"config", r.config},
                                      {"threads", r.threads},
                                      {"prompt_len", r.prompt_len},
                                      {"new_tokens", r.new_tokens},
                                      {"uncached_s", r.uncached_s},
                                      {"cached_s", r.cached_s},
                                      {"uncached_tokens_per_s", r.uncached_tokens_per_s},
                                      {"cached_tokens_per_s", r.cached_tokens_per_s},
                                      {"speedup", r.speedup},
                                      {"same_tokens", r.same_tokens},
                                      {"cache_bytes", r.cache_bytes}}
                           .dump());
    return;
  }
  fmt::print(
      "qkv bench --generate: greedy decoding, {} configuration (random weights), float32, {} "
      "thread{}\nprompt {} random tokens, then {} new: every step's context is {} to {} tokens "
      "(max_len {}); time = the whole decode, the prompt's pass included\n",
      r.config, r.threads, r.threads == 1 ? "" : "s", r.prompt_len, r.new_tokens, r.prompt_len + 1,
      r.prompt_len + r.new_tokens, c.model.max_len);
  fmt::print("{:<24} {:>9} {:>10}\n", "path", "seconds", "tokens/s");
  fmt::print("{:<24} {:>9.3f} {:>10.1f}\n", "whole window (uncached)", r.uncached_s,
             r.uncached_tokens_per_s);
  fmt::print("{:<24} {:>9.3f} {:>10.1f}\n", "KV cache (median of 3)", r.cached_s,
             r.cached_tokens_per_s);
  fmt::print("speed-up {:.1f}x; same tokens: {}; cache {:.1f} MiB\n", r.speedup,
             r.same_tokens ? "yes" : "NO", double(r.cache_bytes) / (1 << 20));
  std::fflush(stdout);
}

}  // namespace cli
}  // namespace qkv
