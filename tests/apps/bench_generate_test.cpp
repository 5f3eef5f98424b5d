// qkv bench --generate: the decoding benchmark runs both paths on the same prompt, reports the same
// tokens and both speeds as JSON, and refuses an encoder or a prompt that does not fit. No timing
// assertions: speed is measured by `qkv bench --generate`, not by tests.
#include "apps/bench_generate.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "run_qkv.h"
#include "test_files.h"

namespace qkv {
namespace {

TEST(BenchGenerate, BothPathsChooseTheSameTokens) {
  const GenerateBenchResult r = run_generate_bench(bench_config("small"), 1, 10, 6, 3);
  EXPECT_TRUE(r.same_tokens);
  EXPECT_GT(r.uncached_s, 0);
  EXPECT_GT(r.cached_s, 0);
  EXPECT_DOUBLE_EQ(r.speedup, r.uncached_s / r.cached_s);
  // 2 (K, V) · 2 layers · max_len 64 · d_model 128 floats.
  EXPECT_EQ(r.cache_bytes, 2 * 2 * 64 * 128 * 4);
}

TEST(BenchGenerate, TheCommandPrintsJsonAndRefusesWhatDoesNotFit) {
  const std::string dir = test::temp_folder();
  const test::RunResult ok = test::run_qkv({"bench", "--generate", "--config", "small",
                                            "--prompt-len", "8", "--new-tokens", "4", "--json"},
                                           dir);
  ASSERT_EQ(ok.status, 0) << ok.err;
  const nlohmann::json j = nlohmann::json::parse(ok.out);
  EXPECT_EQ(j.at("config"), "small");
  EXPECT_EQ(j.at("new_tokens"), 4);
  EXPECT_EQ(j.at("same_tokens"), true);
  EXPECT_GT(j.at("speedup").get<double>(), 0);

  const test::RunResult encoder = test::run_qkv({"bench", "--generate", "--config", "tiny"}, dir);
  EXPECT_EQ(encoder.status, 2);
  EXPECT_EQ(encoder.err,
            "qkv: --config tiny: an encoder generates no tokens; use small, medium or large\n");
  const test::RunResult too_long = test::run_qkv(
      {"bench", "--generate", "--config", "small", "--prompt-len", "60", "--new-tokens", "5"}, dir);
  EXPECT_EQ(too_long.status, 2);
  EXPECT_EQ(too_long.err,
            "qkv: --prompt-len 60 and --new-tokens 5: need at least 1 each and at most max_len 64 "
            "together (the small configuration)\n");
}

}  // namespace
}  // namespace qkv
