// qkv bench: see bench.h. The models mirror torch_peer.py's classes line by line:
//
//   torch_peer.py                                   qkv ModelConfig
//   tok_emb + pos_emb.weight[:T] (learned)          pos = "learned", max_len = T
//   Block: x + attn(ln1(x)); x + fc2(gelu_tanh(…))  norm = "pre", activation = "gelu_tanh"
//   Attention: W_Q/W_K/W_V/W_O with bias, causal    arch = "decoder" (causal), n_heads
//   decoder LM head F.linear(x, tok_emb.weight)     tie_embeddings = true
//   encoder head Linear(C, V) on x[:, 0, :]         arch = "encoder", n_out = V, positions = 0
//   init N(0, 0.02), W_O/fc2 N(0, 0.02/√(2L))       Model::reset_parameters (the same rule)
//   AdamW(1e-4, (0.9, 0.999), 1e-8, wd 0)           AdamW<float> with the same options
#include "apps/bench.h"

#include <omp.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <numeric>

#include <fmt/core.h>

#include "apps/fma_peak.h"
#include "core/error.h"
#include "core/rng.h"
#include "nn/random_batch.h"

namespace qkv {
namespace {

BenchConfig make_config(const char* name, const char* arch, int64_t V, int64_t T, int64_t C,
                        int64_t L, int64_t H, int64_t d_ff, int64_t B, int64_t steps) {
  BenchConfig c;
  c.name = name;
  c.model.arch = parse_arch(arch);
  c.model.vocab_size = V;
  c.model.max_len = T;
  c.model.d_model = C;
  c.model.n_layers = L;
  c.model.n_heads = H;
  c.model.d_ff = d_ff;
  c.model.activation = "gelu_tanh";
  c.model.norm = "pre";
  c.model.pos = "learned";
  c.model.tie_embeddings = c.model.arch == Arch::kDecoder;
  c.model.n_out = V;
  c.model.dropout = 0.0;
  c.model = c.model.resolved();
  c.model.validate();
  c.batch = B;
  c.steps = steps;
  return c;
}

}  // namespace

const std::vector<BenchConfig>& bench_configs() {
  // The table of docs/bench.md; steps as the PyTorch peer's defaults.
  static const std::vector<BenchConfig> configs = {
      make_config("tiny", "encoder", 64, 16, 32, 1, 1, 64, 64, 300),
      make_config("small", "decoder", 256, 64, 128, 2, 4, 512, 16, 30),
      make_config("medium", "decoder", 1024, 128, 256, 4, 4, 1024, 8, 15),
      make_config("large", "decoder", 4096, 256, 512, 4, 8, 2048, 4, 10),
  };
  return configs;
}

const BenchConfig& bench_config(const std::string& name) {
  for (const BenchConfig& c : bench_configs())
    if (c.name == name) return c;
  fail("--config: unknown configuration '{}'; choose tiny, small, medium, large or all", name);
}

double model_flops_per_step(const BenchConfig& config) {
  const ModelConfig& m = config.model;
  const double B = static_cast<double>(config.batch), T = static_cast<double>(config.seq_len());
  const double C = static_cast<double>(m.d_model), F = static_cast<double>(m.d_ff);
  const double V = static_cast<double>(m.vocab_size), L = static_cast<double>(m.n_layers);
  const double per_token = 6 * L * (4 * C * C + 2 * C * F) + 12 * L * T * C;
  const double head = m.arch == Arch::kDecoder ? 6 * V * C * B * T : 6 * C * V * B;
  return per_token * B * T + head;
}

Batch bench_batch(const BenchConfig& config, uint64_t seed) {
  Rng rng(seed);
  RandomBatchOptions o;
  o.batch_size = config.batch;
  o.seq_len = config.seq_len();
  o.padded = false;
  o.next_token = true;
  o.read_out = 0;
  return random_batch(config.model, rng, o);
}

BenchStep::BenchStep(const BenchConfig& config, uint64_t seed)
    : model_(std::make_unique<Model<float>>(config.model, seed)),
      batch_(bench_batch(config, seed + 7)) {
  AdamWOptions o;
  o.lr = 1e-4;
  o.beta1 = 0.9;
  o.beta2 = 0.999;
  o.eps = 1e-8;
  o.weight_decay = 0.0;
  o.decays = [](const std::string&) { return true; };  // one group, as torch.optim.AdamW
  optimizer_ = std::make_unique<AdamW<float>>(model_->named_parameters(), o);
  TrainConfig train;
  train.batch_size = config.batch;
  shards_ =
      std::make_unique<ThreadShards>(resolve_shards(train, *model_), model_->named_parameters());
}

double BenchStep::step() {
  optimizer_->zero_grad();
  // Each shard's graph is freed as its backward ends, inside the timed step (PyTorch
  // frees it in backward).
  const double loss = shards_->run(batch_, *model_).loss;
  optimizer_->step();
  return loss;
}

double median(std::vector<double> v) {
  QKV_CHECK(!v.empty(), "median: no values");
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

size_t median_index(const std::vector<double>& v) {
  QKV_CHECK(!v.empty(), "median: no values");
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&v](size_t i, size_t j) { return v[i] < v[j]; });
  return order[(v.size() - 1) / 2];
}

