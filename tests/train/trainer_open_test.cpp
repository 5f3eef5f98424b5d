// The trainer as an open framework: a task and a model written here (not in the registry, not a
// qkv architecture) train with checkpoints, a probe, pictures and an exact resume; and the run
// folder's safety rules (one run per folder, last.h5 at every save, stale temporaries removed,
// --force removes every picture, a resume from an older checkpoint says what it drops).
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "autograd/ops.h"
#include "nn/layers.h"
#include "nn/model.h"
#include "test_files.h"
#include "train/trainer.h"

namespace qkv {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---- a task of our own: which token came first? ------------------------------------------
// "x1 x2 x3 ?" with x_i in {a, b, c, d}; the class is x1, read out at "?" (position 3). The
// read-out token can only answer by attending to position 0, which is what its probe measures.
constexpr int64_t kLen = 4;

class FirstTokenTask : public Task {
 public:
  FirstTokenTask() : vocab_({Vocab::kPad, "a", "b", "c", "d", "?"}) {
    Rng rng(5);
    for (int s = 0; s < 3; ++s) {
      for (int i = 0; i < (s == 0 ? 400 : 100); ++i) {
        std::vector<int32_t> ids;
        for (int t = 0; t < kLen - 1; ++t) ids.push_back(1 + static_cast<int32_t>(rng.below(4)));
        ids.push_back(5);
        examples_[s].push_back(ids);
      }
    }
  }
  std::string name() const override { return "first_token"; }
  Arch arch() const override { return Arch::kEncoder; }
  nlohmann::json options() const override { return json::object(); }
  const Vocab& vocab() const override { return vocab_; }
  int64_t n_out() const override { return 4; }
  int64_t max_len() const override { return kLen; }
  int64_t size(Split s) const override {
    return static_cast<int64_t>(examples_[static_cast<int>(s)].size());
  }
  Batch batch(Split s, const std::vector<int64_t>& indices) const override {
    check_indices(*this, s, indices);
    std::vector<std::vector<int32_t>> rows;
    std::vector<int32_t> targets, positions;
    for (int64_t i : indices) {
      rows.push_back(examples_[static_cast<int>(s)][static_cast<size_t>(i)]);
      targets.push_back(rows.back()[0] - 1);
      positions.push_back(kLen - 1);
    }
    return pack_encoder(rows, targets, positions);
  }
  Batch encode(const std::string& text, bool) const override {
    std::vector<int32_t> ids = vocab_.ids(vocab_.tokenize(text));
    return pack_encoder({ids}, {ids[0] - 1}, {static_cast<int32_t>(ids.size()) - 1});
  }
  std::string probe() const override { return "c a b ?"; }
  nlohmann::json default_model_config() const override { return json::object(); }
  nlohmann::json default_train_config() const override { return json::object(); }
  std::vector<std::unique_ptr<Probe>> probes() const override;

 private:
  Vocab vocab_;
  std::vector<std::vector<int32_t>> examples_[3];
};

/// P(read-out → first token), averaged over examples, for head 0 of the first self-attention.
class FirstTokenProbe : public Probe {
 public:
  std::string name() const override { return "first_token_attention"; }
  void reset() override { sum_ = 0, n_ = 0, module_.clear(); }
  void add(const ProbeView& v) override {
    for (const AttentionMap<float>& a : v.attention) {
      if (!a.role.is_self()) continue;
      module_ = a.path;
      const int64_t H = a.P.size(1), T = a.P.size(2), S = a.P.size(3);
      for (int64_t b = 0; b < v.batch.batch_size(); ++b, ++n_)
        sum_ += a.P.data()[((b * H + 0) * T + v.batch.positions[b]) * S + 0];
      return;
    }
  }
  ProbeReport report() const override {
    ProbeReport r;
    if (n_ == 0) return r;
    r.metrics = {{"P(first)", sum_ / double(n_)}};
    r.summary = "P(first) " + std::to_string(sum_ / double(n_));
    r.focus = {module_, 0};
    return r;
  }

