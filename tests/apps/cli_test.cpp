// The command line's edges: numeric flags rejected in prose, "did you mean" for a mistyped
// subcommand or flag, each with exit status 2 and one line naming the flag.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "apps/cli_checks.h"
#include "datasets/task.h"
#include "run_qkv.h"
#include "test_files.h"

namespace qkv {
namespace {

using test::run_qkv;
using test::temp_folder;
using test::temp_path;

/// The first line of stderr.
std::string first_line(const std::string& err) {
  return err.substr(0, err.find('\n'));
}

TEST(CliNumbers, AreRejectedInProseWithTheValueGiven) {
  const std::string existing = temp_path("exists.h5");  // --checkpoint must name a file
  std::ofstream(existing) << "x";
  struct Case {
    std::vector<std::string> args;
    std::string line;
  };
  const std::vector<Case> cases = {
      {{"train", "--task", "copy", "--steps", "-5"},
       "qkv: --steps must be a positive integer, got -5"},
      {{"train", "--task", "copy", "--lr", "abc"},
       "qkv: --lr must be a positive number, got 'abc'"},
      {{"train", "--task", "copy", "--steps", "1.5"},
       "qkv: --steps must be a positive integer, got 1.5"},
      {{"train", "--task", "copy", "--dropout", "1"},
       "qkv: --dropout must be a number in [0, 1), got 1"},
      {{"bench", "--steps", "0"}, "qkv: --steps must be a positive integer, got 0"},
      {{"eval", "--checkpoint", existing, "--min-accuracy", "2"},
       "qkv: --min-accuracy must be a number in [0, 1], got 2"},
      // No range of its own: the check every numeric option gets.
      {{"generate", "--checkpoint", "x.h5", "--top-k", "many"},
       "qkv: --top-k must be an integer, got 'many'"},
      {{"gradcheck", "--eps", "tiny"}, "qkv: --eps must be a number, got 'tiny'"},
  };
  for (const Case& c : cases) {
    const test::RunResult r = run_qkv(c.args, temp_folder());
    EXPECT_EQ(r.status, 2) << c.line;
    EXPECT_EQ(first_line(r.err), c.line);
    EXPECT_EQ(r.err.find("179769"), std::string::npos) << r.err;
  }
}

TEST(CliSuggestions, AMistypedCommandOrFlagGetsTheClosestName) {
  test::RunResult r = run_qkv({"trian", "--task", "copy"}, temp_folder());
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(first_line(r.err), "qkv: unknown command 'trian'; did you mean 'train'?");
  r = run_qkv({"train", "--task", "copy", "--stpes", "5"}, temp_folder());
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(first_line(r.err),
            "qkv: unknown option '--stpes' for 'qkv train'; did you mean '--steps'?");
  r = run_qkv({"attend", "--checkpoint", "x.h5", "--widht=3"}, temp_folder());
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(first_line(r.err),
            "qkv: unknown option '--widht' for 'qkv attend'; did you mean '--width'?");
  // Nothing close: the commands are listed.
  r = run_qkv({"frobnicate"}, temp_folder());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("unknown command 'frobnicate'; the commands are: tasks, train, eval"),
            std::string::npos)
      << r.err;
  // A negative number is a value, not a flag.
  r = run_qkv({"train", "--task", "copy", "--seed", "-1"}, temp_folder());
  EXPECT_EQ(first_line(r.err), "qkv: --seed must be an integer >= 0, got -1");
}

TEST(CliSuggestions, ClosestNeedsMostOfTheWordToMatch) {
  EXPECT_EQ(cli::closest("trian", {"train", "eval", "attend"}), "train");
  EXPECT_EQ(cli::closest("--stpes", {"--steps", "--seed"}), "--steps");
  EXPECT_EQ(cli::closest("xyz", {"train", "eval"}), "");
  EXPECT_EQ(cli::closest("train", {"train"}), "") << "an exact name is no suggestion";
}

TEST(CliTrainHelp, ShowsEveryTasksDefaults) {
  const test::RunResult r = run_qkv({"train", "--help"}, temp_folder());
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string footer = r.out.substr(r.out.find("Each task's defaults"));
  for (const TaskInfo& info : registered_tasks()) {
    const std::string& name = info.name;
    SCOPED_TRACE(name);
    // The task's block: its line and the indented lines under it.
    const size_t at = footer.find("\n  " + name + " ");
    ASSERT_NE(at, std::string::npos) << footer;
    std::string block = footer.substr(at + 1);
    for (size_t e = block.find("\n"); e != std::string::npos; e = block.find("\n", e + 1))
      if (block.compare(e + 1, 3, "   ") != 0) {
        block.resize(e);
        break;
      }
    if (!info.describe.is_null()) {  // a data-file task: its model and the file it needs
      const nlohmann::json& model = info.describe.at("model");
      EXPECT_NE(block.find("--data FILE"), std::string::npos) << block;
      EXPECT_NE(block.find("--d-model " + model.at("d_model").dump()), std::string::npos) << block;
      continue;
    }
    const std::unique_ptr<Task> task = make_task(name);
    const nlohmann::json train = task->default_train_config();
    const nlohmann::json model = task->default_model_config();
    EXPECT_NE(block.find("--steps " + train.at("steps").dump()), std::string::npos) << block;
    EXPECT_NE(block.find("--lr " + train.at("lr").dump()), std::string::npos) << block;
    EXPECT_NE(block.find("--d-model " + model.at("d_model").dump()), std::string::npos) << block;
    EXPECT_NE(block.find("--n-heads " + model.at("n_heads").dump()), std::string::npos) << block;
  }
}

TEST(CliTrainConfig, DataGivenToATaskWithoutDataNamesTheTasksThatTakeIt) {
  const std::string text = temp_path("text.txt");
  std::ofstream(text) << "some text\n";
  const test::RunResult r = run_qkv({"train", "--task", "copy", "--data", text}, temp_folder());
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err,
            "qkv: --data: task 'copy' reads no data file; only charlm, classify, lm, pronoun and "
            "seq2seq take --data\n");
}

