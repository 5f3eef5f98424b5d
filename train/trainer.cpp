#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

#include <fmt/core.h>

#include "autograd/var.h"
#include "core/error.h"
#include "train/clip.h"
#include "train/plot.h"

namespace qkv {

using json = nlohmann::json;
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// TrainConfig

namespace {

/// The data-order generator's seed: the run seed on a stream of its own (the model's
/// initialisation and dropout streams are derived from the same seed inside Model).
constexpr uint64_t kDataStream = 0xD1B54A32D192ED03ULL;

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const std::string& k : items) s += (s.empty() ? "" : ", ") + k;
  return s;
}

bool contains(const std::vector<std::string>& items, const std::string& x) {
  return std::find(items.begin(), items.end(), x) != items.end();
}

/// Reads typed keys of a config object, naming the key on any error.
class Reader {
 public:
  Reader(const char* what, const json& j) : what_(what), j_(j) {}

  const json* find(const char* key) const {
    if (!j_.is_object()) return nullptr;
    auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  void integer(const char* key, int64_t& out) const {
    const json* v = find(key);
    if (!v) return;
    if (v->is_number_integer()) {
      out = v->get<int64_t>();
    } else if (v->is_number_float() && std::nearbyint(v->get<double>()) == v->get<double>() &&
               std::fabs(v->get<double>()) < 9e15) {
      out = static_cast<int64_t>(v->get<double>());
    } else {
      fail("{}: '{}' must be an integer, got {}", what_, key, v->dump());
    }
  }
  void number(const char* key, double& out) const {
    const json* v = find(key);
    if (!v) return;
    QKV_CHECK(v->is_number(), "{}: '{}' must be a number, got {}", what_, key, v->dump());
    out = v->get<double>();
  }
  void string(const char* key, std::string& out) const {
    const json* v = find(key);
    if (!v) return;
    QKV_CHECK(v->is_string(), "{}: '{}' must be a string, got {}", what_, key, v->dump());
    out = v->get<std::string>();
  }
  void boolean(const char* key, bool& out) const {
    const json* v = find(key);
    if (!v) return;
    QKV_CHECK(v->is_boolean(), "{}: '{}' must be true or false, got {}", what_, key, v->dump());
    out = v->get<bool>();
  }

 private:
  const char* what_;
  const json& j_;
};

}  // namespace

const std::vector<std::string>& TrainConfig::keys() {
  static const std::vector<std::string> k = {
      "steps",         "batch_size", "lr",           "optimizer", "weight_decay",
      "warmup",        "schedule",   "min_lr_ratio", "clip",      "eval_every",
      "eval_examples", "save_every", "keep",         "seed",      "skip_nonfinite"};
  return k;
}

TrainConfig TrainConfig::from_json(const json& j) {
  QKV_CHECK(j.is_object() || j.is_null(), "train config must be a JSON object, got {}", j.dump());
  if (j.is_object())
    for (auto it = j.begin(); it != j.end(); ++it)
      QKV_CHECK(contains(keys(), it.key()), "train config: unknown key '{}' (known keys: {})",
                it.key(), join(keys()));
  TrainConfig c;
  Reader r("train config", j);
  r.integer("steps", c.steps);
  r.integer("batch_size", c.batch_size);
  r.number("lr", c.lr);
  r.string("optimizer", c.optimizer);
  r.number("weight_decay", c.weight_decay);
  r.integer("warmup", c.warmup);
  r.string("schedule", c.schedule);
  r.number("min_lr_ratio", c.min_lr_ratio);
  r.number("clip", c.clip);
  r.integer("eval_every", c.eval_every);
  r.integer("eval_examples", c.eval_examples);
  r.integer("save_every", c.save_every);
  r.integer("keep", c.keep);
  int64_t seed = 0;
  r.integer("seed", seed);
  QKV_CHECK(seed >= 0, "train config: 'seed' must be a non-negative integer, got {}", seed);
  c.seed = static_cast<uint64_t>(seed);
  r.boolean("skip_nonfinite", c.skip_nonfinite);
  c.validate();
  return c;
}

json TrainConfig::to_json() const {
  return {{"steps", steps},
          {"batch_size", batch_size},
          {"lr", lr},
          {"optimizer", optimizer},
          {"weight_decay", weight_decay},
          {"warmup", warmup},
          {"schedule", schedule},
          {"min_lr_ratio", min_lr_ratio},
          {"clip", clip},
          {"eval_every", eval_every},
          {"eval_examples", eval_examples},
          {"save_every", save_every},
          {"keep", keep},
          {"seed", seed},
          {"skip_nonfinite", skip_nonfinite}};
}

