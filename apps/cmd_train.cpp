// qkv train: trains a model on a task with a progress bar, periodic evaluation, checkpoints,
// metrics.jsonl and pictures; --resume continues a run exactly. Defaults come from the task (each
// task's defaults train it to its target); a --config file overrides them and flags override the
// file. Exit status: 0 done, 1 stopped on a non-finite gradient, 2 bad input, 130 interrupted
// (SIGINT / SIGTERM: the current step finishes and a checkpoint is written).
#include <omp.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/core.h>

#include "apps/cli_checks.h"
#include "apps/commands.h"
#include "core/error.h"
#include "core/json_reader.h"
#include "train/distributed.h"
#include "train/trainer.h"

namespace qkv::cli {
namespace {

struct TrainArgs {
  std::string task, config, out, data, resume, progress = "auto";
  int64_t steps = 0, batch_size = 0, warmup = 0, eval_every = 0, save_every = 0, keep = 0;
  int64_t shards = 0;
  int64_t eval_examples = 0;
  double lr = 0, weight_decay = 0, clip = 0, min_lr_ratio = 0;
  std::string optimizer, schedule;
  int64_t d_model = 0, n_heads = 0, n_layers = 0, d_ff = 0;
  double dropout = 0;
  int64_t seed = 0;
  int threads = 0;
  bool force = false, skip_nonfinite = false, print_config = false;
};

/// A flag's value, when it was given on the command line.
struct Flag {
  CLI::Option* opt;
  const char* section;  // "task", "model" or "train"
  const char* key;
  std::function<nlohmann::json()> value;
};

/// --threads N: exactly N OpenMP threads; without it, every core. Idle workers sleep at once
/// (qkv runs with OMP_WAIT_POLICY=passive, apps/wait_policy.h), so a thread waiting at a barrier
/// for a partner that other jobs descheduled no longer holds a core: on a busy 2-core machine 2
/// threads trained the pronoun task no slower than 1 (docs/bench.md). Results do not depend on
/// the thread count (the parallel loops are deterministic).
void set_threads(int threads) {
  omp_set_dynamic(0);
  omp_set_num_threads(threads > 0 ? threads : omp_get_num_procs());
}

/// The value of a default as its flag takes it ("" when there is nothing to show).
std::string flag_value(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean() || v.is_null()) return "";
  return v.dump();
}

/// The help footer: every task's defaults, as the flags that override them, wrapped at 100
/// columns.
std::string task_defaults(const std::vector<Flag>& flags) {
  std::string out =
      "Each task's defaults (a --config file overrides them; flags override the file):\n";
  for (const TaskInfo& info : registered_tasks()) {
    const std::string& name = info.name;
    nlohmann::json parts[3];         // task options, model, train
    if (!info.describe.is_null()) {  // a task that needs its data file to say more
      parts[0] = info.describe.value("options", nlohmann::json::object());
      parts[1] = info.describe.value("model", nlohmann::json::object());
      parts[2] = nlohmann::json::object();
    } else {
      std::unique_ptr<Task> task;
      try {
        task = make_task(name);
      } catch (const Error& e) {
        out += fmt::format("  {:<9}(its defaults are unavailable: {})\n", name, e.what());
        continue;
      }
      parts[0] = task->options();
      parts[1] = task->default_model_config();
      parts[2] = task->default_train_config();
    }
    if (parts[0].contains("data") && parts[0]["data"].is_null()) parts[0]["data"] = "FILE";
    std::string line = fmt::format("  {:<9}", name);
    for (const Flag& f : flags) {
      const std::string section = f.section;
      const nlohmann::json& part = parts[section == "task" ? 0 : section == "model" ? 1 : 2];
      const std::string value = part.contains(f.key) ? flag_value(part[f.key]) : "";
      if (value.empty()) continue;
      const std::string word = f.opt->get_name() + " " + value;
      if (line.size() + 1 + word.size() > 100) {
        out += line + "\n";
        line = std::string(11, ' ');
      } else if (line.size() > 11) {
        line += ' ';
      }
      line += word;
    }
    out += line + "\n";
  }
  return out;
}

/// Names of the tasks that read a --data file (their options have "data").
std::vector<std::string> tasks_reading_data() {
  std::vector<std::string> out;
  for (const TaskInfo& info : registered_tasks()) {
    if (!info.describe.is_null()) {
      if (info.describe.value("options", nlohmann::json::object()).contains("data"))
        out.push_back(info.name);
      continue;
    }
    try {
      if (make_task(info.name)->options().contains("data")) out.push_back(info.name);
    } catch (const Error&) {
    }
  }
  return out;
}

/// resolve_run_config(), with its errors pinned on what caused them: --data given to a task that
/// reads none, or the --config file when the file alone is already wrong.
RunConfig resolve_or_explain(const TrainArgs& a, const nlohmann::json& file,
                             const nlohmann::json& overrides) {
  try {
    return resolve_run_config(a.task, file, overrides);
  } catch (const Error& e) {
    std::string name = a.task;
    if (name.empty() && file.is_object() && file.contains("task") && file["task"].is_object() &&
        file["task"].value("name", nlohmann::json()).is_string())
      name = file["task"]["name"].get<std::string>();
    if (!a.data.empty() && !name.empty()) {
      const std::vector<std::string> readers = tasks_reading_data();
      if (std::find(readers.begin(), readers.end(), name) == readers.end()) {
        std::string list;
        for (size_t i = 0; i < readers.size(); ++i)
          list += (i == 0 ? "" : i + 1 == readers.size() ? " and " : ", ") + readers[i];
        fail("--data: task '{}' reads no data file; only {} take --data", name, list);
      }
    }
    if (a.config.empty()) throw;
    const nlohmann::json none = {{"task", nlohmann::json::object()},
                                 {"model", nlohmann::json::object()},
                                 {"train", nlohmann::json::object()}};
    try {
      resolve_run_config(a.task, file, none);
    } catch (const Error& in_file) {
      std::string msg = in_file.what();
      if (msg.rfind("config file: ", 0) == 0) msg.erase(0, 13);
      fail("--config {}: {}", a.config, msg);
    }
    throw;
  }
}

/// The run: every rank builds the same trainer (their setup agreed on: a rank that fails it stops
/// them all) and trains; rank 0 alone reports.
void train(const TrainArgs& a, const std::vector<Flag>& flags, Communicator& comm) {
  TrainerOptions o;
  o.comm = &comm;
  std::unique_ptr<Trainer> trainer;
  run_together(comm, [&] {
    o.out_dir = a.out;
    o.force = a.force;
    o.progress = a.progress == "bar"     ? Progress::kBar
                 : a.progress == "lines" ? Progress::kLines
                 : a.progress == "quiet" ? Progress::kQuiet
                                         : Progress::kAuto;
    if (!a.resume.empty()) {
      // The checkpoint fixes the task, the model and what the run was built with.
      static const std::vector<std::string> kFixed = {"--data",      "--seed",    "--batch-size",
                                                      "--optimizer", "--d-model", "--n-heads",
                                                      "--n-layers",  "--d-ff",    "--dropout"};
      for (const Flag& f : flags)
        for (const std::string& name : kFixed)
          if (f.opt->count() > 0 && f.opt->check_name(name))
            fail("{} cannot be used with --resume: the checkpoint fixes it", name);
      if (!a.task.empty()) fail("--task cannot be used with --resume: the checkpoint fixes it");
      if (a.print_config)
        fail("--print-config cannot be used with --resume: the checkpoint holds the config");
      if (!a.config.empty())
        fail("--config cannot be used with --resume: the checkpoint holds the config");
      nlohmann::json train = nlohmann::json::object();
      for (const Flag& f : flags)
        if (f.opt->count() > 0) train[f.key] = f.value();
      set_threads(a.threads);
      trainer = Trainer::resume(a.resume, o, train);
    } else {
      const nlohmann::json file = a.config.empty()
                                      ? nlohmann::json(nullptr)
                                      : read_json_file(a.config, "--config " + a.config);
      nlohmann::json overrides = {{"task", nlohmann::json::object()},
                                  {"model", nlohmann::json::object()},
                                  {"train", nlohmann::json::object()}};
      for (const Flag& f : flags)
        if (f.opt->count() > 0) overrides[f.section][f.key] = f.value();
      const RunConfig cfg = resolve_or_explain(a, file, overrides);
      if (a.print_config) {
        if (comm.rank() == 0) fmt::print("{}\n", cfg.to_json().dump(2));
        return;
      }
      if (o.out_dir.empty()) o.out_dir = "runs/" + cfg.task["name"].get<std::string>();
      set_threads(a.threads);
      trainer = std::make_unique<Trainer>(cfg, o);
    }
  });
  if (!trainer) return;  // --print-config

  install_stop_handlers();
  const TrainResult r = trainer->run();
  const bool speaks = comm.rank() == 0;  // the ranks end alike; one of them says so
  switch (r.status) {
    case TrainResult::Status::kCompleted:
      if (speaks) fmt::print("{}\n", r.message);
      return;
    case TrainResult::Status::kInterrupted:
      if (speaks) fmt::print(stderr, "qkv: {}\n", r.message);
      throw Exit{130};
    case TrainResult::Status::kDiverged:
      if (speaks) fmt::print(stderr, "qkv: {}\n", r.message);
      throw Exit{1};
  }
}

}  // namespace

