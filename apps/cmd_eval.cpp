// qkv eval: rebuilds the task and the model of a checkpoint and prints loss and accuracy on its
// splits, and whatever the task's probes report (for the pronoun task: how much each head's
// pronoun row attends to the referent versus the distractor). Exit status 1 when an accuracy is
// below --min-accuracy.
#include <functional>

#include <omp.h>

#include <fmt/core.h>

#include "apps/cli_checks.h"
#include "apps/commands.h"
#include "apps/language_model.h"
#include "core/error.h"
#include "train/load.h"
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
    TrainedModel l = load_trained(a->checkpoint);
    const ModelConfig& cfg = l.model->config();
    Task& task = *l.task;
    fmt::print("{}: task {}, {}, step {}\n", a->checkpoint, task.name(), l.model->describe(),
               l.ckpt.train.step);

    std::vector<std::string> names = a->splits;
    if (names.empty()) names = {"val", "test"};
    // A language model's exact-sequence accuracy (whole windows right) is near 0 however well it
    // predicts; --min-accuracy compares its per-token accuracy instead.
    const bool per_token = is_language_model(task);
    const char* compared = per_token ? "token accuracy" : "accuracy";
    if (a->min_accuracy > 0)
      fmt::print("--min-accuracy {:.2f}% compares the {}{}\n", 100 * a->min_accuracy, compared,
                 per_token ? " (each next token on its own: a language model)" : "");
    bool ok = true;
    for (const std::string& name : names) {
      const Split split = parse_split(name);
      EvalResult r;
      {
        EvalMeter meter(Progress::kAuto, name);  // cleared before the split's line is printed
        r = evaluate(*l.model, task, split, a->batch_size, 0, std::ref(meter));
      }
      std::string line =
          fmt::format("{:<5} loss {:.4f}  accuracy {:.2f}% ({}/{})", name + ":", r.loss,
                      100 * r.score.accuracy(), r.score.correct_examples, r.score.examples);
      if (cfg.arch != Arch::kEncoder)
        line += fmt::format("  token accuracy {:.2f}%", 100 * r.score.token_accuracy());
      fmt::print("{}\n", line);
      for (const auto& [probe, rep] : r.probes) {  // the task's own diagnostics
        fmt::print("{} on {}: {}\n", probe, name, rep.summary);
        if (!rep.table.empty()) fmt::print("{}", rep.table);
      }
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