 private:
  double sum_ = 0;
  int64_t n_ = 0;
  std::string module_;
};

std::vector<std::unique_ptr<Probe>> FirstTokenTask::probes() const {
  std::vector<std::unique_ptr<Probe>> p;
  p.push_back(std::make_unique<FirstTokenProbe>());
  return p;
}

// ---- a model of our own: embeddings, one attention layer, a read-out head -------------------
class TinyReader : public BatchModel<float> {
 public:
  explicit TinyReader(uint64_t seed) {
    emb_ = &this->register_module("emb", std::make_unique<Embedding<float>>(6, 16));
    pos_ = &this->register_module("pos", std::make_unique<LearnedPositional<float>>(kLen, 16));
    attn_ = &this->register_module("attn", std::make_unique<Attention<float>>(16, 1));
    head_ = &this->register_module("head", std::make_unique<Linear<float>>(16, 4));
    Rng rng(seed);  // layers start at zero: the model initialises itself
    for (auto& [name, p] : this->named_parameters())
      for (float& x : p.value()) x = static_cast<float>(rng.normal(0.0, 0.3));
  }
  ForwardResult<float> forward(const Batch& b, bool keep_attention) override {
    AttnMask mask;
    mask.key_padding = b.mask;
    Var<float> x = pos_->forward(emb_->forward(b.tokens));
    x = x + attn_->forward(x, Var<float>(), mask, keep_attention);
    ForwardResult<float> r;
    r.logits = head_->forward(select_positions(x, b.positions));
    if (!b.targets.empty()) r.loss = cross_entropy(r.logits, b.targets);
    if (keep_attention)
      r.attention.push_back(
          {"attn", {AttnStack::kEncoder, AttnKind::kSelf, 0}, attn_->last_attention()});
    return r;
  }
  json config_json() const override { return {{"arch", "tiny_reader"}, {"d_model", 16}}; }
  std::string describe() const override { return "tiny_reader (d_model 16, 1 head)"; }  // own

