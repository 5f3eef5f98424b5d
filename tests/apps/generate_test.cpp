// `qkv generate`, end to end: a tiny charlm trained by `qkv train` continues a prompt, the same
// seed gives the same text, and bad input exits 2 naming the flag. The sampling rule itself is
// tests/train/decode_test.cpp's.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "nn/model.h"
#include "run_qkv.h"
#include "test_files.h"
#include "train/checkpoint.h"
#include "train/load.h"
#include "train/run_config.h"

namespace qkv::cli {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// qkv generate, end to end

using test::quote;
using test::RunResult;
using test::slurp;

/// Code points of UTF-8 text.
int64_t chars(const std::string& s) {
  return std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; });
}

class GenerateCommand : public ::testing::Test {
 protected:
  // One tiny charlm (block 24, d_model 32, 40 steps), trained once for the whole suite.
  static void SetUpTestSuite() {
    std::string tmpl = (fs::temp_directory_path() / "qkv-generate-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    std::ofstream(path("config.json")) << R"({"task": {"name": "charlm", "block_size": 24},
      "model": {"d_model": 32, "n_heads": 2, "n_layers": 1}})";
    RunResult r = run({"train", "--config", path("config.json"), "--steps", "40", "--batch-size",
                       "16", "--lr", "3e-3", "--warmup", "5", "--eval-every", "40",
                       "--eval-examples", "32", "--progress", "quiet", "--out", path("run")});
    ASSERT_EQ(r.status, 0) << r.err;
    ckpt_ = path("run/last.h5");
    ASSERT_TRUE(fs::exists(ckpt_));
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  static std::string path(const std::string& name) { return (fs::path(dir_) / name).string(); }

  /// Runs `qkv ARGS` (each argument shell-quoted), capturing stdout, stderr and the status.
  static RunResult run(const std::vector<std::string>& args) { return test::run_qkv(args, dir_); }

  static RunResult generate_cmd(std::vector<std::string> extra) {
    std::vector<std::string> args = {"generate", "--checkpoint", ckpt_};
    args.insert(args.end(), extra.begin(), extra.end());
    return run(args);
  }

  /// Status 2, nothing on stdout, and exactly "qkv: " + message as one line on stderr.
  static void expect_bad_input(const RunResult& r, const std::string& message) {
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_EQ(r.err, "qkv: " + message + "\n");
    EXPECT_EQ(r.out, "");
  }

  static std::string dir_, ckpt_;
};

std::string GenerateCommand::dir_, GenerateCommand::ckpt_;

TEST_F(GenerateCommand, ContinuesThePromptPastTheBlockSize) {
  const std::string prompt = "The cat didn't";
  RunResult r = generate_cmd({"--prompt", prompt, "--max-new-tokens", "60", "--seed", "3"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  ASSERT_EQ(r.out.rfind(prompt, 0), 0u) << r.out;
  ASSERT_EQ(r.out.back(), '\n');
  // The prompt, 60 characters (more than block_size 24: the window slides), one final newline.
  EXPECT_EQ(chars(r.out), chars(prompt) + 60 + 1) << r.out;
}

TEST_F(GenerateCommand, ACheckpointWhoseTextFileIsGoneStillSamples) {
  // Train on a text file of our own, then delete it: generate falls back to the checkpoint's
  // vocabulary (a note on stderr), and the same seed gives the same text as before the delete.
  std::string text;
  for (int i = 0; i < 300; ++i) text += "abc cab bca. ";
  std::ofstream(path("tiny.txt")) << text;
  RunResult r = run({"train", "--task", "charlm", "--data", path("tiny.txt"), "--steps", "5",
                     "--d-model", "16", "--n-heads", "2", "--n-layers", "1", "--eval-every", "5",
                     "--progress", "quiet", "--out", path("tiny")});
  ASSERT_EQ(r.status, 0) << r.err;
  const std::vector<std::string> args = {"generate", "--checkpoint", path("tiny/last.h5"),
                                         "--prompt", "ab",           "--max-new-tokens",
                                         "20",       "--seed",       "5"};
  const RunResult before = run(args);
  ASSERT_EQ(before.status, 0) << before.err;
  fs::remove(path("tiny.txt"));
  const RunResult after = run(args);
  ASSERT_EQ(after.status, 0) << after.err;
  EXPECT_EQ(after.out, before.out);
  EXPECT_NE(after.err.find("is not there any more"), std::string::npos) << after.err;
  // Characters the text never had are still named.
  const RunResult bad = run({"generate", "--checkpoint", path("tiny/last.h5"), "--prompt", "xyz"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("'x'"), std::string::npos) << bad.err;
}

TEST_F(GenerateCommand, SameSeedSameTextOtherSeedOtherText) {
  auto text = [](const std::string& seed, const std::string& temperature = "1") {
    RunResult r = generate_cmd({"--prompt", "The", "--max-new-tokens", "50", "--seed", seed,
                                "--temperature", temperature});
    EXPECT_EQ(r.status, 0) << r.err;
    return r.out;
  };
  const std::string a = text("5");
  EXPECT_EQ(text("5"), a);
  EXPECT_NE(text("6"), a);
  // Greedy decoding ignores the seed.
  EXPECT_EQ(text("5", "0"), text("6", "0"));
}

TEST_F(GenerateCommand, TheKVCacheChangesNoText) {
  // 60 characters past a prompt of 3: the cache fills the window of 24, then the window slides.
  for (const std::string temperature : {"0", "1"}) {
    const std::vector<std::string> args = {"--prompt", "The", "--max-new-tokens", "60",
                                           "--seed",   "8",   "--temperature",    temperature};
    const RunResult cached = generate_cmd(args);
    std::vector<std::string> uncached_args = args;
    uncached_args.push_back("--no-kv-cache");
    const RunResult uncached = generate_cmd(uncached_args);
    ASSERT_EQ(cached.status, 0) << cached.err;
    ASSERT_EQ(uncached.status, 0) << uncached.err;
    EXPECT_EQ(chars(cached.out), 3 + 60 + 1) << cached.out;
    EXPECT_EQ(cached.out, uncached.out) << "temperature " << temperature;
  }
}

TEST_F(GenerateCommand, SeveralSamplesEachStartWithThePrompt) {
  RunResult r = generate_cmd({"--prompt", "T", "--max-new-tokens", "10", "--num-samples", "3",
                              "--top-k", "5", "--top-p", "0.9"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("---------- sample 1\nT", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\n---------- sample 2\nT"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n---------- sample 3\nT"), std::string::npos) << r.out;
}

TEST_F(GenerateCommand, BadInputExitsTwoNamingTheFlag) {
  expect_bad_input(generate_cmd({"--temperature", "-0.5"}),
                   "--temperature -0.5: must be >= 0 (0 = greedy, 1 = the model's distribution)");
  expect_bad_input(generate_cmd({"--top-k", "-2"}),
                   "--top-k -2: must be >= 0 (0 = keep every token)");
  expect_bad_input(generate_cmd({"--top-p", "1.5"}),
                   "--top-p 1.5: must be in (0, 1] (1 = keep every token)");
  expect_bad_input(generate_cmd({"--max-new-tokens", "-1"}), "--max-new-tokens -1: must be >= 0");
  expect_bad_input(generate_cmd({"--num-samples", "0"}), "--num-samples 0: must be >= 1");
  expect_bad_input(generate_cmd({"--prompt", ""}),
                   "--prompt: the prompt is empty; give at least one character");
  const RunResult unknown = generate_cmd({"--prompt", "The cat~ and the Zebra~"});
  EXPECT_EQ(unknown.status, 2);
  EXPECT_NE(unknown.err.find("--prompt: 2 characters are not in the vocabulary of the "
                             "checkpoint's charlm task"),
            std::string::npos)
      << unknown.err;
  EXPECT_NE(unknown.err.find("'~' (U+007E), 'Z' (U+005A)"), std::string::npos) << unknown.err;

  const RunResult missing = run({"generate", "--checkpoint", path("nope.h5")});
  EXPECT_EQ(missing.status, 2);
  EXPECT_EQ(missing.err, "qkv: " + path("nope.h5") + ": does not exist\n");
}

TEST_F(GenerateCommand, AnEncoderCheckpointPointsToAttend) {
  // A small pronoun model that fits its task (a checkpoint that does not is refused earlier).
  const RunConfig cfg = resolve_run_config(
      "pronoun", nullptr,
      {{"model", {{"d_model", 8}, {"n_heads", 2}, {"n_layers", 1}, {"d_ff", 16}}}});
  const ModelConfig& c = cfg.model;
  Model<float> model(c, 3);
  Checkpoint ckpt;
  ckpt.model_config = c.to_json();
  ckpt.task_config = cfg.task;
  ckpt.params = model.export_parameters();
  save_checkpoint(path("encoder.h5"), ckpt);
  const std::string p = path("encoder.h5");
  expect_bad_input(run({"generate", "--checkpoint", p, "--prompt", "it"}),
                   p +
                       ": an encoder checkpoint (task 'pronoun'); qkv generate samples only from "
                       "decoders (charlm, copy, reverse, sort, modadd): use 'qkv attend "
                       "--checkpoint " +
                       p + "' for its prediction and attention");
}

}  // namespace
}  // namespace qkv::cli
