// qkv bench: the configurations are docs/bench.md's table (parameter counts by the GPT-2 formula,
// not by qkv's own param_count), a bench step is a real training step (parameters move, the loss of
// repeated steps on one batch falls), and the program prints parsable JSON or exits 2 naming the
// bad flag. No timing assertions: speed is measured by `qkv bench`, not by tests.
#include "apps/bench.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "run_qkv.h"
#include "test_files.h"

namespace qkv {
namespace {

/// GPT-2 parameters by hand: embeddings, per block 2 LayerNorms + 4 biased C×C projections +
/// fc1 (C→F) + fc2 (F→C), final LayerNorm; a separate biased head only when not tied.
int64_t gpt2_params(int64_t V, int64_t T, int64_t C, int64_t L, int64_t F, bool tied) {
  const int64_t ln = 2 * C;
  const int64_t block = ln + 4 * (C * C + C) + ln + (C * F + F) + (F * C + C);
  return V * C + T * C + L * block + ln + (tied ? 0 : C * V + V);
}

TEST(BenchConfigs, AreDesignTable) {
  struct Row {
    const char* name;
    const char* arch;
    int64_t V, T, C, L, H, F, B;
  };
  const Row rows[] = {{"tiny", "encoder", 64, 16, 32, 1, 1, 64, 64},
                      {"small", "decoder", 256, 64, 128, 2, 4, 512, 16},
                      {"medium", "decoder", 1024, 128, 256, 4, 4, 1024, 8},
                      {"large", "decoder", 4096, 256, 512, 4, 8, 2048, 4}};
  ASSERT_EQ(bench_configs().size(), 4u);
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    const BenchConfig& c = bench_config(r.name);
    EXPECT_EQ(arch_name(c.model.arch), std::string(r.arch));
    EXPECT_EQ(c.model.vocab_size, r.V);
    EXPECT_EQ(c.model.max_len, r.T);
    EXPECT_EQ(c.model.d_model, r.C);
    EXPECT_EQ(c.model.n_layers, r.L);
    EXPECT_EQ(c.model.n_heads, r.H);
    EXPECT_EQ(c.model.d_ff, r.F);
    EXPECT_EQ(c.batch, r.B);
    EXPECT_EQ(c.model.activation, "gelu_tanh");
    EXPECT_EQ(c.model.norm, "pre");
    EXPECT_EQ(c.model.pos, "learned");
    EXPECT_EQ(c.model.tie_embeddings, std::string(r.arch) == "decoder");
    EXPECT_EQ(c.model.dropout, 0.0);
    const bool tied = std::string(r.arch) == "decoder";
    Model<float> model(c.model, 1);
    EXPECT_EQ(model.num_parameters(), gpt2_params(r.V, r.T, r.C, r.L, r.F, tied));
  }
  // As torch_peer.py counts them: small = 256·128 + 64·128 + 2·198272 + 256.
  EXPECT_EQ(Model<float>(bench_config("small").model, 1).num_parameters(), 437760);
}

/// One GEMM [m, k] · [k, n], `count` times, in the forward pass.
struct Gemm {
  double m, k, n, count;
};

/// Model FLOPs by listing the forward GEMMs of one step: backward does two GEMMs of the same
/// size for each (dX and dW, or dA and dB), so a step is 3 × 2·m·k·n per forward GEMM.
double flops_from_gemms(const BenchConfig& c) {
  const ModelConfig& m = c.model;
  const double B = c.batch, T = m.max_len, C = m.d_model, F = m.d_ff, V = m.vocab_size;
  const double L = m.n_layers, H = m.n_heads, d_k = C / H;
  std::vector<Gemm> gemms = {
      {B * T, C, C, 4 * L},    // W_Q, W_K, W_V, W_O
      {B * T, C, F, L},        // fc1
      {B * T, F, C, L},        // fc2
      {T, d_k, T, B * H * L},  // S = Q·Kᵀ per head
      {T, T, d_k, B * H * L},  // P·V per head
  };
  if (m.arch == Arch::kDecoder)
    gemms.push_back({B * T, C, V, 1});  // the tied LM head at every position
  else
    gemms.push_back({B, C, V, 1});  // the encoder's head at position 0
  double flops = 0;
  for (const Gemm& g : gemms) flops += 3 * 2 * g.m * g.k * g.n * g.count;
  return flops;
}

TEST(BenchFlops, AreTheGemmsOfOneStep) {
  for (const BenchConfig& c : bench_configs()) {
    SCOPED_TRACE(c.name);
    EXPECT_DOUBLE_EQ(model_flops_per_step(c), flops_from_gemms(c));
  }
  // The large step of the issue that set the MFU targets: about 96.6 GFLOP.
  EXPECT_NEAR(model_flops_per_step(bench_config("large")) / 1e9, 96.6, 0.05);
}

TEST(BenchConfigs, UnknownNameNamesTheFlag) {
  EXPECT_EQ(test::error_of([] { bench_config("huge"); }),
            "--config: unknown configuration 'huge'; choose tiny, small, medium, large or all");
}

TEST(BenchBatch, ShapesAndNextTokenTargets) {
  const BenchConfig& small = bench_config("small");
  const Batch b = bench_batch(small, 3);
  ASSERT_EQ(b.tokens.shape, Shape({16, 64}));
  ASSERT_EQ(b.targets.shape, Shape({16, 64}));
  for (int64_t i = 0; i + 1 < b.tokens.numel(); ++i) EXPECT_EQ(b.targets[i], b.tokens[i + 1]);
  for (int32_t t : b.tokens.data) EXPECT_TRUE(t >= 0 && t < 256);
  EXPECT_EQ(bench_batch(small, 3).tokens.data, b.tokens.data);  // seeded
  EXPECT_NE(bench_batch(small, 4).tokens.data, b.tokens.data);

  const Batch e = bench_batch(bench_config("tiny"), 3);
  EXPECT_EQ(e.tokens.shape, Shape({64, 16}));
  EXPECT_EQ(e.targets.shape, Shape({64}));
  EXPECT_EQ(e.positions.data, std::vector<int32_t>(64, 0));  // read-out at position 0
  for (int32_t t : e.targets.data) EXPECT_TRUE(t >= 0 && t < 64);
}

TEST(BenchStep, IsARealTrainingStep) {
  omp_set_dynamic(0);
  omp_set_num_threads(1);  // on a busy machine two spinning threads are 10x slower
  for (const char* name : {"tiny", "small"}) {
    SCOPED_TRACE(name);
    BenchStep s(bench_config(name), 5);
    std::vector<Tensor<float>> before;
    for (const auto& [n, p] : s.model().named_parameters()) before.push_back(p.value().clone());
    const double first = s.step();
    // At random initialisation the loss is close to ln V.
    EXPECT_NEAR(first, std::log(static_cast<double>(bench_config(name).model.vocab_size)), 0.5);
    size_t i = 0, changed = 0;
    for (const auto& [n, p] : s.model().named_parameters()) {
      bool same = true;
      for (int64_t k = 0; k < p.value().numel() && same; ++k) same = p.value()[k] == before[i][k];
      changed += !same;
      ++i;
    }
    EXPECT_EQ(changed, before.size()) << "every parameter gets a gradient and an Adam update";
    double last = first;
    for (int k = 0; k < 10; ++k) last = s.step();
    EXPECT_LT(last, first - 1e-3) << "the same batch, repeated: the loss falls";
  }
}

TEST(BenchRun, MedianAndResult) {
  EXPECT_EQ(median({3, 1, 2}), 2);
  EXPECT_EQ(median({4, 1, 3, 2}), 2.5);
  const BenchResult r = run_bench(bench_config("tiny"), 1, 3, 1, 1337);
  EXPECT_EQ(r.config, "tiny");
  EXPECT_EQ(r.threads, 1);
  EXPECT_EQ(r.steps, 3);
  EXPECT_GT(r.ms_per_step, 0);
  EXPECT_LE(r.min_ms, r.ms_per_step);
  EXPECT_GE(r.max_ms, r.ms_per_step);
  EXPECT_NEAR(r.tokens_per_s, 64 * 16 / (r.ms_per_step / 1000.0), 1e-6 * r.tokens_per_s);
}

TEST(BenchCli, TinyJson) {
  const test::RunResult r =
      test::run_qkv({"bench", "--config", "tiny", "--steps", "3", "--warmup", "1", "--json"},
                    test::temp_folder());
  ASSERT_EQ(r.status, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    const nlohmann::json j = nlohmann::json::parse(line);
    ++n;
    EXPECT_EQ(j.at("config"), "tiny");
    EXPECT_GE(j.at("threads").get<int>(), 1);
    EXPECT_GT(j.at("ms_per_step").get<double>(), 0);
    EXPECT_GT(j.at("tokens_per_s").get<double>(), 0);
    EXPECT_EQ(j.at("steps"), 3);
    EXPECT_EQ(j.at("warmup"), 1);
    EXPECT_EQ(j.at("ms_per_step_by_threads").size(), 2u);  // best of 1 and 2 by default
    EXPECT_FALSE(j.contains("torch_ms_per_step"));
    // MFU: model FLOPs per step over the step time, over the measured peak.
    const double flops = j.at("flops_per_step").get<double>();
    EXPECT_DOUBLE_EQ(flops, model_flops_per_step(bench_config("tiny")));
    const double ms = j.at("ms_per_step").get<double>();
    EXPECT_NEAR(j.at("gflops").get<double>(), flops / (ms / 1000.0) / 1e9, 1e-9 * flops);
    const double peak = j.at("peak_gflops").get<double>();
    EXPECT_GT(peak, 0.5);  // any CPU this runs on does more than 0.5 GFLOP/s
    EXPECT_NEAR(j.at("mfu").get<double>(), j.at("gflops").get<double>() / peak, 1e-12);
    EXPECT_GT(j.at("mfu").get<double>(), 0);
    const std::string isa = j.at("isa");
    EXPECT_TRUE(isa == "AVX-512" || isa == "AVX2+FMA" || isa == "SSE2") << isa;
    EXPECT_FALSE(j.at("cpu").get<std::string>().empty());
    // Peak RSS of the measuring child: more than the model's parameters and Adam's two moments
    // (13 280 · 3 floats is tiny), less than a gigabyte.
    EXPECT_GT(j.at("peak_rss_mb").get<double>(), 1.0);
    EXPECT_LT(j.at("peak_rss_mb").get<double>(), 1024.0);
    ASSERT_EQ(j.at("by_threads").size(), 2u);
    for (const char* t : {"1", "2"}) {
      const nlohmann::json& b = j.at("by_threads").at(t);
      EXPECT_EQ(b.at("ms_per_step"), j.at("ms_per_step_by_threads").at(t));
      EXPECT_NEAR(b.at("mfu").get<double>(),
                  b.at("gflops").get<double>() / b.at("peak_gflops").get<double>(), 1e-12);
      EXPECT_GT(b.at("peak_rss_mb").get<double>(), 1.0);
      // The peak of t threads is at least t times one thread's measured peak.
      EXPECT_GE(b.at("peak_gflops").get<double>(), b.at("peak_measured_gflops").get<double>());
    }
    EXPECT_GE(
        j.at("by_threads").at("2").at("peak_gflops").get<double>(),
        2 * j.at("by_threads").at("1").at("peak_measured_gflops").get<double>() * (1 - 1e-12));
    const nlohmann::json& chosen =
        j.at("by_threads").at(std::to_string(j.at("threads").get<int>()));
    EXPECT_EQ(chosen.at("peak_rss_mb"), j.at("peak_rss_mb"));
  }
  EXPECT_EQ(n, 1);
}

TEST(BenchRun, InAChildReportsItsPeakRss) {
  const BenchResult r = run_bench_in_child(bench_config("small"), 1, 1, 0, 1337);
  EXPECT_EQ(r.config, "small");
  EXPECT_GT(r.ms_per_step, 0);
  EXPECT_NEAR(r.gflops, model_flops_per_step(bench_config("small")) / r.ms_per_step / 1e6,
              1e-9 * r.gflops);
  // small holds 437 760 parameters, their gradients and two Adam moments: at least 7 MB.
  EXPECT_GT(r.peak_rss_mb, 7.0);
  EXPECT_LT(r.peak_rss_mb, 1024.0);
  EXPECT_GT(fma_peak_in_child(1), 0.5);
}

TEST(BenchPeer, CountsTheSameFlopsAndReportsItsPeakRss) {
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 cannot import torch";
  const nlohmann::json j =
      run_torch_peer(std::string(QKV_SOURCE_DIR) + "/bench/torch_peer.py", "small", 1, 0);
  EXPECT_DOUBLE_EQ(j.at("flops_per_step").get<double>(),
                   model_flops_per_step(bench_config("small")));
  EXPECT_EQ(j.at("params"), 437760);
  const double ms = j.at("ms_per_step").get<double>();
  EXPECT_NEAR(j.at("gflops").get<double>(),
              j.at("flops_per_step").get<double>() / (ms / 1000.0) / 1e9, 1e-6);
  // The child that measured: Python, torch and the model, more than the model alone.
  EXPECT_GT(j.at("peak_rss_mb").get<double>(), 7.0);
  EXPECT_EQ(j.at("ms_per_step_by_threads").size(), 2u);
}

TEST(BenchCli, PeerMissingIsOneLineAndNoRatio) {
  const std::string dir = test::temp_folder();
  // The peer location comes from the environment: point it at a file that does not exist.
  const std::string cmd = "QKV_TORCH_PEER=" + dir + "missing_peer.py " + test::quote(QKV_BIN) +
                          " bench --config tiny --steps 2 --warmup 0 --threads 1 --peer --json >" +
                          test::quote(dir + "o.txt") + " 2>" + test::quote(dir + "e.txt");
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const std::string out = test::slurp(dir + "o.txt"), err = test::slurp(dir + "e.txt");
  EXPECT_NE(err.find("PyTorch peer unavailable"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  const nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_FALSE(j.contains("ratio_qkv_over_torch"));
}

TEST(BenchRun, MedianIndexNamesAMeasuredRound) {
  EXPECT_EQ(median_index({30, 10, 20}), 2u);
  EXPECT_EQ(median_index({5}), 0u);
  EXPECT_EQ(median_index({4, 1, 3, 2}), 3u);  // the lower of the middle two (2 and 3)
  EXPECT_EQ(median_index({7, 7, 7}), 1u);     // ties: in order of the rounds
}

TEST(BenchCli, RoundsAlternateWithThePeerAndReportTheMedians) {
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 cannot import torch";
  const std::string dir = test::temp_folder();
  // A stand-in peer whose rounds take 20, 30 and 10 ms per step; it appends each call to a log,
  // as qkv's rounds do not run in the same process.
  const std::string peer = dir + "peer.py", log = dir + "calls.txt";
  std::ofstream(peer) << "import json, os, sys\n"
                      << "log = " << nlohmann::json(log).dump() << "\n"
                      << R"(n = sum(1 for _ in open(log)) if os.path.exists(log) else 0
open(log, "a").write(" ".join(sys.argv[1:]) + "\n")
print(json.dumps({"ms_per_step": [20.0, 30.0, 10.0][n], "threads": 1, "peak_rss_mb": 100.0}))
)";
  const std::string cmd = "QKV_TORCH_PEER=" + peer + " " + test::quote(QKV_BIN) +
                          " bench --config tiny --steps 2 --warmup 0 --threads 1 --peer --rounds 3"
                          " --json >" +
                          test::quote(dir + "o.txt") + " 2>" + test::quote(dir + "e.txt");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << test::slurp(dir + "e.txt");
  EXPECT_EQ(test::slurp(dir + "e.txt"), "");
  const nlohmann::json j = nlohmann::json::parse(test::slurp(dir + "o.txt"));
  EXPECT_EQ(test::count_of(test::slurp(log), "--config tiny"), 3u);
  EXPECT_EQ(j.at("rounds"), 3);
  EXPECT_EQ(j.at("torch_ms_per_step_by_round"), nlohmann::json({20.0, 30.0, 10.0}));
  EXPECT_EQ(j.at("torch_ms_per_step").get<double>(), 20.0);  // the median round's: the first
  const std::vector<double> q = j.at("ms_per_step_by_round");
  ASSERT_EQ(q.size(), 3u);
  EXPECT_EQ(j.at("ms_per_step").get<double>(), median(q));
  const std::vector<double> ratios = j.at("ratio_by_round");
  ASSERT_EQ(ratios.size(), 3u);
  const double torch[] = {20.0, 30.0, 10.0};
  for (int i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(ratios[i], q[i] / torch[i]) << "round " << i;
  // The ratio pairs each qkv round with the peer's round beside it, not the two medians.
  EXPECT_DOUBLE_EQ(j.at("ratio_qkv_over_torch").get<double>(), median(ratios));
  EXPECT_EQ(j.at("torch_peak_rss_mb").get<double>(), 100.0);
}

TEST(BenchCli, BadFlagsExit2NamingThem) {
  const std::string dir = test::temp_folder();
  test::RunResult r = test::run_qkv({"bench", "--config", "huge"}, dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--config"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  r = test::run_qkv({"bench", "--config", "tiny", "--threads", "many"}, dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--threads"), std::string::npos) << r.err;
  r = test::run_qkv({"bench", "--config", "tiny", "--steps", "0"}, dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--steps"), std::string::npos) << r.err;
  r = test::run_qkv({"bench", "--config", "tiny", "--rounds", "0"}, dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--rounds"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace qkv
