// Discoverability and the data-file tasks end to end: `qkv tasks` lists every registered task,
// `qkv train --print-config` prints what --config accepts (and configs/ holds exactly that for
// every task), and a classify, seq2seq and lm model trained by `qkv train` from a file works with
// eval, attend and generate, attend still after the data file has moved.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "datasets/task.h"
#include "run_qkv.h"
#include "test_files.h"
#include "train/trainer.h"

namespace qkv {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::run_qkv;

/// A fresh folder of this test's, for run_qkv's captured output.
std::string folder(const std::string& name) {
  const std::string dir = test::temp_path(name);
  fs::create_directories(dir);
  return dir;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

TEST(QkvTasks, OneLinePerRegisteredTaskWithArchModelAndOptions) {
  const test::RunResult r = run_qkv({"tasks"}, folder("tasks"));
  ASSERT_EQ(r.status, 0) << r.err;
  const std::vector<std::string> lines = lines_of(r.out);
  const std::vector<std::string> names = known_tasks();
  ASSERT_EQ(lines.size(), names.size()) << r.out;
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(lines[i].rfind(names[i] + " ", 0), 0u) << lines[i];
    EXPECT_NE(lines[i].find("options: "), std::string::npos) << lines[i];
  }
  auto line = [&](const std::string& name) {
    for (const std::string& l : lines)
      if (l.rfind(name + " ", 0) == 0) return l;
    return std::string();
  };
  // A task built from its defaults shows its model and resolved options ...
  const auto pronoun = make_task("pronoun");
  const json m = pronoun->default_model_config();
  EXPECT_NE(line("pronoun").find(fmt::format("d_model {}, {} layers, {} heads", m["d_model"].dump(),
                                             m["n_layers"].dump(), m["n_heads"].dump())),
            std::string::npos);
  EXPECT_NE(line("pronoun").find("encoder"), std::string::npos);
  EXPECT_NE(line("copy").find("max_digits=8"), std::string::npos) << line("copy");
  // ... and a data-file task its description, data required.
  EXPECT_NE(line("classify").find("data=FILE (required)"), std::string::npos) << line("classify");
  EXPECT_NE(line("classify").find("val_fraction=0.1"), std::string::npos);
  EXPECT_NE(line("lm").find("level=char"), std::string::npos) << line("lm");
  EXPECT_NE(line("seq2seq").find("seq2seq  "), std::string::npos) << line("seq2seq");
}

TEST(PrintConfig, PrintsTheResolvedConfigAndTrainsNothing) {
  const std::string dir = folder("print");
  const test::RunResult r = run_qkv(
      {"train", "--task", "copy", "--steps", "7", "--print-config", "--out", dir + "/run"}, dir);
  ASSERT_EQ(r.status, 0) << r.err;
  const json printed = json::parse(r.out);
  const RunConfig want = resolve_run_config("copy", nullptr, {{"train", {{"steps", 7}}}});
  EXPECT_EQ(printed, want.to_json());
  EXPECT_EQ(printed["train"]["steps"], 7);
  EXPECT_FALSE(fs::exists(dir + "/run"));

  // What it prints, given back with --config, prints the same again.
  const std::string file = dir + "/copy.json";
  std::ofstream(file) << r.out;
  const test::RunResult again = run_qkv({"train", "--config", file, "--print-config"}, dir);
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(again.out, r.out);

  const test::RunResult resume =
      run_qkv({"train", "--resume", file, "--print-config"}, folder("print_resume"));
  EXPECT_EQ(resume.status, 2);
  EXPECT_NE(resume.err.find("--print-config cannot be used with --resume"), std::string::npos)
      << resume.err;
}

TEST(PrintConfig, EveryTaskHasAnExampleConfigThatLoadsAsPrinted) {
  // configs/NAME.json was written by --print-config; loaded with --config it must print itself.
  const fs::path cwd = fs::current_path();
  fs::current_path(QKV_SOURCE_DIR);  // the configs name examples/data/ files relative to it
  for (const std::string& name : known_tasks()) {
    const std::string path = "configs/" + name + ".json";
    ASSERT_TRUE(fs::exists(path)) << path << " is missing";
    std::ifstream in(path);
    const json file = json::parse(in);
    EXPECT_EQ(file["task"]["name"], name) << path;
    const test::RunResult r =
        run_qkv({"train", "--config", path, "--print-config"}, folder("cfg_" + name));
    ASSERT_EQ(r.status, 0) << path << ": " << r.err;
    EXPECT_EQ(json::parse(r.out), file) << path;
  }
  fs::current_path(cwd);
}

// ------------------------------------------------------------------------------------------------
// The data-file tasks through the command line.

std::string write(const std::string& name, const std::string& text) {
  const std::string path = test::temp_path(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(DataTasksCli, ClassifyTrainsEvaluatesAndAttendsEvenAfterTheFileMoved) {
  std::string data;
  for (int i = 0; i < 40; ++i) {
    data += json{{"text", "the movie was good"}, {"label", "pos"}}.dump() + "\n";
    data += json{{"text", "the movie was bad"}, {"label", "neg"}}.dump() + "\n";
  }
  const std::string path = write("reviews.jsonl", data);
  const std::string dir = folder("classify_run");
  const test::RunResult t =
      run_qkv({"train", "--task", "classify", "--data", path, "--steps", "20", "--d-model", "16",
               "--n-layers", "1", "--progress", "quiet", "--out", dir + "/run"},
              dir);
  ASSERT_EQ(t.status, 0) << t.err;
  const std::string ckpt = dir + "/run/last.h5";
  const test::RunResult e = run_qkv({"eval", "--checkpoint", ckpt}, dir);
  ASSERT_EQ(e.status, 0) << e.err;
  EXPECT_NE(e.out.find("task classify, encoder"), std::string::npos) << e.out;
  EXPECT_NE(e.out.find("val:"), std::string::npos) << e.out;

  fs::remove(path);
  const test::RunResult a = run_qkv(
      {"attend", "--checkpoint", ckpt, "--out-dir", dir + "/attend", "the movie was good"}, dir);
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_NE(a.err.find("not there any more"), std::string::npos) << a.err;
  // The class names come from the checkpoint's task config, not from the (gone) file.
  EXPECT_TRUE(a.out.find("'pos'") != std::string::npos || a.out.find("'neg'") != std::string::npos)
      << a.out;
  EXPECT_NE(a.out.find("<cls>"), std::string::npos) << a.out;
}

TEST(DataTasksCli, Seq2SeqAttendsAndLMGenerates) {
  std::string pairs;
  for (int i = 0; i < 30; ++i) {
    pairs += json{{"source", "one two"}, {"target", "1 2"}}.dump() + "\n";
    pairs += json{{"source", "two one"}, {"target", "2 1"}}.dump() + "\n";
  }
  const std::string dir = folder("s2s_run");
  ASSERT_EQ(run_qkv({"train", "--task", "seq2seq", "--data", write("pairs.jsonl", pairs), "--steps",
                     "10", "--d-model", "16", "--progress", "quiet", "--out", dir + "/run"},
                    dir)
                .status,
            0)
      << test::slurp(dir + "/stderr.txt");
  const test::RunResult a = run_qkv(
      {"attend", "--checkpoint", dir + "/run/last.h5", "--out-dir", dir + "/a", "two one"}, dir);
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_NE(a.out.find("input:      two one"), std::string::npos) << a.out;
  EXPECT_NE(a.out.find("prediction: "), std::string::npos) << a.out;

  std::string text;
  for (int i = 0; i < 60; ++i) text += "the cat sat on the mat. ";
  const std::string lm = folder("lm_run");
  ASSERT_EQ(run_qkv({"train", "--task", "lm", "--data", write("cat.txt", text), "--steps", "10",
                     "--d-model", "16", "--progress", "quiet", "--out", lm + "/run"},
                    lm)
                .status,
            0)
      << test::slurp(lm + "/stderr.txt");
  const test::RunResult g = run_qkv({"generate", "--checkpoint", lm + "/run/last.h5", "--prompt",
                                     "the cat", "--max-new-tokens", "5"},
                                    lm);
  ASSERT_EQ(g.status, 0) << g.err;
  EXPECT_EQ(g.out.rfind("the cat", 0), 0u) << g.out;
  EXPECT_GT(g.out.size(), std::string("the cat\n").size()) << g.out;  // and a continuation
}

}  // namespace
}  // namespace qkv