TEST(CliTrainConfig, ErrorsInTheConfigFileNameIt) {
  const std::string path = temp_path("bad-heads.json");
  std::ofstream(path) << R"({"task": {"name": "copy"}, "model": {"d_model": 30, "n_heads": 4}})";
  test::RunResult r = run_qkv({"train", "--config", path}, temp_folder());
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(first_line(r.err), "qkv: --config " + path +
                                   ": model config: d_model (30) must be divisible by n_heads (4)");
  // The same mistake made by flags is not blamed on the file.
  const std::string good = temp_path("good.json");
  std::ofstream(good) << R"({"task": {"name": "copy"}})";
  r = run_qkv({"train", "--config", good, "--d-model", "30", "--n-heads", "4"}, temp_folder());
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(first_line(r.err), "qkv: model config: d_model (30) must be divisible by n_heads (4)");
}

TEST(CliTrainConfig, AWrongVocabSizeIsBlamedOnVocabSize) {
  const std::string path = temp_path("vocab.json");
  std::ofstream(path) << R"({"task": {"name": "copy"}, "model": {"vocab_size": 99}})";
  const test::RunResult r = run_qkv({"train", "--config", path}, temp_folder());
  EXPECT_EQ(r.status, 2);
  const std::string want = "qkv: --config " + path +
                           ": model config: vocab_size is 99 but n_out is " +
                           std::to_string(make_task("copy")->vocab().size()) +
                           "; arch 'decoder' predicts its own tokens, so they must be equal (leave "
                           "both out to take the task's)";
  EXPECT_EQ(first_line(r.err), want);
}

#if defined(__x86_64__)
TEST(CliCpuCheck, ABinaryForAnotherCpuSaysSoInsteadOfCrashing) {
  // The program checks the instruction sets it was compiled for before anything runs; the test
  // pretends this CPU lacks one (QKV_TEST_CPU_LACKS). "x86-64" is always checked; with
  // -march=native on an AVX2 machine, "avx2" is too.
  std::vector<std::string> lacking{"x86-64"};
#ifdef __AVX2__
  lacking.push_back("avx2");
#endif
  for (const std::string& feature : lacking) {
    ::setenv("QKV_TEST_CPU_LACKS", feature.c_str(), 1);
    const test::RunResult r = run_qkv({"tasks"}, temp_folder());
    ::unsetenv("QKV_TEST_CPU_LACKS");
    EXPECT_EQ(r.status, 2) << feature;
    EXPECT_EQ(r.out, "") << feature;
    EXPECT_EQ(first_line(r.err),
              "qkv: this program was built for another CPU and uses " + feature +
                  ", which this CPU lacks (the compiler's -march, set by the CMake option "
                  "QKV_NATIVE or by CXXFLAGS); build qkv on this machine, or configure with "
                  "-DQKV_NATIVE=OFF and no -march for a binary that runs on any x86-64")
        << feature;
  }
  const test::RunResult ok = run_qkv({"tasks"}, temp_folder());  // the real CPU: it runs
  EXPECT_EQ(ok.status, 0) << ok.err;
}
#endif

}  // namespace
}  // namespace qkv