void TrainConfig::validate() const {
  const char* w = "train config";
  QKV_CHECK(steps >= 1, "{}: 'steps' must be at least 1, got {}", w, steps);
  QKV_CHECK(batch_size >= 1, "{}: 'batch_size' must be at least 1, got {}", w, batch_size);
  QKV_CHECK(std::isfinite(lr) && lr > 0, "{}: 'lr' must be a positive number, got {}", w, lr);
  QKV_CHECK(optimizer == "adamw" || optimizer == "adam" || optimizer == "sgd",
            "{}: 'optimizer' must be adamw, adam or sgd, got '{}'", w, optimizer);
  QKV_CHECK(std::isfinite(weight_decay) && weight_decay >= 0,
            "{}: 'weight_decay' must be >= 0, got {}", w, weight_decay);
  QKV_CHECK(warmup >= 0, "{}: 'warmup' must be >= 0, got {}", w, warmup);
  QKV_CHECK(schedule == "constant" || schedule == "cosine" || schedule == "linear",
            "{}: 'schedule' must be constant, cosine or linear, got '{}'", w, schedule);
  QKV_CHECK(schedule == "constant" || warmup < steps,
            "{}: 'warmup' ({}) must be smaller than 'steps' ({}) for the {} schedule", w, warmup,
            steps, schedule);
  QKV_CHECK(min_lr_ratio >= 0 && min_lr_ratio <= 1, "{}: 'min_lr_ratio' must be in [0, 1], got {}",
            w, min_lr_ratio);
  QKV_CHECK(std::isfinite(clip) && clip >= 0, "{}: 'clip' must be >= 0 (0 = off), got {}", w, clip);
  QKV_CHECK(eval_every >= 1, "{}: 'eval_every' must be at least 1, got {}", w, eval_every);
  QKV_CHECK(eval_examples >= 0, "{}: 'eval_examples' must be >= 0 (0 = all), got {}", w,
            eval_examples);
  QKV_CHECK(save_every >= 0, "{}: 'save_every' must be >= 0 (0 = eval_every), got {}", w,
            save_every);
  QKV_CHECK(keep >= 1, "{}: 'keep' must be at least 1, got {}", w, keep);
}

json RunConfig::to_json() const {
  return {{"task", task}, {"model", model.to_json()}, {"train", train.to_json()}};
}

// ---------------------------------------------------------------------------------------------
// Task and run configs

json task_config(const Task& task) {
  json j = task.options();
  if (!j.is_object()) j = json::object();
  j["name"] = task.name();
  return j;
}

std::unique_ptr<Task> make_task_from_config(const json& config, const StoredVocab* stored) {
  QKV_CHECK(config.is_object(), "task config must be a JSON object with a 'name', got {}",
            config.dump());
  auto it = config.find("name");
  QKV_CHECK(it != config.end() && it->is_string(),
            "task config has no 'name' (known tasks: {}): {}", join(known_tasks()), config.dump());
  json options = config;
  options.erase("name");
  return make_task(it->get<std::string>(), options, stored);
}

namespace {

/// The "task", "model" or "train" part of a config-file-like object (null when absent).
json part(const json& j, const char* key, const char* what) {
  if (j.is_null()) return nullptr;
  QKV_CHECK(j.is_object(), "{} must be a JSON object with keys task, model, train; got {}", what,
            j.dump());
  for (auto it = j.begin(); it != j.end(); ++it)
    QKV_CHECK(it.key() == "task" || it.key() == "model" || it.key() == "train",
              "{}: unknown key '{}' (known keys: task, model, train)", what, it.key());
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  if (std::string(key) == "task" && it->is_string()) return json{{"name", *it}};
  QKV_CHECK(it->is_object(), "{}: '{}' must be a JSON object, got {}", what, key, it->dump());
  return *it;
}

void merge_into(json& base, const json& patch) {
  if (!patch.is_object()) return;
  for (auto it = patch.begin(); it != patch.end(); ++it) base[it.key()] = it.value();
}

/// Throws unless the model config fits the task (vocabulary, classes, lengths, arch).
void check_model_fits(const ModelConfig& m, const Task& task) {
  const std::string t = task.name();
  QKV_CHECK(m.arch == task.arch(), "model config: 'arch' is {} but task '{}' needs {}", m.arch, t,
            task.arch());
  QKV_CHECK(m.vocab_size == task.vocab().size(),
            "model config: 'vocab_size' is {} but task '{}' has {} tokens; leave it out to take "
            "the task's",
            m.vocab_size, t, task.vocab().size());
  QKV_CHECK(m.n_out == task.n_out(),
            "model config: 'n_out' is {} but task '{}' has {} classes; leave it out to take the "
            "task's",
            m.n_out, t, task.n_out());
  QKV_CHECK(m.max_len >= task.max_len(),
            "model config: 'max_len' is {} but task '{}' has sequences of up to {} tokens",
            m.max_len, t, task.max_len());
  if (m.arch == "seq2seq") {
    QKV_CHECK(m.src_vocab_size == task.src_vocab().size(),
              "model config: 'src_vocab_size' is {} but task '{}' has {} source tokens",
              m.src_vocab_size, t, task.src_vocab().size());
    QKV_CHECK(m.src_max_len >= task.src_max_len(),
              "model config: 'src_max_len' is {} but task '{}' has sources of up to {} tokens",
              m.src_max_len, t, task.src_max_len());
  }
}

}  // namespace

