// qkv bench: training-step throughput on the four standard configurations (apps/bench.h), as
// a table or one JSON object per configuration; --peer runs bench/torch_peer.py in the
// same run and prints qkv/torch of ms per step, the number to report (absolute times drift
// 15–30 % between runs on shared machines, ratios from one run do not).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>

#include <fmt/core.h>

#include "apps/bench.h"
#include "apps/bench_dist.h"
#include "apps/bench_generate.h"
#include "apps/cli_checks.h"
#include "apps/commands.h"
#include "apps/fma_peak.h"
#include "apps/gemm_backend.h"
#include "core/error.h"

namespace qkv::cli {
namespace {

struct BenchArgs {
  std::string config = "all";
  std::string threads = "best";
  int64_t steps = 0;  // 0 = each configuration's default
  int64_t warmup = 3;
  int64_t seed = 1337;
  int64_t rounds = 0;  // 0 = 3 with --peer, else 1
  bool peer = false, json = false;
};

/// "best" → {1, 2}; N → {N}; anything else names --threads.
std::vector<int> thread_choices(const std::string& s) {
  if (s == "best") return {1, 2};
  size_t used = 0;
  int n = 0;
  try {
    n = std::stoi(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  QKV_CHECK(used == s.size() && n >= 1 && n <= 1024,
            "--threads: expected a number of threads (1 to 1024) or 'best', got '{}'", s);
  return {n};
}

/// "1.25 (torch 1.25x faster)" for r = qkv/torch of ms per step; with several rounds, their range:
/// "0.14 (qkv 7.14x faster; rounds 0.12-0.16)".
std::string ratio_text(double r, const std::vector<double>& rounds) {
  std::string text = r >= 1.0 ? fmt::format("{:.2f} (torch {:.2f}x faster", r, r)
                              : fmt::format("{:.2f} (qkv {:.2f}x faster", r, 1.0 / r);
  if (rounds.size() > 1) {
    const auto [lo, hi] = std::minmax_element(rounds.begin(), rounds.end());
    text += fmt::format("; rounds {:.2f}-{:.2f}", *lo, *hi);
  }
  return text + ")";
}

std::string load_average() {
  double load[3];
  if (::getloadavg(load, 3) != 3) return "unknown";
  return fmt::format("{:.2f} {:.2f} {:.2f}", load[0], load[1], load[2]);
}

/// MFU of `gflops` against `peak` ("-" for no peak).
std::string percent(double gflops, double peak) {
  return peak > 0 ? fmt::format("{:.1f}%", 100.0 * gflops / peak) : std::string("-");
}

/// One round of one configuration on qkv's side: the faster thread count's result, and every
/// thread count's figures for --json.
struct QkvRound {
  BenchResult best;
  nlohmann::json by_threads = nlohmann::json::object();
};

/// {"1": ms, "2": ms}: each thread count's ms/step, from by_threads.
nlohmann::json ms_by_threads(const nlohmann::json& by_threads) {
  nlohmann::json ms = nlohmann::json::object();
  for (const auto& [t, b] : by_threads.items()) ms[t] = b.at("ms_per_step");
  return ms;
}

void run(const BenchArgs& a) {
  const std::vector<int> threads = thread_choices(a.threads);
  const std::vector<const BenchConfig*> configs = bench_config_list(a.config);

  std::optional<std::string> peer;
  if (a.peer) {
    peer = find_torch_peer();
    if (!peer)
      fmt::print(stderr,
                 "qkv bench: no PyTorch peer (bench/torch_peer.py of the source tree, or "
                 "$QKV_TORCH_PEER); continuing without ratios\n");
  }

  // The peak first, each thread count in its own process (as every measurement: this process
  // never enters an OpenMP region, so each child starts clean and its peak RSS is its own).
  // On a busy machine t threads rarely find t free cores at once, so the peak of t threads is at
  // least t times one thread's: MFU is measured against the hardware, not the leftovers.
  std::map<int, double> measured, peak;
  measured[1] = fma_peak_in_child(1);
  for (int t : threads) {
    if (!measured.count(t)) measured[t] = fma_peak_in_child(t);
    peak[t] = std::max(measured[t], t * measured[1]);
  }
  const std::string cpu = cpu_model();
  const int64_t n_rounds = a.rounds > 0 ? a.rounds : peer ? 3 : 1;

  if (!a.json) {
    fmt::print(
        "qkv bench: one training step (zero grad, forward, loss, backward, AdamW), float32; median "
        "ms/step over the timed steps after {} warm-up; threads {}{}\n",
        a.warmup, a.threads == "best" ? "best of 1 and 2" : a.threads,
        n_rounds == 1 ? std::string()
                      : fmt::format("; {} rounds{}, each figure from the median round", n_rounds,
                                    peer ? " alternating qkv and the peer" : ""));
    fmt::print("machine: {}, {} cores online, load average {} (1, 5, 15 min); GEMM: {}\n", cpu,
               ::sysconf(_SC_NPROCESSORS_ONLN), load_average(), gemm_backend());
    std::string peaks;
    for (const auto& [t, g] : peak)
      peaks += fmt::format("{}{:.1f} GFLOP/s at {} thread{}{}", peaks.empty() ? "" : ", ", g, t,
                           t == 1 ? "" : "s",
                           g > measured[t] ? fmt::format(" (measured {:.1f})", measured[t]) : "");
    fmt::print(
        "peak: {} float32 FMA loop, {}; MFU = model FLOPs per step (6·N·tokens + attention, "
        "docs/bench.md) / step time / peak at the same thread count\n",
        fma_isa(), peaks);
    if (peer)
      fmt::print(
          "peer: {} (same models, batch shapes and AdamW; initial values and tokens come from "
          "each side's own RNG: same distributions, different numbers)\n",
          *peer);
    fmt::print("{:<7} {:>9} {:>7} {:>6} {:>4} {:>8} {:>10} {:>11} {:>7} {:>8} {:>6} {:>7}",
               "config", "params", "B x T", "shards", "thr", "steps", "ms/step", "tokens/s",
               "GFLOP", "GFLOP/s", "MFU", "RSS MB");
    if (peer) fmt::print("  {:>13} {:>4} {:>7}  {}", "torch ms/step", "thr", "RSS MB", "qkv/torch");
    fmt::print("\n");
    std::fflush(stdout);
  }

  for (const BenchConfig* c : configs) {
    const int64_t steps = a.steps > 0 ? a.steps : c->steps;
    const double flops = model_flops_per_step(*c);
    // Rounds alternate qkv and the peer, so that both sample the same minutes of a machine whose
    // speed drifts; each side reports its median round, the ratio is the median of the rounds'.
    std::vector<QkvRound> qkv_rounds;
    std::vector<nlohmann::json> torch_rounds;
    for (int64_t i = 0; i < n_rounds; ++i) {
      QkvRound q;
      for (int t : threads) {
        const BenchResult r =
            run_bench_in_child(*c, t, steps, a.warmup, static_cast<uint64_t>(a.seed));
        q.by_threads[std::to_string(t)] = {
            {"ms_per_step", r.ms_per_step}, {"gflops", r.gflops},
            {"peak_gflops", peak[t]},       {"peak_measured_gflops", measured[t]},
            {"mfu", r.gflops / peak[t]},    {"peak_rss_mb", r.peak_rss_mb}};
        if (q.best.threads == 0 || r.ms_per_step < q.best.ms_per_step) q.best = r;
      }
      qkv_rounds.push_back(std::move(q));
      if (!peer) continue;
      try {
        nlohmann::json t = run_torch_peer(*peer, c->name, a.steps, a.warmup);
        if (!t.is_object() || !t.contains("ms_per_step") || !t["ms_per_step"].is_number())
          fail("the peer's JSON has no ms_per_step: {}", t.dump());
        torch_rounds.push_back(std::move(t));
      } catch (const Error& e) {
        fmt::print(stderr, "qkv bench: PyTorch peer unavailable: {}; continuing without ratios\n",
                   e.what());
        peer.reset();
        torch_rounds.clear();
      }
    }
    std::vector<double> qkv_ms, torch_ms, ratios;
    for (const QkvRound& q : qkv_rounds) qkv_ms.push_back(q.best.ms_per_step);
    const QkvRound& mid = qkv_rounds[median_index(qkv_ms)];
    const BenchResult& best = mid.best;
    const nlohmann::json& by_threads = mid.by_threads;
    nlohmann::json torch;
    if (!torch_rounds.empty()) {
      for (size_t i = 0; i < torch_rounds.size(); ++i) {
        torch_ms.push_back(torch_rounds[i]["ms_per_step"].get<double>());
        ratios.push_back(qkv_ms[i] / torch_ms.back());
      }
      torch = torch_rounds[median_index(torch_ms)];
    }
    const bool have_torch = !ratios.empty();
    const double ratio = have_torch ? median(ratios) : 0.0;
    const double best_peak = peak[best.threads];
    const std::string BxT = fmt::format("{}x{}", c->batch, c->seq_len());
    if (a.json) {
      nlohmann::json j = {{"config", c->name},
                          {"threads", best.threads},
                          {"ms_per_step", best.ms_per_step},
                          {"tokens_per_s", best.tokens_per_s},
                          {"min_ms", best.min_ms},
                          {"max_ms", best.max_ms},
                          {"steps", best.steps},
                          {"warmup", best.warmup},
                          {"params", best.params},
                          {"shards", best.shards},
                          {"batch", c->batch},
                          {"seq_len", c->seq_len()},
                          {"loss", best.loss},
                          {"flops_per_step", flops},
                          {"gflops", best.gflops},
                          {"peak_gflops", best_peak},
                          {"mfu", best.gflops / best_peak},
                          {"peak_rss_mb", best.peak_rss_mb},
                          {"isa", fma_isa()},
                          {"gemm", gemm_backend()},
                          {"cpu", cpu},
                          {"ms_per_step_by_threads", ms_by_threads(by_threads)},
                          {"by_threads", by_threads},
                          {"rounds", qkv_ms.size()},
                          {"ms_per_step_by_round", qkv_ms}};
      if (have_torch) {
        const double tm = torch["ms_per_step"].get<double>();
        j["torch_ms_per_step"] = tm;
        j["torch_threads"] = torch.value("threads", 0);
        j["torch_tokens_per_s"] = torch.value("tokens_per_s", 0.0);
        j["torch_loss"] = torch.value("loss", 0.0);
        j["torch_version"] = torch.value("torch", std::string());
        j["torch_flops_per_step"] = torch.value("flops_per_step", 0.0);
        j["torch_gflops"] = torch.value("gflops", 0.0);
        j["torch_peak_rss_mb"] = torch.value("peak_rss_mb", 0.0);
        j["torch_ms_per_step_by_round"] = torch_ms;
        j["ratio_qkv_over_torch"] = ratio;
        j["ratio_by_round"] = ratios;
        j["faster"] = ratio <= 1.0 ? "qkv" : "torch";
        if (torch.value("peak_rss_mb", 0.0) > 0)
          j["rss_qkv_over_torch"] = best.peak_rss_mb / torch["peak_rss_mb"].get<double>();
      }
      fmt::print("{}\n", j.dump());
    } else {
      fmt::print(
          "{:<7} {:>9} {:>7} {:>6} {:>4} {:>8} {:>10.2f} {:>11.0f} {:>7.3f} {:>8.1f} {:>6} "
          "{:>7.0f}",
          c->name, best.params, BxT, best.shards, best.threads,
          fmt::format("{}+{}", best.warmup, best.steps), best.ms_per_step, best.tokens_per_s,
          flops / 1e9, best.gflops, percent(best.gflops, best_peak), best.peak_rss_mb);
      if (have_torch)
        fmt::print("  {:>13.2f} {:>4} {:>7.0f}  {}", torch["ms_per_step"].get<double>(),
                   torch.value("threads", 0), torch.value("peak_rss_mb", 0.0),
                   ratio_text(ratio, ratios));
      fmt::print("\n");
    }
    std::fflush(stdout);
  }
}

}  // namespace

void add_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Training-step throughput on the four standard configurations (docs/bench.md): median ms "
      "per step (zero grad + forward + loss + backward + AdamW), tokens/s, model GFLOP/s, MFU "
      "against the machine's measured FMA peak and peak RSS. --peer runs the "
      "PyTorch peer (bench/torch_peer.py, or $QKV_TORCH_PEER) in the same run and prints the "
      "ratio qkv/torch of ms per step.");
  cmd->add_option("--config", a->config,
                  "tiny, small, medium, large, all, or a list such as medium,large")
      ->check(
          [](const std::string& s) {
            try {
              bench_config_list(s);
              return std::string();
            } catch (const Error& e) {  // without bench_config's "--config: " (CLI11 adds it)
              const std::string m = e.what();
              return m.rfind("--config: ", 0) == 0 ? m.substr(10) : m;
            }
          },
          "CONFIG")
      ->capture_default_str();
  cmd->add_option("--threads", a->threads, "OpenMP threads, or best (the faster of 1 and 2)")
      ->capture_default_str();
  cmd->add_option("--steps", a->steps,
                  "Timed steps (default per config: tiny 300, small 30, medium 15, large 10)")
      ->check(positive_integer());
  cmd->add_option("--warmup", a->warmup, "Untimed steps before the timed ones")
      ->check(non_negative_integer())
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "Seed of the initial parameters and the batch")
      ->check(non_negative_integer())
      ->capture_default_str();
  cmd->add_flag("--peer", a->peer, "Also run the PyTorch peer and print qkv/torch ratios");
  cmd->add_option("--rounds", a->rounds,
                  "Measure each configuration this many times, alternating qkv and the peer; "
                  "report the median round and the median of the rounds' ratios (default 3 with "
                  "--peer, else 1)")
      ->check(integer_in(1, 100));
  cmd->add_flag("--json", a->json, "One JSON object per configuration instead of a table");
  const auto gen = add_generate_bench_options(*cmd);  // --generate: the KV cache's speed-up
  cmd->callback([a, gen] {
    if (gen->on)
      return run_generate_bench_command(*gen, a->config, thread_choices(a->threads).front(),
                                        static_cast<uint64_t>(a->seed), a->json);
    // Under mpirun: data-parallel steps across the ranks (apps/bench_dist.h), 1 thread per rank
    // unless --threads says otherwise.
    if (world().size() > 1)
      return print_rank_bench(world(), bench_config_list(a->config),
                              a->threads == "best" ? 1 : thread_choices(a->threads).front(),
                              a->steps, a->warmup, static_cast<uint64_t>(a->seed), a->json);
    run(*a);
  });
}

}  // namespace qkv::cli
