// The training loop: loss falls, exact resume, determinism, non-finite handling, output-folder
// protection, and the qkv train / qkv eval command line (bad flags, SIGINT and resume).
#include "train/trainer.h"

#include <omp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "test_files.h"
#include "test_threads.h"
#include "train/checkpoint.h"
#include "train/metrics.h"

namespace qkv {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// A tiny decoder on copy with 1-3 digits: trains in well under a second.
RunConfig tiny_copy(int64_t steps, double dropout = 0.1) {
  const json overrides = {
      {"task",
       {{"min_digits", 1}, {"max_digits", 3}, {"n_train", 200}, {"n_val", 40}, {"n_test", 40}}},
      {"model",
       {{"d_model", 32}, {"n_heads", 2}, {"n_layers", 1}, {"d_ff", 64}, {"dropout", dropout}}},
      {"train",
       {{"steps", steps},
        {"batch_size", 16},
        {"lr", 3e-3},
        {"warmup", 5},
        {"eval_every", 10},
        {"save_every", 10},
        {"keep", 2}}}};
  return resolve_run_config("copy", nullptr, overrides);
}

TrainerOptions quiet(const std::string& out) {
  TrainerOptions o;
  o.out_dir = out;
  o.progress = Progress::kQuiet;
  return o;
}

/// Every record's numbers except the wall-clock rate must agree exactly.
void expect_same_metrics(const std::string& a, const std::string& b) {
  const std::vector<MetricsRecord> x = read_metrics(a), y = read_metrics(b);
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) {
    SCOPED_TRACE("record " + std::to_string(i));
    EXPECT_EQ(x[i].step, y[i].step);
    EXPECT_EQ(x[i].loss, y[i].loss);
    EXPECT_EQ(x[i].val_loss, y[i].val_loss);
    EXPECT_EQ(x[i].val_accuracy, y[i].val_accuracy);
    EXPECT_EQ(x[i].lr, y[i].lr);
    EXPECT_EQ(x[i].grad_norm, y[i].grad_norm);
    EXPECT_EQ(x[i].extra, y[i].extra);
  }
}

/// Parameters and optimizer slots bit for bit.
void expect_same_checkpoint(const std::string& a, const std::string& b) {
  const Checkpoint x = load_checkpoint(a), y = load_checkpoint(b);
  EXPECT_EQ(x.train.step, y.train.step);
  EXPECT_EQ(x.train.epoch, y.train.epoch);
  EXPECT_EQ(x.train.extra, y.train.extra);
  EXPECT_EQ(x.train.rng, y.train.rng);
  ASSERT_EQ(x.params.size(), y.params.size());
  for (size_t i = 0; i < x.params.size(); ++i) {
    EXPECT_EQ(x.params[i].first, y.params[i].first);
    const Tensor<float>& p = x.params[i].second;
    const Tensor<float>& q = y.params[i].second;
    ASSERT_EQ(p.numel(), q.numel());
    EXPECT_EQ(0, std::memcmp(p.data(), q.data(), sizeof(float) * size_t(p.numel())))
        << x.params[i].first;
  }
  ASSERT_TRUE(x.optimizer && y.optimizer);
  EXPECT_EQ(x.optimizer->step, y.optimizer->step);
  for (const auto& [slot, tensors] : x.optimizer->slots) {
    const auto& other = y.optimizer->slots.at(slot);
    ASSERT_EQ(tensors.size(), other.size());
    for (size_t i = 0; i < tensors.size(); ++i)
      EXPECT_EQ(0, std::memcmp(tensors[i].second.data(), other[i].second.data(),
                               sizeof(float) * size_t(tensors[i].second.numel())))
          << slot << " " << tensors[i].first;
  }
}