RunConfig resolve_run_config(const std::string& task_name, const json& file,
                             const json& overrides) {
  const json file_task = part(file, "task", "config file");
  const json over_task = part(overrides, "task", "overrides");
  std::string name;
  if (over_task.is_object() && over_task.contains("name")) {
    QKV_CHECK(over_task["name"].is_string(), "task 'name' must be a string, got {}",
              over_task["name"].dump());
    name = over_task["name"].get<std::string>();
  } else if (!task_name.empty()) {
    name = task_name;
  } else if (file_task.is_object() && file_task.contains("name")) {
    QKV_CHECK(file_task["name"].is_string(), "config file: task 'name' must be a string, got {}",
              file_task["name"].dump());
    name = file_task["name"].get<std::string>();
  }
  QKV_CHECK(!name.empty(), "no task given: pass --task NAME (known tasks: {})",
            join(known_tasks()));

  json options = json::object();
  merge_into(options, file_task);
  merge_into(options, over_task);
  options.erase("name");
  std::unique_ptr<Task> task = make_task(name, options);

  RunConfig cfg;
  cfg.task = task_config(*task);

  json model = task->default_model_config();
  const json file_model = part(file, "model", "config file");
  const json over_model = part(overrides, "model", "overrides");
  const bool d_model_given = (file_model.is_object() && file_model.contains("d_model")) ||
                             (over_model.is_object() && over_model.contains("d_model"));
  const bool d_ff_given = (file_model.is_object() && file_model.contains("d_ff")) ||
                          (over_model.is_object() && over_model.contains("d_ff"));
  const bool ff_follows = model.contains("d_ff") && model.contains("d_model") &&
                          model["d_ff"] == json(4 * model["d_model"].get<int64_t>());
  merge_into(model, file_model);
  merge_into(model, over_model);
  if (d_model_given && !d_ff_given && ff_follows && model["d_model"].is_number_integer())
    model["d_ff"] = 4 * model["d_model"].get<int64_t>();
  cfg.model = ModelConfig::from_json(model);
  check_model_fits(cfg.model, *task);

  json train = task->default_train_config();
  const json file_train = part(file, "train", "config file");
  const json over_train = part(overrides, "train", "overrides");
  const bool warmup_given = (file_train.is_object() && file_train.contains("warmup")) ||
                            (over_train.is_object() && over_train.contains("warmup"));
  merge_into(train, file_train);
  merge_into(train, over_train);
  // A shorter run than the task's default keeps its warm-up a tenth of the run at most, unless
  // the warm-up was given.
  if (!warmup_given && train.contains("warmup") && train.contains("steps") &&
      train["warmup"].is_number_integer() && train["steps"].is_number_integer() &&
      train["warmup"].get<int64_t>() >= train["steps"].get<int64_t>())
    train["warmup"] = train["steps"].get<int64_t>() / 10;
  cfg.train = TrainConfig::from_json(train);
  return cfg;
}

// ---------------------------------------------------------------------------------------------
// Evaluation

namespace {

/// Argmax over the last axis of `logits`, shaped like `targets` ([B] or [B, T]).
IndexTensor argmax(const Tensor<float>& logits, const Shape& shape) {
  IndexTensor out(shape);
  const int64_t rows = out.numel();
  const int64_t classes = rows ? logits.numel() / rows : 0;
  QKV_CHECK(rows * classes == logits.numel(), "evaluate: logits {} do not match targets {}",
            logits.shape(), shape);
  const float* p = logits.data();
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = p + r * classes;
    out[r] = static_cast<int32_t>(std::max_element(row, row + classes) - row);
  }
  return out;
}

int64_t count_targets(const Batch& b) {
  int64_t n = 0;
  for (int32_t t : b.targets.data) n += t >= 0;
  return n;
}

int64_t count_tokens(const Batch& b) {
  auto real = [](const IndexTensor& ids, const BoolTensor& mask) -> int64_t {
    if (mask.empty()) return ids.numel();
    int64_t n = 0;
    for (uint8_t m : mask.data) n += m != 0;
    return n;
  };
  return real(b.tokens, b.mask) + (b.src.empty() ? 0 : real(b.src, b.src_mask));
}

/// Restores a model's training mode when it goes out of scope.
class ModeGuard {
 public:
  explicit ModeGuard(Model<float>& m) : m_(m), was_(m.training()) { m_.eval(); }
  ~ModeGuard() { m_.train(was_); }
  ModeGuard(const ModeGuard&) = delete;
  ModeGuard& operator=(const ModeGuard&) = delete;

 private:
  Model<float>& m_;
  bool was_;
};

/// Sums of the pronoun row's attention on the two nouns, per module and head.
struct ReferentSums {
  std::vector<std::string> modules;
  int64_t heads = 0, sentences = 0;
  std::vector<std::vector<double>> ref, dis, wins;

  void add(const std::vector<std::pair<std::string, Tensor<float>>>& attention, const Batch& b) {
    if (modules.empty()) {
      for (const auto& [path, P] : attention) {
        if (path.find("xattn") != std::string::npos) continue;  // self-attention only
        modules.push_back(path);
        heads = P.size(1);
      }
      ref.assign(modules.size(), std::vector<double>(heads, 0.0));
      dis = wins = ref;
    }
    const int64_t B = b.batch_size();
    for (int64_t i = 0; i < B; ++i) {
      const int32_t q = b.positions[i], r = b.referent_pos[i], d = b.distractor_pos[i];
      if (q < 0 || r < 0 || d < 0) continue;
      ++sentences;
      size_t m = 0;
      for (const auto& [path, P] : attention) {
        if (path.find("xattn") != std::string::npos) continue;
        const int64_t H = P.size(1), T = P.size(2), S = P.size(3);
        for (int64_t h = 0; h < H; ++h) {
          const float* row = P.data() + ((i * H + h) * T + q) * S;
          ref[m][h] += row[r];
          dis[m][h] += row[d];
          wins[m][h] += row[r] > row[d] ? 1.0 : 0.0;
        }
        ++m;
      }
    }
  }