BenchResult run_bench(const BenchConfig& config, int threads, int64_t steps, int64_t warmup,
                      uint64_t seed) {
  QKV_CHECK(threads > 0, "--threads: expected a positive number, got {}", threads);
  QKV_CHECK(steps > 0, "--steps: expected a positive number, got {}", steps);
  QKV_CHECK(warmup >= 0, "--warmup: expected a number >= 0, got {}", warmup);
  omp_set_dynamic(0);
  omp_set_num_threads(threads);
  BenchStep s(config, seed);
  BenchResult r;
  r.config = config.name;
  r.threads = threads;
  r.steps = steps;
  r.warmup = warmup;
  r.params = s.model().num_parameters();
  r.shards = s.shards();
  std::vector<double> ms;
  for (int64_t i = 0; i < warmup + steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    r.loss = s.step();
    const auto t1 = std::chrono::steady_clock::now();
    if (i >= warmup) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  r.ms_per_step = median(ms);
  r.min_ms = *std::min_element(ms.begin(), ms.end());
  r.max_ms = *std::max_element(ms.begin(), ms.end());
  r.tokens_per_s = static_cast<double>(config.batch * config.seq_len()) / (r.ms_per_step / 1000.0);
  r.gflops = model_flops_per_step(config) / (r.ms_per_step / 1000.0) / 1e9;
  return r;
}

namespace {

/// What a child measured, and its peak resident set.
struct ChildRun {
  nlohmann::json out;
  double peak_rss_mb = 0;
};

/// Runs fn() in a forked child that sends its JSON back through a pipe; a qkv::Error in the
/// child is thrown again here with its message.
ChildRun in_child(const std::function<nlohmann::json()>& fn) {
  int fds[2];
  QKV_CHECK(::pipe(fds) == 0, "cannot create a pipe for the benchmark process: {}",
            std::strerror(errno));
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    fail("cannot start the benchmark process: {}", std::strerror(errno));
  }
  if (pid == 0) {
    ::close(fds[0]);
    int status = 0;
    std::string text;
    try {
      text = fn().dump();
    } catch (const std::exception& e) {
      text = nlohmann::json{{"error", e.what()}}.dump();
      status = 1;
    }
    for (size_t done = 0; done < text.size();) {
      const ssize_t n = ::write(fds[1], text.data() + done, text.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::_exit(status);
  }
  ::close(fds[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  struct rusage ru {};
  while (::wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  ChildRun r;
  r.peak_rss_mb = static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
  try {
    r.out = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    fail("the benchmark process ended without a result ({})",
         WIFSIGNALED(status) ? fmt::format("signal {}", WTERMSIG(status))
                             : fmt::format("exit status {}", WEXITSTATUS(status)));
  }
  if (r.out.contains("error")) fail("{}", r.out["error"].get<std::string>());
  return r;
}

}  // namespace

BenchResult run_bench_in_child(const BenchConfig& config, int threads, int64_t steps,
                               int64_t warmup, uint64_t seed) {
  const ChildRun c = in_child([&] {
    const BenchResult r = run_bench(config, threads, steps, warmup, seed);
    return nlohmann::json{
        {"params", r.params}, {"shards", r.shards}, {"ms_per_step", r.ms_per_step},
        {"min_ms", r.min_ms}, {"max_ms", r.max_ms}, {"tokens_per_s", r.tokens_per_s},
        {"loss", r.loss},     {"gflops", r.gflops}};
  });
  BenchResult r;
  r.config = config.name;
  r.threads = threads;
  r.steps = steps;
  r.warmup = warmup;
  r.params = c.out.at("params").get<int64_t>();
  r.shards = c.out.at("shards").get<int>();
  r.ms_per_step = c.out.at("ms_per_step").get<double>();
  r.min_ms = c.out.at("min_ms").get<double>();
  r.max_ms = c.out.at("max_ms").get<double>();
  r.tokens_per_s = c.out.at("tokens_per_s").get<double>();
  r.loss = c.out.at("loss").get<double>();
  r.gflops = c.out.at("gflops").get<double>();
  r.peak_rss_mb = c.peak_rss_mb;
  return r;
}

double fma_peak_in_child(int threads) {
  return in_child([&] {
           return nlohmann::json{{"gflops", fma_peak_gflops(threads)}};
         })
      .out.at("gflops")
      .get<double>();
}

std::optional<std::string> find_torch_peer() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("QKV_TORCH_PEER"); env && *env) return std::string(env);
  // The repository's bench/torch_peer.py: above this source file (the source tree) or above the
  // program (build/qkv lies in the source tree).
  std::vector<fs::path> starts = {fs::path(__FILE__).parent_path()};
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) starts.push_back(exe.parent_path());
  for (const fs::path& start : starts)
    for (fs::path p = start; !p.empty(); p = p.parent_path()) {
      const fs::path peer = p / "bench" / "torch_peer.py";
      if (fs::is_regular_file(peer, ec)) return fs::weakly_canonical(peer, ec).string();
      if (p == p.parent_path()) break;
    }
  return std::nullopt;
}

namespace {

struct Captured {
  int status = -1;
  std::string out;
};

/// Runs a shell command, its stderr joined to stdout.
Captured capture(const std::string& cmd) {
  Captured c;
  FILE* f = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return c;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) c.out.append(buf.data(), n);
  const int raw = ::pclose(f);
  c.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return c;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

/// The last non-empty line of `text`.
std::string last_line(const std::string& text) {
  size_t end = text.find_last_not_of("\n\r ");
  if (end == std::string::npos) return "(no output)";
  const size_t begin = text.rfind('\n', end);
  return text.substr(begin == std::string::npos ? 0 : begin + 1, end + 1 - (begin + 1));
}

}  // namespace

nlohmann::json run_torch_peer(const std::string& peer, const std::string& config, int64_t steps,
                              int64_t warmup) {
  const std::string python = "/usr/bin/python3";
  QKV_CHECK(::access(python.c_str(), X_OK) == 0, "{} not found; install python3 and python3-torch",
            python);
  QKV_CHECK(std::filesystem::is_regular_file(peer), "peer script '{}' not found", peer);
  static bool torch_found = false;  // probed once per process: importing torch takes seconds
  if (!torch_found) {
    const Captured probe = capture(python + " -c 'import torch'");
    QKV_CHECK(probe.status == 0,
              "torch cannot be imported by {} ({}); apt-get install python3-torch", python,
              last_line(probe.out));
    torch_found = true;
  }
  std::string cmd = python + " " + shell_quote(peer) + " --config " + shell_quote(config) +
                    " --threads best --json";
  if (steps > 0) cmd += fmt::format(" --steps {}", steps);
  if (warmup >= 0) cmd += fmt::format(" --warmup {}", warmup);
  const Captured run = capture(cmd);
  QKV_CHECK(run.status == 0, "the peer failed (exit {}): {}", run.status, last_line(run.out));
  const std::string line = last_line(run.out);
  try {
    return nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception&) {
    fail("the peer printed no JSON line: {}", line);
  }
}

}  // namespace qkv
