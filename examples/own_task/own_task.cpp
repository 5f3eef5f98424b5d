// A Task of your own, with a probe, handed to qkv's Trainer: checkpoints, a probe chart, an exact
// resume. The task: "x1 x2 x3 ?" over the tokens a b c d; the class is x1, read out at "?". The
// read-out can only answer by attending back to position 0, which is what the probe measures.
#include <cstdio>
#include <filesystem>

#include <qkv/qkv.h>

using namespace qkv;

class FirstTokenTask : public Task {
 public:
  FirstTokenTask() : vocab_({Vocab::kPad, "a", "b", "c", "d", "?"}) {
    Rng rng(5);
    for (int s = 0; s < 3; ++s)
      for (int i = 0; i < (s == 0 ? 400 : 100); ++i) {
        std::vector<int32_t> ids;
        for (int t = 0; t < 3; ++t) ids.push_back(1 + static_cast<int32_t>(rng.below(4)));
        ids.push_back(5);  // "?"
        examples_[s].push_back(ids);
      }
  }
  std::string name() const override { return "first_token"; }
  Arch arch() const override { return Arch::kEncoder; }
  nlohmann::json options() const override { return nlohmann::json::object(); }
  const Vocab& vocab() const override { return vocab_; }
  int64_t n_out() const override { return 4; }  // a b c d
  int64_t max_len() const override { return 4; }
  int64_t size(Split s) const override { return int64_t(examples_[int(s)].size()); }
  Batch batch(Split s, const std::vector<int64_t>& indices) const override {
    std::vector<std::vector<int32_t>> rows;
    std::vector<int32_t> targets, positions;
    for (int64_t i : indices) {
      rows.push_back(examples_[int(s)][size_t(i)]);
      targets.push_back(rows.back()[0] - 1);  // the class of the first token
      positions.push_back(3);                 // read out at "?"
    }
    return pack_encoder(rows, targets, positions);
  }
  Batch encode(const std::string& text, bool) const override {
    std::vector<int32_t> ids = vocab_.ids(vocab_.tokenize(text));
    return pack_encoder({ids}, {ids[0] - 1}, {int32_t(ids.size()) - 1});
  }
  std::string probe() const override { return "c a b ?"; }
  nlohmann::json default_model_config() const override {
    return {{"arch", "encoder"}, {"vocab_size", 6}, {"max_len", 4}, {"n_out", 4},
            {"d_model", 16},     {"n_heads", 1},    {"n_layers", 1}, {"d_ff", 32}};
  }
  nlohmann::json default_train_config() const override { return {{"steps", 300}}; }
  std::vector<std::unique_ptr<Probe>> probes() const override;

 private:
  Vocab vocab_;
  std::vector<std::vector<int32_t>> examples_[3];
};

/// P(read-out → first token) in head 0 of the first self-attention, averaged over examples.
class FirstTokenProbe : public Probe {
 public:
  std::string name() const override { return "first_token_attention"; }
  void reset() override { sum_ = 0, n_ = 0, module_.clear(); }
  void add(const ProbeView& v) override {
    for (const AttentionMap<float>& a : v.attention) {
      if (!a.role.is_self()) continue;  // the model tags each map with its role
      module_ = a.path;
      const int64_t H = a.P.size(1), T = a.P.size(2), S = a.P.size(3);  // P [B, H, T, S]
      for (int64_t b = 0; b < v.batch.batch_size(); ++b, ++n_)
        sum_ += a.P.data()[((b * H) * T + v.batch.positions[b]) * S + 0];
      return;
    }
  }
  ProbeReport report() const override {
    ProbeReport r;
    if (n_ == 0) return r;
    r.metrics = {{"P(first)", sum_ / double(n_)}};  // metrics.jsonl, first_token_attention.svg
    r.summary = "P(first) " + std::to_string(sum_ / double(n_));
    r.focus = {module_, 0};  // the head pictured in probe_attention.svg
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

int main() {
  const std::string out = "runs/first_token";
  std::filesystem::remove_all(out);
  FirstTokenTask task;
  const ModelConfig model = ModelConfig::from_json(task.default_model_config());
  TrainConfig train;
  train.steps = 150;  // half the run, then a resume for the rest
  train.lr = 1e-2;
  train.schedule = "constant";
  train.eval_every = 50;
  TrainerOptions o;
  o.out_dir = out;
  o.progress = Progress::kLines;
  Trainer(std::make_unique<FirstTokenTask>(), std::make_unique<Model<float>>(model, 1), train, o)
      .run();
  // Continue from the checkpoint to step 300: the task and an (untrained) model of the same shape
  // are handed over again; the checkpoint supplies the weights, optimizer and data position.
  auto t = Trainer::resume(out + "/last.h5", std::make_unique<FirstTokenTask>(),
                           std::make_unique<Model<float>>(model, 0), o, {{"steps", 300}});
  const TrainResult r = t->run();
  std::printf("%s\n", r.message.c_str());
  const ProbeReport* p = r.last_eval.probe("first_token_attention");
  const double acc = r.last_eval.score.accuracy();
  std::printf("val accuracy %.1f%% (chance 25%%); %s\n", 100 * acc, p ? p->summary.c_str() : "-");
  const bool ok = acc > 0.9 && p && p->metrics[0].second > 0.5 &&
                  std::filesystem::exists(out + "/first_token_attention.svg");
  std::printf("%s\n", ok ? "own_task: ok" : "own_task: FAILED");
  return ok ? 0 : 1;
}