  ReferentAttention result() const {
    ReferentAttention a;
    a.sentences = sentences;
    if (sentences == 0) return a;
    a.modules = modules;
    a.heads = heads;
    a.referent = ref;
    a.distractor = dis;
    a.wins = wins;
    double best = -1, best_margin = -1e9;
    for (size_t m = 0; m < modules.size(); ++m) {
      for (int64_t h = 0; h < heads; ++h) {
        a.referent[m][h] /= double(sentences);
        a.distractor[m][h] /= double(sentences);
        a.wins[m][h] /= double(sentences);
        const double margin = a.referent[m][h] - a.distractor[m][h];
        if (a.wins[m][h] > best || (a.wins[m][h] == best && margin > best_margin)) {
          best = a.wins[m][h];
          best_margin = margin;
          a.best_module = static_cast<int64_t>(m);
          a.best_head = h;
        }
      }
    }
    return a;
  }
};

}  // namespace

EvalResult evaluate(Model<float>& model, const Task& task, Split split, int64_t batch_size,
                    int64_t max_examples) {
  QKV_CHECK(batch_size >= 1, "evaluate: batch size must be at least 1, got {}", batch_size);
  ModeGuard mode(model);
  NoGradGuard no_grad;
  int64_t n = task.size(split);
  if (max_examples > 0) n = std::min(n, max_examples);
  EvalResult res;
  double loss_sum = 0;
  int64_t loss_count = 0;
  ReferentSums sums;
  for (int64_t start = 0; start < n; start += batch_size) {
    const Batch b = task.batch_range(split, start, std::min(batch_size, n - start));
    const bool referent = !b.referent_pos.empty() && !b.distractor_pos.empty();
    const ForwardResult<float> r = model.forward(b, /*keep_attention=*/referent);
    const int64_t count = count_targets(b);
    if (r.loss.defined() && count > 0) {
      loss_sum += double(r.loss.item()) * double(count);
      loss_count += count;
    }
    res.score += task.score(b, argmax(r.logits.value(), b.targets.shape));
    if (referent) sums.add(r.attention, b);
  }
  res.loss = loss_count ? loss_sum / double(loss_count) : std::numeric_limits<double>::quiet_NaN();
  res.referent = sums.result();
  return res;
}

ProbeAttention probe_attention(Model<float>& model, const Task& task, const std::string& text) {
  ModeGuard mode(model);
  NoGradGuard no_grad;
  const Batch b = task.encode(text, /*with_answer=*/true);
  ProbeAttention out;
  for (int32_t id : b.tokens.data) out.tokens.push_back(task.vocab().token(id));
  out.position = b.positions.empty() ? b.seq_len() - 1 : b.positions[0];
  const ForwardResult<float> r = model.forward(b, /*keep_attention=*/true);
  for (const auto& [path, P] : r.attention) {
    if (path.find("xattn") != std::string::npos) continue;
    const int64_t H = P.size(1), T = P.size(2), S = P.size(3);
    std::vector<std::vector<double>> rows(H);
    for (int64_t h = 0; h < H; ++h) {
      const float* row = P.data() + (h * T + out.position) * S;
      rows[h].assign(row, row + S);
    }
    out.rows.emplace_back(path, std::move(rows));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Stop requests (SIGINT, SIGTERM)

namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_stop_signal(int sig) {
  if (g_stop) {  // a second signal: stop now, with the default action
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_stop = 1;
}

}  // namespace

void request_stop() {
  g_stop = 1;
}
bool stop_requested() {
  return g_stop != 0;
}
void clear_stop_request() {
  g_stop = 0;
}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// ---------------------------------------------------------------------------------------------
// Output folder

std::string step_checkpoint_name(int64_t step) {
  return fmt::format("step-{:06d}.h5", step);
}

namespace {

/// The step of a "step-XXXXXX.h5" name, or -1.
int64_t parse_step_name(const std::string& name) {
  if (name.size() < 11 || name.compare(0, 5, "step-") != 0 ||
      name.compare(name.size() - 3, 3, ".h5") != 0)
    return -1;
  const std::string digits = name.substr(5, name.size() - 8);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}

const char* const kRunFiles[] = {
    "metrics.jsonl",       "loss.svg", "accuracy.svg", "probe_attention.jsonl",
    "probe_attention.svg", "best.h5",  "last.h5"};

/// A file a run writes (and --force may remove), temporaries included.
bool is_run_file(std::string name) {
  if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0)
    name.resize(name.size() - 4);
  for (const char* f : kRunFiles)
    if (name == f) return true;
  return parse_step_name(name) >= 0;
}

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return names;
  for (const auto& e : fs::directory_iterator(dir, ec)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

void check_out_dir(const std::string& dir, bool force) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    fail("output folder '{}' is a file; choose another --out", dir);
  const std::vector<std::string> names = entries(dir);
  if (names.empty() || force) return;
  fail(
      "output folder '{}' is not empty ({} entries, e.g. '{}'); choose another --out, continue "
      "that run with --resume {}/last.h5, or pass --force to replace it",
      dir, names.size(), names.front(), dir);
}

/// Keeps the lines of a JSON-lines file whose "step" is <= last_step (atomic rewrite).
void truncate_jsonl(const std::string& path, int64_t last_step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      const json j = json::parse(line);
      if (j.is_object() && j.contains("step") && j["step"].is_number_integer() &&
          j["step"].get<int64_t>() <= last_step)
        kept += line + "\n";
    } catch (const json::exception&) {  // a line cut by a crash
    }
  }
  in.close();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    QKV_CHECK(out.good(), "cannot write '{}'", tmp);
    out << kept;
  }
  fs::rename(tmp, path);
}

}  // namespace

