// qkv eval: rebuilds the task and the model of a checkpoint and prints loss and accuracy on its
// splits (and, for the pronoun task, how much each head's pronoun row attends to the referent
// versus the distractor). Exit status 1 when an accuracy is below --min-accuracy.
#include <omp.h>

#include <fmt/core.h>

#include "apps/cli_checks.h"
#include "apps/commands.h"
#include "apps/language_model.h"
#include "core/error.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace qkv::cli {
namespace {

struct EvalArgs {
  std::string checkpoint;
  std::vector<std::string> splits;
  double min_accuracy = 0.0;
  int64_t batch_size = 256;
  int threads = 0;
};

void print_referent(const ReferentAttention& a, Split split) {
  if (a.empty()) return;
  fmt::print(
      "referent attention on {} ({} sentences): share of the pronoun's attention on the referent "
      "and on the distractor, and how often referent > distractor\n",
      split_name(split), a.sentences);
  fmt::print("  {:<18} {:>4} {:>9} {:>11} {:>8}\n", "module", "head", "referent", "distractor",
             "ref>dis");
  for (size_t m = 0; m < a.modules.size(); ++m)
    for (int64_t h = 0; h < a.heads; ++h)
      fmt::print("  {:<18} {:>4} {:>9.4f} {:>11.4f} {:>7.2f}%{}\n", a.modules[m], h,
                 a.referent[m][h], a.distractor[m][h], 100 * a.wins[m][h],
                 int64_t(m) == a.best_module && h == a.best_head ? "  ← best" : "");
  fmt::print("best head: {} head {}: referent > distractor in {:.2f}% of {} sentences\n",
             a.modules[a.best_module], a.best_head, 100 * a.best_wins(), a.sentences);
}

}  // namespace

void add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Loss and accuracy of a checkpoint on its task's splits (exact-sequence accuracy for "
      "decoders and seq2seq, plus token accuracy); exits 1 when an accuracy is below "
      "--min-accuracy: the token accuracy for a language model (charlm), else the accuracy.");
  cmd->add_option("--checkpoint", a->checkpoint, "Checkpoint file (.h5)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--split", a->splits, "Splits to evaluate: val, test, train (default: val test)")
      ->check(CLI::IsMember({"val", "test", "train"}));
  cmd->add_option("--min-accuracy", a->min_accuracy,
                  "Exit 1 when an accuracy is below this (a fraction in [0, 1])")
      ->check(number_in(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--batch-size", a->batch_size, "Examples per forward pass")
      ->check(positive_integer())
      ->capture_default_str();
  cmd->add_option("--threads", a->threads,
                  "OpenMP threads (default: all cores, fewer when the machine is busy)")
      ->check(integer_in(1, 1024));
  cmd->callback([a] {
    if (a->threads > 0) {
      omp_set_dynamic(0);
      omp_set_num_threads(a->threads);
    } else {
      omp_set_dynamic(1);  // fewer threads on a busy machine (see qkv train)
    }
    const Checkpoint ck = load_checkpoint(a->checkpoint);
    QKV_CHECK(ck.task_config.is_object() && ck.task_config.contains("name"),
              "checkpoint '{}' names no task (/config attr 'task' has no \"name\"); qkv eval "
              "needs the task to evaluate on",
              a->checkpoint);
    std::unique_ptr<Task> task;
    ModelConfig cfg;
    try {
      task = make_task_from_config(ck.task_config);
      cfg = ModelConfig::from_json(ck.model_config);
    } catch (const Error& e) {
      fail("checkpoint '{}': {}", a->checkpoint, e.what());
    }
    Model<float> model(cfg, 0);
    try {
      model.load_parameters(ck.params);
    } catch (const Error& e) {
      fail("checkpoint '{}': {}", a->checkpoint, e.what());
    }
    fmt::print("{}: task {}, {} (d_model {}, n_heads {}, n_layers {}, {} parameters), step {}\n",
               a->checkpoint, task->name(), cfg.arch, cfg.d_model, cfg.n_heads, cfg.n_layers,
               model.num_parameters(), ck.train.step);

    std::vector<std::string> names = a->splits;
    if (names.empty()) names = {"val", "test"};
    // A language model's exact-sequence accuracy (whole windows right) is near 0 however well it
    // predicts; --min-accuracy compares its per-token accuracy instead.
    const bool per_token = is_language_model(*task);
    const char* compared = per_token ? "token accuracy" : "accuracy";
    if (a->min_accuracy > 0)
      fmt::print("--min-accuracy {:.2f}% compares the {}{}\n", 100 * a->min_accuracy, compared,
                 per_token ? " (each next token on its own: a language model)" : "");
    bool ok = true;
    for (const std::string& name : names) {
      const Split split = parse_split(name);
      const EvalResult r = evaluate(model, *task, split, a->batch_size);
      std::string line =
          fmt::format("{:<5} loss {:.4f}  accuracy {:.2f}% ({}/{})", name + ":", r.loss,
                      100 * r.score.accuracy(), r.score.correct_examples, r.score.examples);
      if (cfg.arch != "encoder")
        line += fmt::format("  token accuracy {:.2f}%", 100 * r.score.token_accuracy());
      fmt::print("{}\n", line);
      print_referent(r.referent, split);
      const double accuracy = per_token ? r.score.token_accuracy() : r.score.accuracy();
      if (accuracy < a->min_accuracy) {
        fmt::print(stderr, "qkv: {} {} {:.2f}% is below --min-accuracy {:.2f}%\n", name, compared,
                   100 * accuracy, 100 * a->min_accuracy);
        ok = false;
      }
    }
    if (!ok) throw Exit{1};
  });
}

}  // namespace qkv::cli
