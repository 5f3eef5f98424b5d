#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <utility>

#include <fmt/core.h>

#include "autograd/var.h"
#include "core/error.h"
#include "nn/model.h"
#include "plot/plot.h"
#include "train/charts.h"
#include "train/clip.h"
#include "train/load.h"

namespace qkv {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

/// The data-order generator's seed: the run seed on a stream of its own (a config-built model's
/// initialisation and dropout streams are derived from the same seed inside Model).
constexpr uint64_t kDataStream = 0xD1B54A32D192ED03ULL;
/// Across ranks, the dropout streams' seeds (see Trainer::reseed_dropout).
constexpr uint64_t kRankDropoutStream = 0x2545F4914F6CDD1DULL;

/// The task of a run config, checked against its model config.
std::unique_ptr<Task> checked_task(const RunConfig& config) {
  std::unique_ptr<Task> task = make_task_from_config(config.task);
  check_model_fits(config.model, *task);
  return task;
}

/// The parameters a model expects, for validating a checkpoint against it.
ParamShapes shapes_of(BatchModel<float>& model) {
  ParamShapes out;
  for (const auto& [name, p] : model.named_parameters()) out.emplace_back(name, p.value().shape());
  return out;
}

/// last.h5 := `file`, atomically: a hard link (a copy where links are refused) renamed over it.
void point_last_at(const std::string& file, const std::string& last) {
  const std::string tmp = last + ".tmp";
  std::error_code ec;
  fs::remove(tmp, ec);
  fs::create_hard_link(file, tmp, ec);
  if (ec) {
    ec.clear();
    fs::copy_file(file, tmp, fs::copy_options::overwrite_existing, ec);
  }
  if (!ec) fs::rename(tmp, last, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    fail("cannot update '{}' from '{}': {}", last, file, ec.message());
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Construction and resume

Trainer::Trainer(const RunConfig& config, TrainerOptions options)
    : Trainer(checked_task(config), std::make_unique<Model<float>>(config.model, config.train.seed),
              config.train, std::move(options), /*resuming=*/false) {}

Trainer::Trainer(std::unique_ptr<Task> task, std::unique_ptr<BatchModel<float>> model,
                 const TrainConfig& train, TrainerOptions options)
    : Trainer(std::move(task), std::move(model), train, std::move(options), /*resuming=*/false) {}

Trainer::Trainer(std::unique_ptr<Task> task, std::unique_ptr<BatchModel<float>> model,
                 const TrainConfig& train, TrainerOptions options, bool resuming)
    : train_(train),
      opt_(std::move(options)),
      task_(std::move(task)),
      model_(std::move(model)),
      comm_(opt_.comm ? opt_.comm : &local_communicator()) {
  QKV_CHECK(task_ && model_, "Trainer: a task and a model are needed");
  train_.validate();
  QKV_CHECK(task_->size(Split::kTrain) > 0, "task '{}' has no training examples", task_->name());
  if (distributed()) {
    const int64_t B = std::min(train_.batch_size, task_->size(Split::kTrain));
    QKV_CHECK(B >= comm_->size(),
              "--batch-size {}: {} ranks need at least one example each; use a batch of at least "
              "{} or fewer ranks",
              B, comm_->size(), comm_->size());
    if (comm_->rank() > 0) opt_.progress = Progress::kQuiet;  // rank 0 shows the run
  }
  if (writes()) {
    std::error_code ec;
    if (fs::exists(opt_.out_dir, ec) && !fs::is_directory(opt_.out_dir, ec))
      fail("output folder '{}' is a file; choose another --out", opt_.out_dir);
    fs::create_directories(opt_.out_dir, ec);
    QKV_CHECK(!ec && fs::is_directory(opt_.out_dir), "cannot create output folder '{}': {}",
              opt_.out_dir, ec.message());
    lock_ = RunDirLock(opt_.out_dir);  // before looking inside: two runs cannot both pass
    if (!resuming) check_out_dir(opt_.out_dir, opt_.force);
  }
  model_->train();
  params_ = model_->named_parameters();
  optimizer_ = make_optimizer<float>(
      train_.optimizer, params_, json{{"lr", train_.lr}, {"weight_decay", train_.weight_decay}});
  schedule_ = std::make_unique<LrSchedule>(LrSchedule::parse(
      train_.schedule, train_.lr, train_.steps, train_.warmup, train_.min_lr_ratio));
  data_rng_ = Rng(train_.seed ^ kDataStream);
  if (distributed()) averager_ = std::make_unique<GradientAverager>(*comm_, params_);
  shards_ = std::make_unique<ThreadShards>(resolve_shards(train_, *model_), params_);
  if (!resuming) {
    prepare_out_dir(/*resuming=*/false, 0);
    start_epoch();
  }
}

Trainer::~Trainer() = default;

namespace {

/// The train config of a checkpoint with the allowed overrides applied.
TrainConfig resumed_train_config(const Checkpoint& ck, const std::string& checkpoint,
                                 const json& overrides) {
  static const std::vector<std::string> kChangeable = {
      "steps",          "eval_every",   "eval_examples", "save_every", "keep",
      "skip_nonfinite", "lr",           "schedule",      "warmup",     "min_lr_ratio",
      "clip",           "weight_decay", "shards"};
  QKV_CHECK(ck.optimizer.has_value(),
            "checkpoint '{}' holds no optimizer state (a model-only checkpoint); it cannot be "
            "resumed, only evaluated",
            checkpoint);
  json train = ck.train_config;
  if (overrides.is_object()) {
    for (auto it = overrides.begin(); it != overrides.end(); ++it) {
      if (std::find(kChangeable.begin(), kChangeable.end(), it.key()) == kChangeable.end()) {
        std::string list;
        for (const std::string& k : kChangeable) list += (list.empty() ? "" : ", ") + k;
        fail("'{}' cannot change when resuming (the run was built with it); changeable: {}",
             it.key(), list);
      }
      train[it.key()] = it.value();
    }
  }
  TrainConfig t;
  try {
    t = TrainConfig::from_json(train);
  } catch (const Error& e) {
    fail("checkpoint '{}': {}", checkpoint, e.what());
  }
  QKV_CHECK(ck.train.step <= t.steps,
            "checkpoint '{}' is at step {}, past the run's {} steps; pass a larger --steps",
            checkpoint, ck.train.step, t.steps);
  return t;
}

/// The output folder of a resumed run (default: the checkpoint's), and whether it is that one.
std::pair<std::string, bool> resume_folder(const std::string& checkpoint, std::string out_dir) {
  std::string ck_dir = fs::path(checkpoint).parent_path().string();
  if (ck_dir.empty()) ck_dir = ".";
  if (out_dir.empty()) out_dir = ck_dir;
  std::error_code ec;
  return {out_dir, fs::equivalent(out_dir, ck_dir, ec)};
}

}  // namespace

std::unique_ptr<Trainer> Trainer::resume(const std::string& checkpoint, TrainerOptions options,
                                         const json& train_overrides) {
  TrainedModel l = load_trained(checkpoint);  // the one loading path, stored vocabulary too
  const TrainConfig train = resumed_train_config(l.ckpt, checkpoint, train_overrides);
  return resume_from(l.ckpt, checkpoint, std::move(l.task), std::move(l.model), train,
                     std::move(options));
}

std::unique_ptr<Trainer> Trainer::resume(const std::string& checkpoint, std::unique_ptr<Task> task,
                                         std::unique_ptr<BatchModel<float>> model,
                                         TrainerOptions options, const json& train_overrides) {
  QKV_CHECK(task && model, "Trainer::resume: a task and a model are needed");
  const Checkpoint ck = load_checkpoint(checkpoint, shapes_of(*model));
  const TrainConfig train = resumed_train_config(ck, checkpoint, train_overrides);
  return resume_from(ck, checkpoint, std::move(task), std::move(model), train, std::move(options));
}

std::unique_ptr<Trainer> Trainer::resume_from(const Checkpoint& ck, const std::string& checkpoint,
                                              std::unique_ptr<Task> task,
                                              std::unique_ptr<BatchModel<float>> model,
                                              const TrainConfig& train, TrainerOptions options) {
  const auto [dir, same] = resume_folder(checkpoint, options.out_dir);
  options.out_dir = dir;
  const Communicator* comm = options.comm ? options.comm : &local_communicator();
  if (!same && comm->rank() == 0) check_out_dir(dir, options.force);
  std::unique_ptr<Trainer> t(
      new Trainer(std::move(task), std::move(model), train, std::move(options), /*resuming=*/true));
  t->restore(ck, checkpoint);
  if (!same && t->writes()) {  // the new folder starts with the run's history: whole curves
    const std::string from = (fs::path(checkpoint).parent_path() / "metrics.jsonl").string();
    std::error_code ec;
    if (fs::exists(from, ec) && !fs::exists(t->path("metrics.jsonl"), ec)) {
      fs::copy_file(from, t->path("metrics.jsonl"), ec);
      if (!ec) truncate_metrics(t->path("metrics.jsonl"), t->step_);
    }
  }
  return t;
}

void Trainer::restore(const Checkpoint& ck, const std::string& checkpoint) {
  model_->load_parameters(ck.params);
  OptimizerState<float> state = *ck.optimizer;
  QKV_CHECK(state.type == train_.optimizer,
            "checkpoint '{}': optimizer is '{}' but the train config says '{}'", checkpoint,
            state.type, train_.optimizer);
  state.hparams["weight_decay"] = train_.weight_decay;
  optimizer_->import_state(state);

  const json& x = ck.train.extra;
  auto get = [&](const char* key, auto fallback) {
    return x.contains(key) && !x[key].is_null() ? x[key].get<decltype(fallback)>() : fallback;
  };
  const int64_t n_train = task_->size(Split::kTrain);
  QKV_CHECK(get("train_examples", n_train) == n_train,
            "checkpoint '{}' was trained on {} examples but the task now has {}; it cannot be "
            "resumed exactly",
            checkpoint, get("train_examples", n_train), n_train);
  step_ = ck.train.step;
  epoch_ = ck.train.epoch;
  best_val_accuracy_ = get("best_val_accuracy", -1.0);
  best_val_loss_ = get("best_val_loss", std::numeric_limits<double>::max());
  best_step_ = get("best_step", int64_t(-1));
  skipped_ = get("skipped_steps", int64_t(0));
  bool have_data = false;
  for (const auto& [name, s] : ck.train.rng) {
    if (name == "data") {
      data_rng_.set_state(s);
      have_data = true;
    } else {
      model_->set_rng_state(name, s);
    }
  }
  QKV_CHECK(have_data, "checkpoint '{}' holds no data-order generator state ('data' in /train/rng)",
            checkpoint);
  start_epoch();  // redraws this epoch's order from its starting state
  const int64_t pos = get("epoch_position", int64_t(0));
  QKV_CHECK(pos >= 0 && pos <= n_train, "checkpoint '{}': epoch position {} out of range",
            checkpoint, pos);
  pos_ = pos;
  resumed_ = true;
  prepare_out_dir(/*resuming=*/true, step_);
}

// ---------------------------------------------------------------------------------------------
// Output folder

void Trainer::prepare_out_dir(bool resuming, int64_t resume_step) {
  if (!writes()) return;
  const int stale = remove_stale_temporaries(opt_.out_dir);
  if (stale > 0)
    fmt::print(stderr,
               "qkv: note: removed {} unfinished file{} (*.tmp) that a stopped run left in "
               "'{}'\n",
               stale, stale == 1 ? "" : "s", opt_.out_dir);
  std::error_code ec;
  saved_steps_.clear();
  std::vector<std::string> dropped;
  for (const std::string& name : folder_entries(opt_.out_dir)) {
    if (!resuming) {
      if (is_run_file(name)) fs::remove_all(path(name), ec);  // --force: the earlier run's files
      continue;
    }
    const int64_t s = parse_step_name(name);
    if (s > resume_step) {
      fs::remove(path(name), ec);  // the future of the run being resumed: written again
      dropped.push_back(name);
    } else if (s >= 0) {
      saved_steps_.push_back(s);
    }
  }
  std::sort(saved_steps_.begin(), saved_steps_.end());
  if (!resuming) return;
  int64_t later_records = 0;
  if (fs::exists(path("metrics.jsonl"), ec))
    for (const MetricsRecord& r : read_metrics(path("metrics.jsonl")))
      later_records += r.step > resume_step;
  if (!dropped.empty() || later_records > 0)
    fmt::print(stderr,
               "qkv: note: resuming from step {} in '{}': {} later step file{} removed and {} "
               "later metrics record{} dropped; the run continues from there\n",
               resume_step, opt_.out_dir, dropped.size(), dropped.size() == 1 ? "" : "s",
               later_records, later_records == 1 ? "" : "s");
  truncate_metrics(path("metrics.jsonl"), resume_step);
  truncate_jsonl(path("probe_attention.jsonl"), resume_step);
}

std::string Trainer::path(const std::string& name) const {
  return (fs::path(opt_.out_dir) / name).string();
}

std::string Trainer::last_good_checkpoint() const {
  return saved_steps_.empty()
             ? std::string("No checkpoint was written")
             : "The last good checkpoint is " + path(step_checkpoint_name(saved_steps_.back()));
}

// ---------------------------------------------------------------------------------------------
// Data order, checkpoints

void Trainer::start_epoch() {
  epoch_start_ = data_rng_.state();
  order_ = data_rng_.permutation<uint32_t>(task_->size(Split::kTrain));
  pos_ = 0;
}

Batch Trainer::next_batch() {
  const int64_t n = static_cast<int64_t>(order_.size());
  const int64_t B = std::min(train_.batch_size, n);
  if (pos_ + B > n) {  // drop the epoch's incomplete last batch
    ++epoch_;
    start_epoch();
  }
  // Across ranks, rank r takes the contiguous share [B·r/N, B·(r+1)/N) of the global batch.
  const int64_t r = comm_->rank(), N = comm_->size();
  std::vector<int64_t> idx(order_.begin() + pos_ + B * r / N,
                           order_.begin() + pos_ + B * (r + 1) / N);
  pos_ += B;
  return task_->batch(Split::kTrain, idx);
}

Checkpoint Trainer::make_checkpoint() const {
  Checkpoint c;
  c.model_config = model_->config_json();
  c.train_config = train_.to_json();
  c.task_config = task_config(*task_);
  c.params = model_->export_parameters();
  c.optimizer = optimizer_->export_state();
  c.train.step = step_;
  c.train.epoch = epoch_;
  c.train.extra = {{"epoch_position", pos_},
                   {"train_examples", static_cast<int64_t>(order_.size())},
                   {"best_val_accuracy", best_val_accuracy_},
                   {"best_val_loss", best_val_loss_},
                   {"best_step", best_step_},
                   {"skipped_steps", skipped_}};
  c.train.rng = {{"data", epoch_start_}};
  for (const auto& r : model_->rng_states()) c.train.rng.push_back(r);
  c.vocab = task_->vocab().tokens();
  if (&task_->src_vocab() != &task_->vocab()) c.src_vocab = task_->src_vocab().tokens();
  return c;
}

void Trainer::save(const std::string& file) const {
  save_checkpoint(file, make_checkpoint());
}

std::string Trainer::checkpoint_now(TrainResult& result) {
  if (!writes()) return "";
  const std::string file = path(step_checkpoint_name(step_));
  save(file);
  point_last_at(file, path("last.h5"));  // after a kill, last.h5 is the newest checkpoint
  if (saved_steps_.empty() || saved_steps_.back() != step_) saved_steps_.push_back(step_);
  while (static_cast<int64_t>(saved_steps_.size()) > train_.keep) {
    std::error_code ec;
    fs::remove(path(step_checkpoint_name(saved_steps_.front())), ec);
    saved_steps_.erase(saved_steps_.begin());
  }
  write_pictures(/*final_probe=*/false);
  result.checkpoint = file;
  return file;
}

// ---------------------------------------------------------------------------------------------
// Evaluation, probes and pictures

void Trainer::evaluate_now(MetricsRecord& rec, TrainResult& result) {
  const int64_t batch = std::max<int64_t>(train_.batch_size, 256);
  EvalResult e;
  {
    EvalMeter meter(opt_.progress, "val");
    e = evaluate_across(*comm_, *model_, *task_, Split::kVal, batch, train_.eval_examples,
                        ProbeUse::kReport, std::ref(meter));
  }
  if (e.interrupted) {  // a stop request: the partial evaluation says nothing
    stop_agreed_ = true;
    return;
  }
  rec.val_loss = e.loss;
  rec.val_accuracy = e.score.accuracy();
  if (task_->arch() != Arch::kEncoder)  // a sequence task: its per-token accuracy too
    rec.extra["val_token_accuracy"] = e.score.token_accuracy();
  // Accuracy on as many training examples (the first ones) as val was scored on: next to val
  // accuracy it shows memorising vs generalising — grokking's two curves.
  const int64_t n_train =
      std::min(task_->size(Split::kTrain), std::max<int64_t>(e.score.examples, 1));
  EvalResult tr;
  {
    EvalMeter meter(opt_.progress, "train");
    tr = evaluate_across(*comm_, *model_, *task_, Split::kTrain, batch, n_train, ProbeUse::kSkip,
                         std::ref(meter));
  }
  if (!tr.interrupted) rec.extra["train_accuracy"] = tr.score.accuracy();
  rec.extra["epoch"] = epoch_;
  if (!e.probes.empty()) {
    json probes = json::object();
    probe_metrics_.clear();
    for (const auto& [name, rep] : e.probes) {
      json metrics = json::object();
      probe_metrics_.push_back({name, {}});
      for (const auto& [metric, value] : rep.metrics) {
        metrics[metric] = value;
        probe_metrics_.back().second.push_back(metric);
      }
      probes[name] = metrics;
      if (!rep.detail.is_null()) rec.extra[name] = rep.detail;
    }
    rec.extra["probes"] = probes;
  }
  focus_ = e.focus();
  if (writes()) on_rank0([&] { record_probe(focus_); });
  // Best: the highest val accuracy, ties going to the lower val loss; for a language model
  // (Task::best_by_loss) the lowest val loss.
  const double acc = e.score.accuracy();
  const bool better =
      task_->best_by_loss()
          ? e.loss < best_val_loss_
          : acc > best_val_accuracy_ || (acc == best_val_accuracy_ && e.loss < best_val_loss_);
  if (e.score.examples > 0 && better) {
    best_val_accuracy_ = acc;
    best_val_loss_ = e.loss;
    best_step_ = step_;
    if (writes()) on_rank0([&] { save(path("best.h5")); });
  }
  result.last_eval = std::move(e);
}

void Trainer::record_probe(const HeadRef& focus) {
  ProbeAttention p;
  try {
    p = probe_attention(*model_, *task_, task_->probe());
  } catch (const Error&) {
    return;  // a task whose probe sentence does not encode (an imported vocabulary)
  }
  if (!p.read_out) return;  // decoders read out everywhere: no one row tells
  json att = json::object();
  for (const auto& [module, rows] : p.rows) att[module] = rows;
  json line = {{"step", step_}, {"tokens", p.tokens}, {"position", p.position}, {"attention", att}};
  if (!focus.empty()) line["focus"] = {{"module", focus.module}, {"head", focus.head}};
  std::ofstream out(path("probe_attention.jsonl"), std::ios::app);
  out << line.dump() << '\n';
  QKV_CHECK(out.good(), "cannot write '{}'", path("probe_attention.jsonl"));
}

void Trainer::write_pictures(bool final_probe) const {
  const std::vector<MetricsRecord> records = read_metrics(path("metrics.jsonl"));
  const std::string name = task_->name();
  write_svg(path("loss.svg"), loss_chart_svg(records, name + ": loss", /*log_y=*/true));
  write_svg(path("accuracy.svg"),
            accuracy_chart_svg(records, name + ": accuracy on train and val"));
  if (!final_probe) return;

  // Each probe's metrics over training: one curve per metric.
  for (const std::string& probe : probe_names(records)) {
    std::vector<std::string> order;
    for (const auto& [p, metrics] : probe_metrics_)
      if (p == probe) order = metrics;
    write_svg(
        path(probe + ".svg"),
        probe_chart_svg(records, probe, fmt::format("{}: {} over training", name, probe), order));
  }

  // Attention over training: the probe sentence's read-out row of the focus head, one row per
  // evaluation.
  std::ifstream in(path("probe_attention.jsonl"));
  if (!in) return;
  std::string module = focus_.module;
  int64_t head = focus_.empty() ? 0 : focus_.head;
  std::vector<double> values;
  std::vector<std::string> rows_labels, tokens;
  std::string line;
  while (std::getline(in, line)) {
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception&) {
      continue;
    }
    if (!j.contains("attention") || !j["attention"].is_object() || j["attention"].empty()) continue;
    if (module.empty()) module = j["attention"].items().begin().key();
    if (!j["attention"].contains(module)) continue;
    const json& rows = j["attention"][module];
    if (head >= static_cast<int64_t>(rows.size())) continue;
    const std::vector<double> row = rows[head].get<std::vector<double>>();
    if (tokens.empty()) tokens = j["tokens"].get<std::vector<std::string>>();
    if (row.size() != tokens.size()) continue;
    values.insert(values.end(), row.begin(), row.end());
    rows_labels.push_back(std::to_string(j["step"].get<int64_t>()));
  }
  if (rows_labels.empty()) return;
  HeatmapOptions o;
  o.title = fmt::format("attention of the read-out token over training ({} head {})", module, head);
  o.row_labels = rows_labels;
  o.col_labels = tokens;
  o.x_label = "key token";
  o.y_label = "step";
  write_svg(path("probe_attention.svg"),
            heatmap_svg(values, static_cast<int64_t>(rows_labels.size()),
                        static_cast<int64_t>(tokens.size()), o));
}

std::string Trainer::summary_line(int64_t step, const MetricsRecord& r, const EvalResult& e) const {
  std::string s = fmt::format("step {}/{}", step, train_.steps);
  if (r.loss) s += fmt::format(" | loss {:.4f}", *r.loss);
  if (r.val_loss) s += fmt::format(" | val loss {:.4f}", *r.val_loss);
  if (r.val_accuracy) s += fmt::format(" | val acc {:.2f}%", 100 * *r.val_accuracy);
  // Sequence tasks: exact-sequence accuracy, then per token (for a language model the only
  // informative one).
  const auto tok = r.extra.find("val_token_accuracy");
  if (r.val_accuracy && tok != r.extra.end() && tok->is_number())
    s += fmt::format(" (tokens {:.1f}%)", 100 * tok->get<double>());
  for (const auto& [name, rep] : e.probes)
    if (!rep.summary.empty()) s += " | " + rep.summary;
  if (r.lr) s += fmt::format(" | lr {:.2e}", *r.lr);
  return s;
}

// ---------------------------------------------------------------------------------------------
// One step's gradients, alone or across ranks

std::pair<double, double> Trainer::compute_gradients(int64_t step) {
  if (distributed()) return compute_gradients_across_ranks(step);
  const ShardTotals t = shards_->run(next_batch(), *model_);
  if (opt_.after_backward) opt_.after_backward(step, *model_);
  return {t.loss, t.tokens};
}

std::pair<double, double> Trainer::compute_gradients_across_ranks(int64_t step) {
  RankShare mine;
  std::exception_ptr error = std::exchange(held_error_, nullptr);
  if (!error) {
    try {
      reseed_dropout(step);
      const ShardTotals t = shards_->run(next_batch(), *model_);
      mine.count = t.count;  // the loss's denominator (examples: encoder)
      mine.tokens = t.tokens;
      mine.loss = t.loss;
      if (opt_.after_backward) opt_.after_backward(step, *model_);
    } catch (...) {
      error = std::current_exception();
    }
  }
  mine.failed = error != nullptr;
  mine.stop = stop_requested();
  const BatchTotals total = averager_->average(mine);
  if (total.failed) {  // a second collective, on failure only: who failed, and with what status
    const AgreedStatus agreed = agree_status(*comm_, error ? exit_status_of(error) : 0);
    if (agreed.rank == comm_->rank()) rethrow_from_rank(*comm_, error);
    throw StoppedByRank(agreed.status, agreed.rank);
  }
  stop_agreed_ = total.stop;
  return {total.loss, total.tokens};
}

void Trainer::reseed_dropout(int64_t step) {
  // Each rank draws its own masks from a stream fixed by (seed, step, rank, generator): no two
  // ranks share one, and a resumed run draws exactly what the uninterrupted one did without a
  // generator per rank in the checkpoint.
  uint64_t i = 0;
  for (const auto& [name, state] : model_->rng_states()) {
    const uint64_t key =
        (train_.seed ^ kRankDropoutStream) + 0x9E3779B97F4A7C15ULL * uint64_t(step) +
        0xBF58476D1CE4E5B9ULL * uint64_t(comm_->rank() + 1) + 0x94D049BB133111EBULL * ++i;
    model_->set_rng_state(name, Rng(key).state());
  }
}

void Trainer::on_rank0(const std::function<void()>& write) {
  if (comm_->rank() != 0) return;
  if (!distributed()) return write();
  try {
    write();
  } catch (...) {
    if (!held_error_) held_error_ = std::current_exception();
  }
}

// ---------------------------------------------------------------------------------------------
// The loop

TrainResult Trainer::run() {
  const TrainConfig& t = train_;
  TrainResult res;
  res.step = step_;
  const int64_t start_step = step_;
  ProgressDisplay display(opt_.progress, t.steps, step_);
  std::unique_ptr<MetricsWriter> metrics;
  if (writes()) on_rank0([&] { metrics = std::make_unique<MetricsWriter>(path("metrics.jsonl")); });

  display.line(fmt::format(
      "{} {}: {}, {} steps{} × batch {}{}, {} lr {:g} {}{}", resumed_ ? "resuming" : "training",
      task_->name(), model_->describe(), t.steps, resumed_ ? fmt::format(" (from {})", step_) : "",
      t.batch_size,
      fmt::format("{}{}", distributed() ? fmt::format(" over {} ranks", comm_->size()) : "",
                  shards_->shards() > 1 ? fmt::format(" in {} shards", shards_->shards()) : ""),
      t.optimizer, t.lr, t.schedule, opt_.out_dir.empty() ? "" : ", out " + opt_.out_dir));

  auto finish = [&](TrainResult::Status status) {
    display.finish();
    res.status = status;
    res.step = step_;
    res.steps_run = step_ - start_step;
    res.skipped_steps = skipped_;
    res.seconds = display.elapsed();
    res.best_val_accuracy = best_val_accuracy_;
    return res;
  };

  if (!resumed_ && step_ == 0) {  // the untrained model: where the curves start
    MetricsRecord rec;
    rec.step = 0;
    evaluate_now(rec, res);
    if (metrics) on_rank0([&] { metrics->write(rec); });
    display.line(summary_line(0, rec, res.last_eval));
  }

  bool interrupted = false;
  while (step_ < t.steps) {
    // Across ranks a stop request is acted on when every rank knows of it: after the allreduce
    // of the step it arrived in.
    if (distributed() ? stop_agreed_ : stop_requested()) {
      interrupted = true;
      break;
    }
    const int64_t s = step_ + 1;
    const auto t0 = std::chrono::steady_clock::now();
    const auto [loss, tokens] = compute_gradients(s);
    const double norm = clip_grad_norm(params_, t.clip);
    const double lr = schedule_->lr(step_);
    MetricsRecord rec;
    rec.step = s;
    rec.loss = loss;
    rec.lr = lr;
    rec.grad_norm = norm;
    if (!std::isfinite(norm) || !std::isfinite(loss)) {
      const std::optional<std::string> bad = first_nonfinite_grad(params_);
      const std::string what = bad ? fmt::format("the gradient of '{}' is not finite", *bad)
                                   : fmt::format("the loss is not finite ({})", loss);
      if (!t.skip_nonfinite) {
        rec.extra["nonfinite"] = bad ? *bad : "loss";
        if (metrics) on_rank0([&] { metrics->write(rec); });
        res.message = fmt::format(
            "step {}: {} (loss {}, gradient norm {}); training stopped. {}. Lower --lr, keep "
            "--clip on, or pass --skip-nonfinite to skip such steps",
            s, what, loss, norm, last_good_checkpoint());
        return finish(TrainResult::Status::kDiverged);
      }
      ++skipped_;
      optimizer_->zero_grad();
      rec.extra["skipped"] = true;
      display.line(fmt::format("step {}: {}; step skipped ({} so far)", s, what, skipped_));
    } else {
      optimizer_->set_lr(lr);
      optimizer_->step();
      optimizer_->zero_grad();
      for (const auto& [name, p] : params_) {
        if (p.value().all_finite()) continue;
        res.message = fmt::format(
            "step {}: the update made parameter '{}' non-finite (lr {:g}); training stopped. {}. "
            "Lower --lr",
            s, name, lr, last_good_checkpoint());
        return finish(TrainResult::Status::kDiverged);
      }
    }
    step_ = s;
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rec.tokens_per_s = dt > 0 ? tokens / dt : 0.0;
    if (skipped_ > 0) rec.extra["skipped_steps"] = skipped_;
    const bool eval = s % t.eval_every == 0 || s == t.steps;
    if (eval) evaluate_now(rec, res);
    if (metrics) on_rank0([&] { metrics->write(rec); });
    if (eval && rec.val_accuracy) {
      display.val_accuracy(*rec.val_accuracy);
      display.line(summary_line(s, rec, res.last_eval));
    }
    if (s % t.save_interval() == 0) on_rank0([&] { checkpoint_now(res); });
    display.step(s, loss, lr, *rec.tokens_per_s);
  }

  if (interrupted && writes() && (saved_steps_.empty() || saved_steps_.back() != step_))
    on_rank0([&] { checkpoint_now(res); });
  if (writes()) {
    on_rank0([&] {
      save(path("last.h5"));
      write_pictures(/*final_probe=*/true);
    });
    if (!interrupted) res.checkpoint = path("last.h5");
  }
  // Across ranks: the last chance for rank 0's held write error to stop every rank together.
  if (distributed())
    run_together(*comm_, [&] {
      if (held_error_) std::rethrow_exception(std::exchange(held_error_, nullptr));
    });
  finish(interrupted ? TrainResult::Status::kInterrupted : TrainResult::Status::kCompleted);
  if (interrupted) {
    res.message = opt_.out_dir.empty()
                      ? fmt::format("interrupted after step {}", step_)
                      : fmt::format(
                            "interrupted after step {}: saved {} and {}; continue with: qkv train "
                            "--resume {}",
                            step_, res.checkpoint, path("last.h5"), path("last.h5"));
    return res;
  }
  res.message = resumed_ ? fmt::format("trained steps {}–{} ({} steps) in {:.1f} s", start_step + 1,
                                       step_, res.steps_run, res.seconds)
                         : fmt::format("trained {} steps in {:.1f} s", step_, res.seconds);
  if (res.last_eval.score.examples > 0 && task_->best_by_loss())
    res.message += fmt::format("; val loss {:.4f} (best {:.4f} at step {})", res.last_eval.loss,
                               best_val_loss_, best_step_);
  else if (res.last_eval.score.examples > 0)
    res.message += fmt::format("; val loss {:.4f}, val accuracy {:.2f}% (best {:.2f}% at step {})",
                               res.last_eval.loss, 100 * res.last_eval.score.accuracy(),
                               100 * best_val_accuracy_, best_step_);
  if (skipped_ > 0) res.message += fmt::format("; {} steps skipped (non-finite)", skipped_);
  if (!opt_.out_dir.empty()) res.message += "; checkpoints and pictures in " + opt_.out_dir;
  return res;
}

}  // namespace qkv