void Trainer::prepare_out_dir(bool resuming, int64_t resume_step) {
  if (opt_.out_dir.empty()) return;
  std::error_code ec;
  fs::create_directories(opt_.out_dir, ec);
  QKV_CHECK(!ec && fs::is_directory(opt_.out_dir), "cannot create output folder '{}': {}",
            opt_.out_dir, ec.message());
  saved_steps_.clear();
  for (const std::string& name : entries(opt_.out_dir)) {
    if (!resuming) {
      if (is_run_file(name)) fs::remove(path(name), ec);  // --force: the earlier run's files
      continue;
    }
    const int64_t s = parse_step_name(name);
    if (s > resume_step) {
      fs::remove(path(name), ec);  // the future of the run being resumed: written again
    } else if (s >= 0) {
      saved_steps_.push_back(s);
    }
  }
  std::sort(saved_steps_.begin(), saved_steps_.end());
  if (resuming) {
    truncate_metrics(path("metrics.jsonl"), resume_step);
    truncate_jsonl(path("probe_attention.jsonl"), resume_step);
  }
}

std::string Trainer::path(const std::string& name) const {
  return (fs::path(opt_.out_dir) / name).string();
}

// ---------------------------------------------------------------------------------------------
// Progress display

namespace {

std::string clock_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02d}", s / 60, s % 60);
}

std::string rate_text(double tokens_per_s) {
  if (tokens_per_s >= 1e6) return fmt::format("{:.2f}M tok/s", tokens_per_s / 1e6);
  if (tokens_per_s >= 1e3) return fmt::format("{:.1f}k tok/s", tokens_per_s / 1e3);
  return fmt::format("{:.0f} tok/s", tokens_per_s);
}

class Display {
 public:
  Display(Progress mode, int64_t total, int64_t start)
      : total_(total), start_(start), t0_(std::chrono::steady_clock::now()) {
    if (mode == Progress::kAuto) mode = isatty(fileno(stderr)) ? Progress::kBar : Progress::kLines;
    mode_ = mode;
  }

  bool quiet() const { return mode_ == Progress::kQuiet; }

  /// A permanent line (above the bar).
  void line(const std::string& text) {
    if (quiet()) return;
    if (mode_ == Progress::kBar && drawn_) std::fputs("\r\033[K", stderr);
    std::fprintf(stderr, "%s\n", text.c_str());
    if (mode_ == Progress::kBar && drawn_) draw();
    std::fflush(stderr);
  }

  void step(int64_t s, double loss, double lr, double tokens_per_s) {
    step_ = s;
    lr_ = lr;
    if (std::isfinite(loss)) loss_ = loss_ < 0 ? loss : 0.9 * loss_ + 0.1 * loss;
    rate_ = rate_ < 0 ? tokens_per_s : 0.9 * rate_ + 0.1 * tokens_per_s;
    if (mode_ != Progress::kBar) return;
    const auto now = std::chrono::steady_clock::now();
    if (drawn_ && s < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    draw();
  }

  void val_accuracy(double acc) { val_acc_ = acc; }

  /// Ends the bar's line.
  void finish() {
    if (mode_ == Progress::kBar && drawn_) std::fputs("\n", stderr);
    drawn_ = false;
    std::fflush(stderr);
  }

  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }
  double eta() const {
    const int64_t done = step_ - start_;
    return done > 0 ? elapsed() / double(done) * double(total_ - step_) : -1;
  }
  double smoothed_rate() const { return rate_; }

 private:
  void draw() {
    constexpr int kWidth = 24;
    const double f = total_ ? double(step_) / double(total_) : 1.0;
    const int fill = static_cast<int>(f * kWidth);
    std::string bar(static_cast<size_t>(fill), '=');
    if (fill < kWidth) bar += '>';
    bar.resize(kWidth, ' ');
    std::string text = fmt::format("\r\033[K{:>{}}/{} [{}] loss {:.4f}", step_,
                                   std::to_string(total_).size(), total_, bar, loss_);
    if (val_acc_ >= 0) text += fmt::format(" | val acc {:.2f}%", 100 * val_acc_);
    text += fmt::format(" | lr {:.2e} | {} | ETA {}", lr_, rate_text(rate_), clock_text(eta()));
    std::fputs(text.c_str(), stderr);
    std::fflush(stderr);
    drawn_ = true;
  }

  Progress mode_;
  int64_t total_, start_, step_ = 0;
  double loss_ = -1, lr_ = 0, rate_ = -1, val_acc_ = -1;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point t0_, last_draw_;
};