TEST(TrainConfig, RejectsUnknownKeysAndBadValuesNamingThem) {
  try {
    TrainConfig::from_json({{"stepz", 3}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'stepz'"), std::string::npos) << e.what();
  }
  try {
    TrainConfig::from_json({{"lr", -1}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'lr'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(TrainConfig::from_json({{"schedule", "cosine"}, {"steps", 10}, {"warmup", 10}}),
               Error);
  const TrainConfig c = TrainConfig::from_json({{"steps", 7}, {"seed", 3}});
  EXPECT_EQ(TrainConfig::from_json(c.to_json()).to_json(), c.to_json());
}

TEST(RunConfig, TaskDefaultsThenFileThenOverrides) {
  const json file = {{"task", "copy"},
                     {"train", {{"lr", 0.5}, {"steps", 11}}},
                     {"model", {{"d_model", 16}, {"n_heads", 2}}}};
  const RunConfig c = resolve_run_config("", file, {{"train", {{"steps", 12}}}});
  EXPECT_EQ(c.task["name"], "copy");
  EXPECT_EQ(c.train.steps, 12);  // flag over file
  EXPECT_EQ(c.train.lr, 0.5);    // file over task default
  EXPECT_EQ(c.model.d_model, 16);
  EXPECT_EQ(c.model.d_ff, 64);  // follows d_model as in the task's default (4·d_model)
  EXPECT_THROW(resolve_run_config("copy", {{"modle", json::object()}}, nullptr), Error);
  try {
    resolve_run_config("copy", nullptr, {{"model", {{"vocab_size", 3}}}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocab_size"), std::string::npos) << e.what();
  }
}

TEST(Trainer, LossFallsOnATinyCopyTask) {
  test::TempDir dir("falls");
  RunConfig cfg = tiny_copy(300, /*dropout=*/0.0);
  cfg.train.eval_every = 100;
  cfg.train.save_every = 150;
  Trainer t(cfg, quiet(dir.path()));
  const TrainResult r = t.run();
  ASSERT_EQ(r.status, TrainResult::Status::kCompleted) << r.message;
  const std::vector<MetricsRecord> m = read_metrics(dir / "metrics.jsonl");
  ASSERT_EQ(m.size(), 301u);  // step 0 (evaluation only) and one record per step
  const double first = *m[1].loss;
  double last = 0;
  for (size_t i = m.size() - 20; i < m.size(); ++i) last += *m[i].loss / 20;
  EXPECT_LT(last, 0.5 * first) << "first " << first << " last " << last;
  EXPECT_LT(*m.back().val_loss, 0.5 * *m[0].val_loss);
  for (const char* f :
       {"last.h5", "best.h5", "step-000150.h5", "step-000300.h5", "loss.svg", "accuracy.svg"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  const Checkpoint ck = load_checkpoint(dir / "last.h5");
  EXPECT_EQ(ck.train.step, 300);
  EXPECT_EQ(ck.task_config["name"], "copy");
  EXPECT_EQ(TrainConfig::from_json(ck.train_config).steps, 300);
}

/// Runs `cfg` into `dir`, checks that its exact accuracy stayed 0 while the val loss fell, and
/// returns the step best.h5 was saved at.
int64_t best_step_while_accuracy_stays_zero(const RunConfig& cfg, const test::TempDir& dir) {
  const TrainResult r = Trainer(cfg, quiet(dir.path())).run();
  EXPECT_EQ(r.status, TrainResult::Status::kCompleted) << r.message;
  const std::vector<MetricsRecord> m = read_metrics(dir / "metrics.jsonl");
  EXPECT_EQ(*m.front().val_accuracy, 0.0);
  EXPECT_EQ(*m.back().val_accuracy, 0.0);
  EXPECT_LT(*m.back().val_loss, *m.front().val_loss);
  return load_checkpoint(dir / "best.h5").train.step;
}

TEST(Trainer, BestCheckpointBreaksAccuracyTiesByValLoss) {
  // Copy after a few small steps: no sequence is exactly right yet at any evaluation, so they all
  // tie at 0 and best.h5 must follow the falling val loss, not stay at step 0.
  test::TempDir dir("best_ties_copy");
  RunConfig cfg = tiny_copy(20, /*dropout=*/0.0);
  cfg.train.lr = 1e-3;
  cfg.train.warmup = 0;
  EXPECT_EQ(best_step_while_accuracy_stays_zero(cfg, dir), 20);
}

TEST(Trainer, LanguageModelBestIsTheLowestValLoss) {
  // charlm selects by val loss alone (Task::best_by_loss; the other tasks by accuracy), and best.h5
  // follows it: the last evaluation here, as the loss falls.
  EXPECT_TRUE(make_task_from_config({{"name", "charlm"}})->best_by_loss());
  EXPECT_FALSE(make_task_from_config({{"name", "copy"}})->best_by_loss());
  test::TempDir dir("best_ties");
  const json overrides = {
      {"task", {{"block_size", 32}}},
      {"model", {{"d_model", 16}, {"n_heads", 2}, {"n_layers", 1}, {"d_ff", 32}}},
      {"train",
       {{"steps", 30}, {"batch_size", 8}, {"lr", 3e-3}, {"eval_every", 15}, {"warmup", 0}}}};
  EXPECT_EQ(
      best_step_while_accuracy_stays_zero(resolve_run_config("charlm", nullptr, overrides), dir),
      30);
}

TEST(Trainer, SameSeedSameRunBitForBit) {
  test::TempDir a("det_a"), b("det_b");
  const RunConfig cfg = tiny_copy(30);
  ASSERT_EQ(Trainer(cfg, quiet(a.path())).run().status, TrainResult::Status::kCompleted);
  ASSERT_EQ(Trainer(cfg, quiet(b.path())).run().status, TrainResult::Status::kCompleted);
  expect_same_metrics(a / "metrics.jsonl", b / "metrics.jsonl");
  expect_same_checkpoint(a / "last.h5", b / "last.h5");
  RunConfig other = cfg;
  other.train.seed = 1;
  test::TempDir c("det_c");
  ASSERT_EQ(Trainer(other, quiet(c.path())).run().status, TrainResult::Status::kCompleted);
  EXPECT_NE(read_metrics(a / "metrics.jsonl")[5].loss, read_metrics(c / "metrics.jsonl")[5].loss);
}

TEST(Trainer, InterruptAndResumeEqualsOneRun) {
  // 200 training examples in batches of 16: epochs of 12 steps, so the stop at step 17 falls in
  // the middle of the second epoch; dropout is on, so its generator must be restored too.
  test::TempDir full("resume_full"), part("resume_part");
  const RunConfig cfg = tiny_copy(45);
  ASSERT_EQ(Trainer(cfg, quiet(full.path())).run().status, TrainResult::Status::kCompleted);

  TrainerOptions o = quiet(part.path());
  o.after_backward = [](int64_t step, BatchModel<float>&) {
    if (step == 17) request_stop();  // as SIGINT would: the step finishes, then a checkpoint
  };
  const TrainResult stopped = Trainer(cfg, o).run();
  clear_stop_request();
  ASSERT_EQ(stopped.status, TrainResult::Status::kInterrupted) << stopped.message;
  EXPECT_EQ(stopped.step, 17);
  EXPECT_TRUE(fs::exists(part / "step-000017.h5"));
  EXPECT_EQ(load_checkpoint(part / "last.h5").train.step, 17);

  auto resumed = Trainer::resume(part / "last.h5", quiet(""));
  EXPECT_EQ(resumed->out_dir(), part.path());
  const TrainResult r = resumed->run();
  ASSERT_EQ(r.status, TrainResult::Status::kCompleted) << r.message;
  EXPECT_EQ(r.step, 45);
  expect_same_metrics(full / "metrics.jsonl", part / "metrics.jsonl");
  expect_same_checkpoint(full / "last.h5", part / "last.h5");
  expect_same_checkpoint(full / "best.h5", part / "best.h5");
}

TEST(Trainer, ShardedRunsAreTheSameAtOneAndTwoThreadsAndResumeExactly) {
  // Without dropout this model is small enough for 2 batch shards (train.shards auto); their
  // gradients are summed in shard order, so the thread count must not change a bit.
  const RunConfig cfg = tiny_copy(30, /*dropout=*/0.0);
  test::TempDir one("shards_1thr"), two("shards_2thr"), part("shards_part"), plain("shards_1");
  test::ScopedThreads threads(1);
  ASSERT_EQ(Trainer(cfg, quiet(one.path())).run().status, TrainResult::Status::kCompleted);
  threads.set(2);
  ASSERT_EQ(Trainer(cfg, quiet(two.path())).run().status, TrainResult::Status::kCompleted);
  expect_same_metrics(one / "metrics.jsonl", two / "metrics.jsonl");
  expect_same_checkpoint(one / "last.h5", two / "last.h5");

  TrainerOptions o = quiet(part.path());
  o.after_backward = [](int64_t step, BatchModel<float>&) {
    if (step == 17) request_stop();
  };
  ASSERT_EQ(Trainer(cfg, o).run().status, TrainResult::Status::kInterrupted);
  clear_stop_request();
  ASSERT_EQ(Trainer::resume(part / "last.h5", quiet(""))->run().status,
            TrainResult::Status::kCompleted);
  expect_same_metrics(one / "metrics.jsonl", part / "metrics.jsonl");
  expect_same_checkpoint(one / "last.h5", part / "last.h5");

  // The shards are really in use: one shard gives other bits (the same loss up to rounding).
  RunConfig single = cfg;
  single.train.shards = 1;
  ASSERT_EQ(Trainer(single, quiet(plain.path())).run().status, TrainResult::Status::kCompleted);
  const std::vector<MetricsRecord> a = read_metrics(one / "metrics.jsonl"),
                                   b = read_metrics(plain / "metrics.jsonl");
  ASSERT_TRUE(a[1].loss && b[1].loss);
  EXPECT_NE(*a[1].loss, *b[1].loss);
  EXPECT_NEAR(*a[1].loss, *b[1].loss, 1e-3 * *b[1].loss);
}

TEST(Trainer, ResumeFromAPeriodicCheckpointIntoAnotherFolder) {
  test::TempDir full("periodic_full"), other("periodic_other");
  const RunConfig cfg = tiny_copy(30);
  ASSERT_EQ(Trainer(cfg, quiet(full.path())).run().status, TrainResult::Status::kCompleted);
  // keep = 2: step-000010.h5 was rotated out; step-000020.h5 and step-000030.h5 remain.
  EXPECT_FALSE(fs::exists(full / "step-000010.h5"));
  ASSERT_TRUE(fs::exists(full / "step-000020.h5"));
  const TrainResult r = Trainer::resume(full / "step-000020.h5", quiet(other.path()))->run();
  ASSERT_EQ(r.status, TrainResult::Status::kCompleted) << r.message;
  expect_same_checkpoint(full / "last.h5", other / "last.h5");
  // Resuming with a longer run is allowed; changing the model's build is not.
  EXPECT_THROW(Trainer::resume(full / "last.h5", quiet(other.path()), {{"batch_size", 8}}), Error);
}

TEST(Trainer, StopsOnANonFiniteGradientNamingStepAndParameter) {
  test::TempDir dir("nonfinite");
  RunConfig cfg = tiny_copy(30);
  cfg.train.save_every = 5;
  cfg.train.keep = 10;
  TrainerOptions o = quiet(dir.path());
  o.after_backward = [](int64_t step, BatchModel<float>& m) {
    if (step == 7) m.parameter("blocks.0.attn.W_Q.weight").grad()[3] = NAN;
  };
  const TrainResult r = Trainer(cfg, o).run();
  ASSERT_EQ(r.status, TrainResult::Status::kDiverged);
  EXPECT_NE(r.message.find("step 7"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("'blocks.0.attn.W_Q.weight'"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("step-000005.h5"), std::string::npos) << r.message;
  EXPECT_EQ(r.step, 6);
  EXPECT_EQ(load_checkpoint(dir / "step-000005.h5").train.step, 5);  // intact, loads
  // last.h5 is the newest good checkpoint, not the diverged state.
  EXPECT_EQ(load_checkpoint(dir / "last.h5").train.step, 5);

  // With skip_nonfinite the step is skipped and counted, and training goes on.
  test::TempDir dir2("nonfinite_skip");
  cfg.train.skip_nonfinite = true;
  o.out_dir = dir2.path();
  const TrainResult s = Trainer(cfg, o).run();
  ASSERT_EQ(s.status, TrainResult::Status::kCompleted) << s.message;
  EXPECT_EQ(s.skipped_steps, 1);
  const std::vector<MetricsRecord> m = read_metrics(dir2 / "metrics.jsonl");
  EXPECT_EQ(m[7].step, 7);
  EXPECT_EQ(m[7].extra.value("skipped", false), true);
  EXPECT_EQ(load_checkpoint(dir2 / "last.h5").train.extra["skipped_steps"], 1);
}

TEST(Trainer, AHugeLearningRateDivergesWithAClearMessage) {
  RunConfig cfg = tiny_copy(20, 0.0);
  cfg.train.lr = 1e30;
  cfg.train.clip = 0;
  cfg.train.warmup = 0;
  const TrainResult r = Trainer(cfg, quiet("")).run();
  ASSERT_EQ(r.status, TrainResult::Status::kDiverged);
  EXPECT_NE(r.message.find("step "), std::string::npos);
  EXPECT_TRUE(r.message.find("not finite") != std::string::npos ||
              r.message.find("non-finite") != std::string::npos)
      << r.message;
}

TEST(Trainer, NeverOverwritesAnExistingRunSilently) {
  test::TempDir dir("protect");
  fs::create_directories(dir.path());
  std::ofstream(dir / "notes.txt") << "mine";
  std::ofstream(dir / "metrics.jsonl") << "{\"step\":1,\"loss\":9}\n";
  try {
    Trainer(tiny_copy(8), quiet(dir.path()));
    FAIL() << "a non-empty folder was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not empty"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--force"), std::string::npos) << e.what();
  }
  TrainerOptions o = quiet(dir.path());
  o.force = true;
  ASSERT_EQ(Trainer(tiny_copy(8), o).run().status, TrainResult::Status::kCompleted);
  EXPECT_TRUE(fs::exists(dir / "notes.txt"));  // --force replaces only a run's own files
  EXPECT_EQ(read_metrics(dir / "metrics.jsonl").front().step, 0);
}

TEST(Evaluate, TellsItsProgressAfterEachBatch) {
  const RunConfig cfg = resolve_run_config(
      "pronoun", nullptr, {{"model", {{"n_layers", 1}, {"n_heads", 1}, {"d_model", 8}}}});
  std::unique_ptr<Task> task = make_task_from_config(cfg.task);
  Model<float> model(cfg.model, 0);
  std::vector<std::pair<int64_t, int64_t>> told;
  const EvalResult r =
      evaluate(model, *task, Split::kVal, 64, 150, [&](int64_t done, int64_t total) {
        told.push_back({done, total});
      });
  EXPECT_EQ(r.score.examples, 150);
  const std::vector<std::pair<int64_t, int64_t>> expected{{64, 150}, {128, 150}, {150, 150}};
  EXPECT_EQ(told, expected);
}

TEST(Evaluate, PronounReferentAttentionPerLayerAndHead) {
  const RunConfig cfg = resolve_run_config(
      "pronoun", nullptr, {{"model", {{"n_layers", 2}, {"n_heads", 2}, {"d_model", 16}}}});
  std::unique_ptr<Task> task = make_task_from_config(cfg.task);
  Model<float> model(cfg.model, 0);
  const EvalResult r = evaluate(model, *task, Split::kVal, 64, 100);
  EXPECT_EQ(r.score.examples, 100);
  // The task's probe reports per module and head, through the generic probe interface.
  ASSERT_EQ(r.probes.size(), 1u);
  const ProbeReport* rep = r.probe("referent_attention");
  ASSERT_NE(rep, nullptr);
  const json& d = rep->detail;
  ASSERT_EQ(d["modules"].size(), 2u);
  EXPECT_EQ(d["modules"][1], "blocks.1.attn");
  EXPECT_EQ(d["sentences"], 100);
  for (size_t m = 0; m < 2; ++m) {
    ASSERT_EQ(d["referent"][m].size(), 2u);
    for (size_t h = 0; h < 2; ++h) {
      const double ref = d["referent"][m][h], dis = d["distractor"][m][h], wins = d["wins"][m][h];
      EXPECT_GT(ref, 0.0);
      EXPECT_LT(ref + dis, 1.0);
      EXPECT_GE(wins, 0.0);
      EXPECT_LE(wins, 1.0);
    }
  }
  // The metrics are the best head's, and the focus names it.
  const std::string best = d["best_head"]["module"];
  const size_t bm = best == "blocks.0.attn" ? 0 : 1, bh = d["best_head"]["head"];
  ASSERT_EQ(rep->metrics.size(), 3u);
  EXPECT_EQ(rep->metrics[0].second, d["referent"][bm][bh].get<double>());
  EXPECT_EQ(rep->metrics[2].second, d["wins"][bm][bh].get<double>());
  EXPECT_EQ(rep->focus.module, best);
  EXPECT_NE(rep->summary.find("referent > distractor"), std::string::npos) << rep->summary;
  EXPECT_TRUE(model.training());  // evaluate restores the mode
  const ProbeAttention p = probe_attention(model, *task, task->probe());
  EXPECT_EQ(p.tokens[p.position], "it");
  ASSERT_EQ(p.rows.size(), 2u);
  double sum = 0;
  for (double x : p.rows[0].second[1]) sum += x;
  EXPECT_NEAR(sum, 1.0, 1e-5);
}

// ---- the command line ---------------------------------------------------------------------

/// build/qkv, next to this test's folder (build/tests/trainer_test).
std::string qkv_binary() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  for (fs::path d = self.parent_path(); !d.empty() && d != d.root_path(); d = d.parent_path())
    if (fs::exists(d / "qkv") && !fs::is_directory(d / "qkv")) return (d / "qkv").string();
  return "";
}

struct CliRun {
  int status = -1;
  std::string output;
};

/// Runs qkv with `args` (a shell-quoted string), stdout and stderr together.
CliRun run_qkv(const std::string& args) {
  CliRun r;
  FILE* p = popen((qkv_binary() + " " + args + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

#define REQUIRE_QKV() \
  if (qkv_binary().empty()) GTEST_SKIP() << "build the qkv target first";

const char* kTinyFlags =
    "--task copy --d-model 16 --n-heads 2 --n-layers 1 --batch-size 8 --progress lines";

std::string tiny_config(const test::TempDir& dir) {
  fs::create_directories(dir.path());
  const std::string path = dir / "tiny.json";
  std::ofstream(path) << R"({"task": {"name": "copy", "min_digits": 1, "max_digits": 3,
    "n_train": 100, "n_val": 20, "n_test": 20}})";
  return path;
}

TEST(TrainCommand, BadFlagsAreRejectedNamingTheFlag) {
  REQUIRE_QKV();
  test::TempDir dir("cli_bad");
  const std::string out = " --out " + (dir / "run");
  const std::pair<std::string, std::string> cases[] = {
      {"--task copy --lr -1", "--lr"},
      {"--task copy --steps abc", "--steps"},
      {"--task copy --optimizer adamax", "--optimizer"},
      {"--task copy --schedule wiggly", "--schedule"},
      {"--task nosuchtask", "nosuchtask"},
      {"--task copy --d-model 30 --n-heads 4", "n_heads"},
      {"--task copy --warmup 50 --steps 50", "warmup"},
      {"--task copy --data /nonexistent/file.jsonl", "--data"},
      {"--task copy --frobnicate 3", "--frobnicate"},
      {"--resume " + (dir / "missing.h5"), "--resume"},
  };
  for (const auto& [args, named] : cases) {
    const CliRun r = run_qkv("train " + args + out);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(named), std::string::npos) << args << "\n" << r.output;
  }
  EXPECT_FALSE(fs::exists(dir / "run"));  // nothing was written: rejected before any work
}

TEST(TrainCommand, SigintSavesExitsWith130AndResumes) {
  REQUIRE_QKV();
  test::TempDir dir("cli_sigint");
  const std::string config = tiny_config(dir);
  const std::string out = dir / "run";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string bin = qkv_binary();
    if (!std::freopen("/dev/null", "w", stderr) || !std::freopen("/dev/null", "w", stdout))
      _exit(127);
    execl(bin.c_str(), bin.c_str(), "train", "--config", config.c_str(), "--d-model", "16",
          "--n-heads", "2", "--n-layers", "1", "--batch-size", "8", "--steps", "1000000",
          "--eval-every", "50", "--save-every", "1000000", "--threads", "1", "--warmup", "0",
          "--out", out.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait until it has taken some steps (metrics.jsonl has lines), then interrupt.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  size_t lines = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(out + "/metrics.jsonl");
    std::string l;
    lines = 0;
    while (std::getline(in, l)) ++lines;
    if (lines >= 20) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GE(lines, 20u);
  kill(pid, SIGINT);
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 130);
  const Checkpoint ck = load_checkpoint(out + "/last.h5");
  ASSERT_GE(ck.train.step, 19);
  EXPECT_TRUE(fs::exists(out + "/" + step_checkpoint_name(ck.train.step)));
  EXPECT_EQ(read_metrics(out + "/metrics.jsonl").back().step, ck.train.step);

  const int64_t target = ck.train.step + 10;
  const CliRun r = run_qkv("train --resume " + out + "/last.h5 --steps " + std::to_string(target) +
                           " --progress lines");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(load_checkpoint(out + "/last.h5").train.step, target);
  EXPECT_EQ(read_metrics(out + "/metrics.jsonl").back().step, target);

  // The model of a resumed run cannot change.
  const CliRun bad = run_qkv("train --resume " + out + "/last.h5 --d-model 32");
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.output.find("--d-model"), std::string::npos) << bad.output;

  // qkv eval reads the checkpoint back; --min-accuracy 1 fails on a barely trained model.
  const CliRun e = run_qkv("eval --checkpoint " + out + "/last.h5 --split test");
  EXPECT_EQ(e.status, 0) << e.output;
  EXPECT_NE(e.output.find("test: loss"), std::string::npos) << e.output;
  const CliRun e1 = run_qkv("eval --checkpoint " + out + "/last.h5 --min-accuracy 1");
  EXPECT_EQ(e1.status, 1) << e1.output;
  EXPECT_NE(e1.output.find("below --min-accuracy"), std::string::npos) << e1.output;
}

TEST(TrainCommand, RefusesANonEmptyOutputFolderUnlessForced) {
  REQUIRE_QKV();
  test::TempDir dir("cli_protect");
  const std::string config = tiny_config(dir);
  const std::string args = std::string("train --config ") + config + " " + kTinyFlags +
                           " --steps 3 --out " + (dir / "run");
  ASSERT_EQ(run_qkv(args).status, 0);
  const CliRun again = run_qkv(args);
  EXPECT_EQ(again.status, 2);
  EXPECT_NE(again.output.find("not empty"), std::string::npos) << again.output;
  EXPECT_EQ(run_qkv(args + " --force").status, 0);
}

}  // namespace
}  // namespace qkv