 private:
  Embedding<float>* emb_;
  LearnedPositional<float>* pos_;
  Attention<float>* attn_;
  Linear<float>* head_;
};

TrainConfig reader_train(int64_t steps) {
  TrainConfig t;
  t.steps = steps;
  t.batch_size = 32;
  t.lr = 1e-2;
  t.warmup = 0;
  t.schedule = "constant";
  t.eval_every = 50;
  t.save_every = 50;
  return t;
}

TrainerOptions quiet(const std::string& out) {
  TrainerOptions o;
  o.out_dir = out;
  o.progress = Progress::kQuiet;
  return o;
}

std::vector<float> all_params(const std::string& checkpoint) {
  std::vector<float> v;
  for (const auto& [name, t] : load_checkpoint(checkpoint).params)
    v.insert(v.end(), t.begin(), t.end());
  return v;
}

TEST(TrainerOpen, TrainsAUsersTaskAndModelWithItsProbeAndChart) {
  test::TempDir dir("open_train");
  Trainer t(std::make_unique<FirstTokenTask>(), std::make_unique<TinyReader>(1), reader_train(300),
            quiet(dir.path()));
  const TrainResult r = t.run();
  ASSERT_EQ(r.status, TrainResult::Status::kCompleted) << r.message;
  // Chance is 25 %: one of four first tokens.
  EXPECT_GT(r.last_eval.score.accuracy(), 0.9) << r.message;
  // The probe's metric is recorded at every evaluation, and the read-out learns to look back.
  std::vector<double> first;
  for (const MetricsRecord& m : read_metrics(dir / "metrics.jsonl")) {
    const auto it = m.extra.find("probes");
    if (it != m.extra.end()) first.push_back((*it)["first_token_attention"]["P(first)"]);
  }
  ASSERT_EQ(first.size(), 7u);  // steps 0, 50, …, 300
  EXPECT_GT(first.back(), first.front() + 0.2);
  // The trainer draws it without knowing the task: one curve for the probe's one metric.
  std::ifstream svg(dir / "first_token_attention.svg");
  const std::string text((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find(">P(first)</text>"), std::string::npos);
  EXPECT_EQ(test::count_of(text, "<polyline"), 1u);
  EXPECT_TRUE(fs::exists(dir / "probe_attention.svg"));  // the focus head's row over training
  // The checkpoint stores the user model's own config.
  EXPECT_EQ(load_checkpoint(dir / "last.h5").model_config["arch"], "tiny_reader");
}

TEST(TrainerOpen, AUsersModelResumesBitForBit) {
  test::TempDir full("open_full"), half("open_half");
  ASSERT_EQ(Trainer(std::make_unique<FirstTokenTask>(), std::make_unique<TinyReader>(1),
                    reader_train(100), quiet(full.path()))
                .run()
                .status,
            TrainResult::Status::kCompleted);
  ASSERT_EQ(Trainer(std::make_unique<FirstTokenTask>(), std::make_unique<TinyReader>(1),
                    reader_train(50), quiet(half.path()))
                .run()
                .status,
            TrainResult::Status::kCompleted);
  // A fresh model object (other initial weights: they are replaced by the checkpoint's).
  auto t = Trainer::resume(half / "last.h5", std::make_unique<FirstTokenTask>(),
                           std::make_unique<TinyReader>(99), quiet(""), {{"steps", 100}});
  const TrainResult r = t->run();
  ASSERT_EQ(r.status, TrainResult::Status::kCompleted) << r.message;
  EXPECT_EQ(r.steps_run, 50);
  t->save(half / "resumed.h5");
  EXPECT_EQ(all_params(half / "resumed.h5"), all_params(full / "last.h5"));
}

TEST(TrainerOpen, AModelThatDoesNotMatchTheCheckpointIsRefusedNamingTheParameter) {
  test::TempDir dir("open_mismatch");
  Trainer(std::make_unique<FirstTokenTask>(), std::make_unique<TinyReader>(1), reader_train(50),
          quiet(dir.path()))
      .run();
  RunConfig other = resolve_run_config(
      "pronoun", nullptr, {{"model", {{"d_model", 16}, {"n_heads", 1}, {"n_layers", 1}}}});
  const std::string e = test::error_of([&] {
    Trainer::resume(dir / "last.h5", std::make_unique<FirstTokenTask>(),
                    std::make_unique<Model<float>>(other.model, 0), quiet(""));
  });
  EXPECT_NE(e.find(dir / "last.h5"), std::string::npos) << e;
}

// ---- the run folder ------------------------------------------------------------------------

RunConfig tiny_copy(int64_t steps) {
  return resolve_run_config(
      "copy", nullptr,
      {{"task",
        {{"min_digits", 1}, {"max_digits", 3}, {"n_train", 200}, {"n_val", 40}, {"n_test", 40}}},
       {"model", {{"d_model", 16}, {"n_heads", 2}, {"n_layers", 1}}},
       {"train", {{"steps", steps}, {"batch_size", 16}, {"eval_every", 10}, {"save_every", 10}}}});
}

TEST(RunFolder, ASecondRunIntoTheSameFolderFailsAtOnceNamingIt) {
  test::TempDir dir("lock");
  Trainer first(tiny_copy(10), quiet(dir.path()));  // holds the folder while it exists
  const std::string e = test::error_of([&] { Trainer(tiny_copy(10), quiet(dir.path())); });
  EXPECT_NE(e.find("output folder '" + dir.path() + "' is in use by another qkv run"),
            std::string::npos)
      << e;
}

TEST(RunFolder, ALockLeftByAKilledProcessDoesNotBlock) {
  test::TempDir dir("stale_lock");
  fs::create_directories(dir.path());
  const pid_t child = fork();
  if (child == 0) {
    RunDirLock lock(dir.path());
    _exit(0);  // dies holding it, as a SIGKILL would
  }
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(fs::exists(dir / ".lock"));
  EXPECT_EQ(Trainer(tiny_copy(10), quiet(dir.path())).run().status,
            TrainResult::Status::kCompleted);
}

TEST(RunFolder, LastIsTheNewestCheckpointAtEverySaveAndStaleTemporariesGo) {
  test::TempDir dir("last");
  TrainerOptions o = quiet(dir.path());
  int64_t checked = 0;
  o.after_backward = [&](int64_t step, BatchModel<float>&) {
    if (step == 21) {  // after the save at step 20, before the run ends: last.h5 is step 20
      EXPECT_EQ(load_checkpoint(dir / "last.h5").train.step, 20);
      ++checked;
      std::ofstream(dir / "step-000030.h5.tmp") << "a half-written file a kill left";
    }
  };
  ASSERT_EQ(Trainer(tiny_copy(25), o).run().status, TrainResult::Status::kCompleted);
  EXPECT_EQ(checked, 1);
  auto again = Trainer::resume(dir / "step-000020.h5", quiet(""), {{"steps", 30}});
  EXPECT_FALSE(fs::exists(dir / "step-000030.h5.tmp"));  // removed at the next start
}

TEST(RunFolder, ForceRemovesEveryPictureAndTheAttendFolder) {
  test::TempDir dir("force");
  fs::create_directories(dir / "attend");
  std::ofstream(dir / "attend/blocks.0.attn.h0.svg") << "<svg/>";
  std::ofstream(dir / "referent_attention.svg") << "<svg/>";
  std::ofstream(dir / "mine.txt") << "kept";
  TrainerOptions o = quiet(dir.path());
  o.force = true;
  ASSERT_EQ(Trainer(tiny_copy(10), o).run().status, TrainResult::Status::kCompleted);
  EXPECT_FALSE(fs::exists(dir / "referent_attention.svg"));  // copy has no such probe
  EXPECT_FALSE(fs::exists(dir / "attend"));
  EXPECT_TRUE(fs::exists(dir / "mine.txt"));
}

TEST(RunFolder, ResumingFromAnOlderCheckpointSaysWhatItDrops) {
  test::TempDir dir("older");
  ASSERT_EQ(Trainer(tiny_copy(30), quiet(dir.path())).run().status,
            TrainResult::Status::kCompleted);
  ::testing::internal::CaptureStderr();
  auto t = Trainer::resume(dir / "step-000010.h5", quiet(""));
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("resuming from step 10"), std::string::npos) << err;
  EXPECT_NE(err.find("2 later step files removed"), std::string::npos) << err;
  const TrainResult r = t->run();
  EXPECT_EQ(r.steps_run, 20);
  EXPECT_NE(r.message.find("(20 steps)"), std::string::npos) << r.message;
}

TEST(RunFolder, AResumeIntoANewFolderKeepsTheRunsHistory) {
  test::TempDir a("hist_a"), b("hist_b");
  ASSERT_EQ(Trainer(tiny_copy(20), quiet(a.path())).run().status, TrainResult::Status::kCompleted);
  ASSERT_EQ(Trainer::resume(a / "step-000010.h5", quiet(b.path()), {{"steps", 30}})->run().status,
            TrainResult::Status::kCompleted);
  const std::vector<MetricsRecord> m = read_metrics(b / "metrics.jsonl");
  ASSERT_FALSE(m.empty());
  EXPECT_EQ(m.front().step, 0);  // the curves start where the run started
  EXPECT_EQ(m.back().step, 30);
  for (size_t i = 1; i < m.size(); ++i) EXPECT_EQ(m[i].step, m[i - 1].step + 1);
}

}  // namespace
}  // namespace qkv