std::string summary_line(int64_t step, int64_t total, const MetricsRecord& r,
                         const ReferentAttention& ref) {
  std::string s = fmt::format("step {}/{}", step, total);
  if (r.loss) s += fmt::format(" | loss {:.4f}", *r.loss);
  if (r.val_loss) s += fmt::format(" | val loss {:.4f}", *r.val_loss);
  if (r.val_accuracy) s += fmt::format(" | val acc {:.2f}%", 100 * *r.val_accuracy);
  // Decoders: exact-sequence accuracy, then per token (for charlm the only informative one).
  const auto tok = r.extra.find("val_token_accuracy");
  if (r.val_accuracy && tok != r.extra.end() && tok->is_number())
    s += fmt::format(" (tokens {:.1f}%)", 100 * tok->get<double>());
  if (!ref.empty())
    s += fmt::format(" | referent > distractor {:.1f}% ({} head {})", 100 * ref.best_wins(),
                     ref.modules[ref.best_module], ref.best_head);
  if (r.lr) s += fmt::format(" | lr {:.2e}", *r.lr);
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Trainer

Trainer::Trainer(const RunConfig& config, TrainerOptions options)
    : config_(config), opt_(std::move(options)) {
  if (!opt_.out_dir.empty()) check_out_dir(opt_.out_dir, opt_.force);
  build();
  prepare_out_dir(/*resuming=*/false, 0);
  data_rng_ = Rng(config_.train.seed ^ kDataStream);
  start_epoch();
}

Trainer::~Trainer() = default;

void Trainer::build() {
  config_.train.validate();
  task_ = make_task_from_config(config_.task);
  check_model_fits(config_.model, *task_);
  QKV_CHECK(task_->size(Split::kTrain) > 0, "task '{}' has no training examples", task_->name());
  model_ = std::make_unique<Model<float>>(config_.model, config_.train.seed);
  model_->train();
  params_ = model_->named_parameters();
  const TrainConfig& t = config_.train;
  optimizer_ = make_optimizer<float>(t.optimizer, params_,
                                     json{{"lr", t.lr}, {"weight_decay", t.weight_decay}});
  schedule_ = std::make_unique<LrSchedule>(
      LrSchedule::parse(t.schedule, t.lr, t.steps, t.warmup, t.min_lr_ratio));
}

std::unique_ptr<Trainer> Trainer::resume(const std::string& checkpoint, TrainerOptions options,
                                         const json& train_overrides) {
  static const std::vector<std::string> kChangeable = {
      "steps", "eval_every", "eval_examples", "save_every",   "keep", "skip_nonfinite",
      "lr",    "schedule",   "warmup",        "min_lr_ratio", "clip", "weight_decay"};
  const Checkpoint ck = load_checkpoint(checkpoint);
  QKV_CHECK(ck.optimizer.has_value(),
            "checkpoint '{}' holds no optimizer state (a model-only checkpoint); it cannot be "
            "resumed, only evaluated",
            checkpoint);
  RunConfig cfg;
  cfg.task = ck.task_config;
  try {
    cfg.model = ModelConfig::from_json(ck.model_config);
  } catch (const Error& e) {
    fail("checkpoint '{}': model config: {}", checkpoint, e.what());
  }
  json train = ck.train_config;
  if (train_overrides.is_object()) {
    for (auto it = train_overrides.begin(); it != train_overrides.end(); ++it) {
      QKV_CHECK(contains(kChangeable, it.key()),
                "'{}' cannot change when resuming (the run was built with it); changeable: {}",
                it.key(), join(kChangeable));
      train[it.key()] = it.value();
    }
  }
  try {
    cfg.train = TrainConfig::from_json(train);
  } catch (const Error& e) {
    fail("checkpoint '{}': {}", checkpoint, e.what());
  }
  QKV_CHECK(ck.train.step <= cfg.train.steps,
            "checkpoint '{}' is at step {}, past the run's {} steps; pass a larger --steps",
            checkpoint, ck.train.step, cfg.train.steps);

  const std::string ck_dir = fs::path(checkpoint).parent_path().string();
  if (options.out_dir.empty()) options.out_dir = ck_dir.empty() ? "." : ck_dir;
  std::error_code ec;
  const bool same_dir = fs::equivalent(options.out_dir, ck_dir.empty() ? "." : ck_dir, ec);
  if (!same_dir) check_out_dir(options.out_dir, options.force);

  std::unique_ptr<Trainer> t(new Trainer(cfg, std::move(options), Init{}));
  t->build();
  t->model_->load_parameters(ck.params);
  OptimizerState<float> state = *ck.optimizer;
  QKV_CHECK(state.type == cfg.train.optimizer,
            "checkpoint '{}': optimizer is '{}' but the train config says '{}'", checkpoint,
            state.type, cfg.train.optimizer);
  state.hparams["weight_decay"] = cfg.train.weight_decay;
  t->optimizer_->import_state(state);

  const json& x = ck.train.extra;
  auto get = [&](const char* key, auto fallback) {
    return x.contains(key) && !x[key].is_null() ? x[key].get<decltype(fallback)>() : fallback;
  };
  const int64_t n_train = t->task_->size(Split::kTrain);
  QKV_CHECK(get("train_examples", n_train) == n_train,
            "checkpoint '{}' was trained on {} examples but the task now has {}; it cannot be "
            "resumed exactly",
            checkpoint, get("train_examples", n_train), n_train);
  t->step_ = ck.train.step;
  t->epoch_ = ck.train.epoch;
  t->best_val_accuracy_ = get("best_val_accuracy", -1.0);
  t->best_val_loss_ = get("best_val_loss", std::numeric_limits<double>::max());
  t->best_step_ = get("best_step", int64_t(-1));
  t->skipped_ = get("skipped_steps", int64_t(0));
  bool have_data = false;
  for (const auto& [name, s] : ck.train.rng) {
    if (name == "data") {
      t->data_rng_.set_state(s);
      have_data = true;
    } else if (name == "dropout") {
      t->model_->set_dropout_rng_state(s);
    }
  }
  QKV_CHECK(have_data, "checkpoint '{}' holds no data-order generator state ('data' in /train/rng)",
            checkpoint);
  t->start_epoch();  // redraws this epoch's order from its starting state
  const int64_t pos = get("epoch_position", int64_t(0));
  QKV_CHECK(pos >= 0 && pos <= n_train, "checkpoint '{}': epoch position {} out of range",
            checkpoint, pos);
  t->pos_ = pos;
  t->resumed_ = true;
  t->prepare_out_dir(/*resuming=*/true, t->step_);
  return t;
}

void Trainer::start_epoch() {
  epoch_start_ = data_rng_.state();
  order_ = data_rng_.permutation(task_->size(Split::kTrain));
  pos_ = 0;
}

Batch Trainer::next_batch() {
  const int64_t n = static_cast<int64_t>(order_.size());
  const int64_t B = std::min(config_.train.batch_size, n);
  if (pos_ + B > n) {  // drop the epoch's incomplete last batch
    ++epoch_;
    start_epoch();
  }
  std::vector<int64_t> idx(order_.begin() + pos_, order_.begin() + pos_ + B);
  pos_ += B;
  return task_->batch(Split::kTrain, idx);
}

Checkpoint Trainer::make_checkpoint() const {
  Checkpoint c;
  c.model_config = model_->config().to_json();
  c.train_config = config_.train.to_json();
  c.task_config = config_.task;
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
  c.train.rng = {{"data", epoch_start_}, {"dropout", model_->dropout_rng_state()}};
  c.vocab = task_->vocab().tokens();
  if (config_.model.arch == "seq2seq") c.src_vocab = task_->src_vocab().tokens();
  return c;
}

void Trainer::save(const std::string& file) const {
  save_checkpoint(file, make_checkpoint());
}

void Trainer::evaluate_now(MetricsRecord& rec, TrainResult& result) {
  const TrainConfig& t = config_.train;
  EvalResult e =
      evaluate(*model_, *task_, Split::kVal, std::max<int64_t>(t.batch_size, 256), t.eval_examples);
  rec.val_loss = e.loss;
  rec.val_accuracy = e.score.accuracy();
  if (config_.model.arch != "encoder") rec.extra["val_token_accuracy"] = e.score.token_accuracy();
  // Accuracy on as many training examples (the first ones) as val was scored on: next to val
  // accuracy it shows memorising vs generalising — grokking's two curves.
  const int64_t n_train =
      std::min(task_->size(Split::kTrain), std::max<int64_t>(e.score.examples, 1));
  const EvalResult tr =
      evaluate(*model_, *task_, Split::kTrain, std::max<int64_t>(t.batch_size, 256), n_train);
  rec.extra["train_accuracy"] = tr.score.accuracy();
  rec.extra["epoch"] = epoch_;
  const ReferentAttention& a = e.referent;
  if (!a.empty()) {
    rec.extra["attention_modules"] = a.modules;
    rec.extra["referent_attention"] = a.referent;
    rec.extra["distractor_attention"] = a.distractor;
    rec.extra["referent_wins"] = a.wins;
    rec.extra["best_head"] = {{"module", a.modules[a.best_module]}, {"head", a.best_head}};
    rec.extra["best_head_wins"] = a.best_wins();
  }
  last_referent_ = a;
  if (!opt_.out_dir.empty()) record_probe();
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
    if (!opt_.out_dir.empty()) save(path("best.h5"));
  }
  result.last_eval = std::move(e);
}