void add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto flags = std::make_shared<std::vector<Flag>>();
  CLI::App* cmd = app.add_subcommand(
      "train",
      "Train a model on a task. Defaults come from the task (each trains to its target); "
      "--config FILE.json ({\"task\": …, \"model\": …, \"train\": …}) overrides them and flags "
      "override the file. Writes metrics.jsonl, loss.svg, accuracy.svg and checkpoints "
      "(step-XXXXXX.h5, best.h5, last.h5) into --out. Ctrl-C finishes the step, saves and exits "
      "with status 130. Under 'mpirun -np N' it trains data-parallel over N ranks, --batch-size "
      "being the global batch (docs/distributed.md).");
  std::string names;
  for (const std::string& n : known_tasks()) names += (names.empty() ? "" : ", ") + n;
  cmd->add_option("--task", a->task, "Task: " + names + " ('qkv tasks' lists their options)");
  cmd->add_option("--config", a->config, "Config file (JSON with optional task, model, train)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--resume", a->resume, "Continue the run saved in this checkpoint, exactly")
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", a->out,
                  "Output folder (default: runs/<task>; with --resume, the "
                  "checkpoint's folder)");
  cmd->add_flag("--force", a->force, "Replace the run in a non-empty --out");
  cmd->add_flag("--print-config", a->print_config,
                "Print the effective configuration (task, model, train) as JSON that --config "
                "accepts, and exit without training");
  cmd->add_option("--progress", a->progress,
                  "Progress display: auto (a bar on a terminal), bar, lines, quiet")
      ->check(CLI::IsMember({"auto", "bar", "lines", "quiet"}))
      ->capture_default_str();
  cmd->add_option("--threads", a->threads, "OpenMP threads (default: all cores)")
      ->check(integer_in(1, 1024));

  auto add = [&](const char* name, auto* var, const char* section, const char* key,
                 const char* help) {
    CLI::Option* o = cmd->add_option(name, *var, help);
    flags->push_back({o, section, key, [var] { return nlohmann::json(*var); }});
    return o;
  };
  const char* d = " (default: the task's, listed below)";
  add("--steps", &a->steps, "train", "steps", "Optimizer steps")->check(positive_integer());
  add("--batch-size", &a->batch_size, "train", "batch_size", "Examples per step")
      ->check(positive_integer());
  add("--lr", &a->lr, "train", "lr", "Peak learning rate")->check(positive_number());
  add("--optimizer", &a->optimizer, "train", "optimizer", "adamw, adam or sgd")
      ->check(CLI::IsMember({"adamw", "adam", "sgd"}));
  add("--weight-decay", &a->weight_decay, "train", "weight_decay", "Weight decay")
      ->check(non_negative_number());
  add("--warmup", &a->warmup, "train", "warmup", "Linear warm-up steps")
      ->check(non_negative_integer());
  add("--schedule", &a->schedule, "train", "schedule", "constant, cosine or linear")
      ->check(CLI::IsMember({"constant", "cosine", "linear"}));
  add("--min-lr-ratio", &a->min_lr_ratio, "train", "min_lr_ratio",
      "Final lr as a fraction of --lr (cosine, linear)")
      ->check(number_in(0.0, 1.0));
  add("--clip", &a->clip, "train", "clip", "Max global gradient norm (0 = off)")
      ->check(non_negative_number());
  add("--eval-every", &a->eval_every, "train", "eval_every", "Steps between evaluations")
      ->check(positive_integer());
  add("--eval-examples", &a->eval_examples, "train", "eval_examples",
      "Val examples per evaluation (0 = all)")
      ->check(non_negative_integer());
  add("--save-every", &a->save_every, "train", "save_every",
      "Steps between checkpoints (0 = --eval-every)")
      ->check(non_negative_integer());
  add("--keep", &a->keep, "train", "keep", "step-XXXXXX.h5 checkpoints kept")
      ->check(positive_integer());
  add("--shards", &a->shards, "train", "shards",
      "Cut each step's batch into this many shards whose forward and backward run at once on "
      "separate threads (0 = auto: 2 for a small model without dropout, else 1); the results "
      "depend on the shard count, not on the thread count")
      ->check(integer_in(0, kMaxShards));
  add("--seed", &a->seed, "train", "seed", "Seed of initialisation, data order and dropout")
      ->check(non_negative_integer());
  add("--d-model", &a->d_model, "model", "d_model", "Model width")->check(positive_integer());
  add("--n-heads", &a->n_heads, "model", "n_heads", "Attention heads")->check(positive_integer());
  add("--n-layers", &a->n_layers, "model", "n_layers", "Transformer blocks")
      ->check(positive_integer());
  add("--d-ff", &a->d_ff, "model", "d_ff", "Feed-forward width")->check(positive_integer());
  add("--dropout", &a->dropout, "model", "dropout", "Dropout probability")
      ->check(number_in(0.0, 1.0, /*open_hi=*/true));
  add("--data", &a->data, "task", "data",
      "Data file: WinoGrande .jsonl (pronoun), a text file (charlm, lm), a .jsonl file "
      "(classify, seq2seq)")
      ->check(CLI::ExistingFile);
  {
    CLI::Option* o = cmd->add_flag("--skip-nonfinite", a->skip_nonfinite,
                                   "Skip (and count) steps whose gradient is not finite instead "
                                   "of stopping");
    flags->push_back({o, "train", "skip_nonfinite", [a] { return nlohmann::json(true); }});
  }
  for (const Flag& f : *flags)
    if (std::string(f.section) != "task" && std::string(f.key) != "skip_nonfinite")
      f.opt->description(f.opt->get_description() + d);
  // Built only when help is shown: making every task costs a moment.
  cmd->footer([flags] { return task_defaults(*flags); });

  cmd->callback([a, flags] {
    // Under mpirun every rank runs this; a failure on any rank stops them all with its status.
    Communicator& comm = world();
    try {
      train(*a, *flags, comm);
    } catch (const StoppedByRank& s) {
      throw Exit{s.status};  // the failing rank said why
    } catch (const AgreedError& e) {
      fmt::print(stderr, "qkv: {}\n", e.what());
      throw Exit{e.status};
    } catch (const Exit&) {
      throw;  // every rank ends alike (the run's own status)
    } catch (...) {
      if (comm.size() == 1) throw;
      // Known to this rank alone, while the others may be waiting for it in a collective.
      const std::exception_ptr error = std::current_exception();
      try {
        rethrow_from_rank(comm, error);
      } catch (const AgreedError& e) {
        fmt::print(stderr, "qkv: {}; stopping every rank\n", e.what());
      }
      std::fflush(stderr);
      comm.abort(exit_status_of(error));
    }
  });
}

}  // namespace qkv::cli
