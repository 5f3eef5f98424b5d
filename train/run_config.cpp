#include "train/run_config.h"

#include <algorithm>
#include <cmath>

#include <fmt/core.h>

#include "core/error.h"
#include "core/json_reader.h"

namespace qkv {

using json = nlohmann::json;

namespace {

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const std::string& k : items) s += (s.empty() ? "" : ", ") + k;
  return s;
}

bool contains(const std::vector<std::string>& items, const std::string& x) {
  return std::find(items.begin(), items.end(), x) != items.end();
}

}  // namespace

const std::vector<std::string>& TrainConfig::keys() {
  static const std::vector<std::string> k = {
      "steps",         "batch_size", "lr",           "optimizer", "weight_decay",
      "warmup",        "schedule",   "min_lr_ratio", "clip",      "eval_every",
      "eval_examples", "save_every", "keep",         "seed",      "skip_nonfinite",
      "shards"};
  return k;
}

TrainConfig TrainConfig::from_json(const json& j) {
  QKV_CHECK(j.is_object() || j.is_null(), "train config must be a JSON object, got {}", j.dump());
  if (j.is_object())
    for (auto it = j.begin(); it != j.end(); ++it)
      QKV_CHECK(contains(keys(), it.key()), "train config: unknown key '{}' (known keys: {})",
                it.key(), join(keys()));
  TrainConfig c;
  const JsonReader r("train config", j);
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
  r.integer("shards", c.shards);
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
          {"skip_nonfinite", skip_nonfinite},
          {"shards", shards}};
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
  QKV_CHECK(shards >= 0 && shards <= kMaxShards,
            "{}: 'shards' must be 0 (auto) or a count from 1 to {}, got {}", w, kMaxShards, shards);
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

}  // namespace

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
  if (m.arch == Arch::kSeq2seq) {
    QKV_CHECK(m.src_vocab_size == task.src_vocab().size(),
              "model config: 'src_vocab_size' is {} but task '{}' has {} source tokens",
              m.src_vocab_size, t, task.src_vocab().size());
    QKV_CHECK(m.src_max_len >= task.src_max_len(),
              "model config: 'src_max_len' is {} but task '{}' has sources of up to {} tokens",
              m.src_max_len, t, task.src_max_len());
  }
}

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

}  // namespace qkv