void Trainer::record_probe() {
  if (config_.model.arch != "encoder") return;  // the pronoun's row; decoders have no read-out
  ProbeAttention p;
  try {
    p = probe_attention(*model_, *task_, task_->probe());
  } catch (const Error&) {
    return;  // a task whose probe does not encode (an imported vocabulary)
  }
  json att = json::object();
  for (const auto& [path, rows] : p.rows) att[path] = rows;
  const json line = {
      {"step", step_}, {"tokens", p.tokens}, {"position", p.position}, {"attention", att}};
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

  // The best head's referent attention over training, beside the attention picture below.
  if (!last_referent_.empty()) {
    const std::string& module = last_referent_.modules[last_referent_.best_module];
    write_svg(path("referent_attention.svg"),
              referent_chart_svg(records, module, last_referent_.best_head,
                                 fmt::format("referent attention over training ({} head {})",
                                             module, last_referent_.best_head)));
  }

  // Attention over training: the probe's pronoun row of one head, one row per evaluation.
  std::ifstream in(path("probe_attention.jsonl"));
  if (!in) return;
  std::string module;
  int64_t head = 0;
  if (!last_referent_.empty()) {
    module = last_referent_.modules[last_referent_.best_module];
    head = last_referent_.best_head;
  }
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
  o.title = fmt::format("attention of the pronoun over training ({} head {})", module, head);
  o.row_labels = rows_labels;
  o.col_labels = tokens;
  o.x_label = "key token";
  o.y_label = "step";
  write_svg(path("probe_attention.svg"),
            heatmap_svg(values, static_cast<int64_t>(rows_labels.size()),
                        static_cast<int64_t>(tokens.size()), o));
}

std::string Trainer::checkpoint_now(TrainResult& result) {
  if (opt_.out_dir.empty()) return "";
  const std::string file = path(step_checkpoint_name(step_));
  save(file);
  if (saved_steps_.empty() || saved_steps_.back() != step_) saved_steps_.push_back(step_);
  while (static_cast<int64_t>(saved_steps_.size()) > config_.train.keep) {
    std::error_code ec;
    fs::remove(path(step_checkpoint_name(saved_steps_.front())), ec);
    saved_steps_.erase(saved_steps_.begin());
  }
  write_pictures(/*final_probe=*/false);
  result.checkpoint = file;
  return file;
}

TrainResult Trainer::run() {
  const TrainConfig& t = config_.train;
  TrainResult res;
  res.step = step_;
  Display display(opt_.progress, t.steps, step_);
  std::unique_ptr<MetricsWriter> metrics;
  if (!opt_.out_dir.empty()) metrics = std::make_unique<MetricsWriter>(path("metrics.jsonl"));

  display.line(fmt::format(
      "{} {}: {} (d_model {}, n_heads {}, n_layers {}, {} parameters), {} steps{} × batch {}, {} "
      "lr "
      "{:g} {}{}",
      resumed_ ? "resuming" : "training", task_->name(), config_.model.arch, config_.model.d_model,
      config_.model.n_heads, config_.model.n_layers, model_->num_parameters(), t.steps,
      resumed_ ? fmt::format(" (from {})", step_) : "", t.batch_size, t.optimizer, t.lr, t.schedule,
      opt_.out_dir.empty() ? "" : ", out " + opt_.out_dir));

  if (!resumed_ && step_ == 0) {  // the untrained model: where the curves start
    MetricsRecord rec;
    rec.step = 0;
    evaluate_now(rec, res);
    if (metrics) metrics->write(rec);
    display.line(summary_line(0, t.steps, rec, res.last_eval.referent));
  }

  bool interrupted = false;
  while (step_ < t.steps) {
    if (stop_requested()) {
      interrupted = true;
      break;
    }
    const Batch batch = next_batch();
    const int64_t s = step_ + 1;
    const auto t0 = std::chrono::steady_clock::now();
    double loss;
    {
      ForwardResult<float> r = model_->forward(batch);
      loss = r.loss.item();
      r.loss.backward();
    }
    if (opt_.after_backward) opt_.after_backward(s, *model_);
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
        if (metrics) metrics->write(rec);
        display.finish();
        res.status = TrainResult::Status::kDiverged;
        res.message = fmt::format(
            "step {}: {} (loss {}, gradient norm {}); training stopped. {}. Lower --lr, keep "
            "--clip on, or pass --skip-nonfinite to skip such steps",
            s, what, loss, norm,
            saved_steps_.empty()
                ? std::string("No checkpoint was written")
                : "The last good checkpoint is " + path(step_checkpoint_name(saved_steps_.back())));
        res.step = step_;
        res.skipped_steps = skipped_;
        res.seconds = display.elapsed();
        res.best_val_accuracy = best_val_accuracy_;
        return res;
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
        display.finish();
        res.status = TrainResult::Status::kDiverged;
        res.message = fmt::format(
            "step {}: the update made parameter '{}' non-finite (lr {:g}); training stopped. {}. "
            "Lower --lr",
            s, name, lr,
            saved_steps_.empty()
                ? std::string("No checkpoint was written")
                : "The last good checkpoint is " + path(step_checkpoint_name(saved_steps_.back())));
        res.step = step_;
        res.seconds = display.elapsed();
        res.best_val_accuracy = best_val_accuracy_;
        return res;
      }
    }
    step_ = s;
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rec.tokens_per_s = dt > 0 ? double(count_tokens(batch)) / dt : 0.0;
    if (skipped_ > 0) rec.extra["skipped_steps"] = skipped_;
    const bool eval = s % t.eval_every == 0 || s == t.steps;
    if (eval) evaluate_now(rec, res);
    if (metrics) metrics->write(rec);
    if (eval) {
      display.val_accuracy(*rec.val_accuracy);
      display.line(summary_line(s, t.steps, rec, res.last_eval.referent));
    }
    if (s % t.save_interval() == 0) checkpoint_now(res);
    display.step(s, loss, lr, *rec.tokens_per_s);
  }

  if (interrupted && !opt_.out_dir.empty() &&
      (saved_steps_.empty() || saved_steps_.back() != step_))
    checkpoint_now(res);
  if (!opt_.out_dir.empty()) {
    save(path("last.h5"));
    write_pictures(/*final_probe=*/true);
    if (!interrupted) res.checkpoint = path("last.h5");
  }
  display.finish();
  res.step = step_;
  res.skipped_steps = skipped_;
  res.seconds = display.elapsed();
  res.best_val_accuracy = best_val_accuracy_;
  if (interrupted) {
    res.status = TrainResult::Status::kInterrupted;
    res.message = opt_.out_dir.empty()
                      ? fmt::format("interrupted after step {}", step_)
                      : fmt::format(
                            "interrupted after step {}: saved {} and {}; continue with: qkv train "
                            "--resume {}",
                            step_, res.checkpoint, path("last.h5"), path("last.h5"));
    return res;
  }
  res.status = TrainResult::Status::kCompleted;
  res.message = fmt::format("trained {} steps in {:.1f} s", step_, res.seconds);
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
