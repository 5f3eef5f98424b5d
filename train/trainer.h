// The training loop over a Task: the effective configuration of a run, evaluation (loss,
// accuracy, and for the pronoun task the referent attention of every head), and a Trainer that
// writes metrics.jsonl, pictures and checkpoints into an output folder and resumes bit-exactly.
//
//   RunConfig cfg = resolve_run_config("pronoun", /*file=*/{}, {{"train", {{"steps", 500}}}});
//   TrainerOptions o;
//   o.out_dir = "runs/pronoun";
//   Trainer trainer(cfg, o);
//   TrainResult r = trainer.run();               // or Trainer::resume("runs/pronoun/last.h5", o)
//
// One step: forward, loss, backward, clip by global norm, non-finite check, optimizer step with
// the scheduled lr, zero grads. Everything random (initialisation, data order, dropout) comes
// from train.seed; the checkpoint holds every generator's state, the position in the current
// epoch and the optimizer state, so N steps = k steps + save + resume for N − k, bit for bit.
//
// Output folder:
//   metrics.jsonl           one record per step (loss, lr, grad_norm, tokens_per_s), evaluation
//                           steps add val_loss, val_accuracy and (pronoun) referent attention
//   step-XXXXXX.h5          every save_every steps, the last `keep` kept
//   best.h5, last.h5        best val accuracy (ties, and charlm: lowest val loss); the end of the
//   run loss.svg, accuracy.svg  rewritten at every checkpoint and at the end probe_attention.jsonl
//   (pronoun) the pronoun's attention row on the probe sentence at every probe_attention.svg
//   evaluation, and its heatmap (rows = step) at the end referent_attention.svg  (pronoun) the best
//   head's referent attention over training, at the end
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "datasets/task.h"
#include "nn/config.h"
#include "nn/model.h"
#include "train/checkpoint.h"
#include "train/metrics.h"
#include "train/optimizer.h"
#include "train/schedule.h"

namespace qkv {

/// The training hyper-parameters: the "train" object of a checkpoint's /config.
struct TrainConfig {
  int64_t steps = 1000;             // optimizer steps of the whole run
  int64_t batch_size = 64;          // examples per step
  double lr = 1e-3;                 // peak learning rate
  std::string optimizer = "adamw";  // "adamw" | "adam" | "sgd"
  double weight_decay = 0.01;       // AdamW: decoupled; Adam and SGD: L2
  int64_t warmup = 0;               // linear warm-up steps
  std::string schedule = "cosine";  // "constant" | "cosine" | "linear"
  double min_lr_ratio = 0.0;        // final lr / lr (cosine, linear)
  double clip = 1.0;                // max global gradient norm; 0 = no clipping
  int64_t eval_every = 250;         // steps between evaluations (and one at the end)
  int64_t eval_examples = 0;        // val examples per evaluation; 0 = the whole split
  int64_t save_every = 0;           // steps between checkpoints; 0 = eval_every
  int64_t keep = 3;                 // step-XXXXXX.h5 files kept
  uint64_t seed = 0;                // initialisation, data order and dropout
  bool skip_nonfinite = false;      // skip (and count) steps with a non-finite gradient

  /// The JSON keys, in the order above.
  static const std::vector<std::string>& keys();
  /// Parses a JSON object (absent keys take the defaults above); unknown keys, wrong types and
  /// invalid values throw qkv::Error naming the key.
  static TrainConfig from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
  /// Throws qkv::Error naming the first invalid value.
  void validate() const;
  /// save_every, or eval_every when 0.
  int64_t save_interval() const { return save_every > 0 ? save_every : eval_every; }
};

/// The effective configuration of a run: task defaults ← config file ← flags.
struct RunConfig {
  nlohmann::json task;  // {"name": NAME, ...options}: make_task_from_config() rebuilds the task
  ModelConfig model;
  TrainConfig train;

  /// {"task": …, "model": …, "train": …}: the layout of a config file.
  nlohmann::json to_json() const;
};

/// The task config a checkpoint stores: task.options() plus "name".
nlohmann::json task_config(const Task& task);
/// Rebuilds a task from a task config ({"name": NAME, ...options}) and, for a trained model, the
/// vocabularies stored with it (see make_task); throws qkv::Error.
std::unique_ptr<Task> make_task_from_config(const nlohmann::json& config,
                                            const StoredVocab* stored = nullptr);

/// The effective config. `file` and `overrides` are objects with optional keys "task" (a name, or
/// an object with "name" and task options), "model" (ModelConfig keys) and "train" (TrainConfig
/// keys); `task_name` (may be empty) is overridden by a name in `overrides` and overrides one in
/// `file`. Starts from the task's default_model_config() / default_train_config(). Throws
/// qkv::Error naming the offending key (unknown keys, bad values, a model that does not fit the
/// task). When d_model is changed and d_ff is not given, d_ff follows (4·d_model) if the task's
/// default had that ratio.
RunConfig resolve_run_config(const std::string& task_name, const nlohmann::json& file,
                             const nlohmann::json& overrides);

/// Attention from the read-out (pronoun) position onto the two candidate nouns, per attention
/// module ("blocks.0.attn", …) and head, over the sentences whose noun positions are known.
struct ReferentAttention {
  std::vector<std::string> modules;
  int64_t heads = 0;
  int64_t sentences = 0;
  std::vector<std::vector<double>> referent;    // [module][head] mean P(pronoun → referent)
  std::vector<std::vector<double>> distractor;  // [module][head] mean P(pronoun → distractor)
  std::vector<std::vector<double>> wins;        // [module][head] fraction referent > distractor
  int64_t best_module = -1, best_head = -1;     // the head with the most wins

  bool empty() const { return sentences == 0; }
  double best_wins() const { return empty() ? 0.0 : wins[best_module][best_head]; }
};

struct EvalResult {
  double loss = 0;  // mean cross-entropy over the split's non-ignored targets
  Score score;
  ReferentAttention referent;  // empty unless the batches carry referent_pos / distractor_pos
};

/// Evaluates `model` (switched to eval mode, no graph) on the first `max_examples` of `split`
/// (0 = all) in batches of `batch_size`; restores the model's training mode. Predictions are the
/// argmax of the logits (decoder / seq2seq: at every target position, under teacher forcing).
EvalResult evaluate(Model<float>& model, const Task& task, Split split, int64_t batch_size = 256,
                    int64_t max_examples = 0);

/// The pronoun's attention on one sentence: for every attention module, [H][T] (the read-out
/// row of each head). The model is run in eval mode.
struct ProbeAttention {
  std::vector<std::string> tokens;
  int64_t position = 0;
  std::vector<std::pair<std::string, std::vector<std::vector<double>>>> rows;
};
ProbeAttention probe_attention(Model<float>& model, const Task& task, const std::string& text);

/// How the trainer reports progress on stderr.
enum class Progress {
  kAuto,   // a live bar when stderr is a terminal, plain lines otherwise
  kBar,    // the live bar
  kLines,  // a line per evaluation
  kQuiet,  // nothing
};

struct TrainerOptions {
  /// Output folder; "" = write nothing (no metrics, checkpoints or pictures).
  std::string out_dir;
  /// Allow a non-empty out_dir: the files of an earlier run there are removed first.
  bool force = false;
  Progress progress = Progress::kAuto;
  /// Called after each backward with the 1-based step, before the gradients are checked (tests
  /// inject non-finite values through it).
  std::function<void(int64_t step, Model<float>& model)> after_backward;
};

struct TrainResult {
  enum class Status { kCompleted, kInterrupted, kDiverged };
  Status status = Status::kCompleted;
  int64_t step = 0;           // steps done
  int64_t skipped_steps = 0;  // steps skipped for a non-finite gradient
  std::string message;        // what happened, for the user
  std::string checkpoint;     // the last checkpoint written ("" = none)
  EvalResult last_eval;       // the last evaluation on val
  double best_val_accuracy = -1;
  double seconds = 0;  // wall time of run()
};

class Trainer {
 public:
  /// A fresh run: builds the task, the model (float32, seeded by train.seed) and the optimizer,
  /// and checks the output folder (qkv::Error when it holds files, unless options.force).
  Trainer(const RunConfig& config, TrainerOptions options);
  /// Continues the run saved in `checkpoint`. The output folder defaults to the checkpoint's
  /// folder; metrics and probe records after the checkpoint's step are dropped there.
  /// `train_overrides` may change steps, eval_every, eval_examples, save_every, keep,
  /// skip_nonfinite, lr, schedule, warmup, min_lr_ratio, clip and weight_decay (an exact resume
  /// changes none); any other key throws qkv::Error.
  static std::unique_ptr<Trainer> resume(const std::string& checkpoint, TrainerOptions options,
                                         const nlohmann::json& train_overrides = {});
  ~Trainer();

  /// Trains until train.steps (or an interrupt, see request_stop, or a non-finite gradient).
  TrainResult run();

  /// The current state as a checkpoint (parameters, optimizer, step, generators, epoch position).
  Checkpoint make_checkpoint() const;
  /// Writes make_checkpoint() to `path` (atomically).
  void save(const std::string& path) const;

  Model<float>& model() { return *model_; }
  const Task& task() const { return *task_; }
  const RunConfig& config() const { return config_; }
  int64_t step() const { return step_; }
  const std::string& out_dir() const { return opt_.out_dir; }

 private:
  struct Init {};
  Trainer(const RunConfig& config, TrainerOptions options, Init)
      : config_(config), opt_(std::move(options)) {}
  void prepare_out_dir(bool resuming, int64_t resume_step);
  void start_epoch();
  Batch next_batch();
  void build();
  void evaluate_now(MetricsRecord& record, TrainResult& result);
  void record_probe();
  std::string checkpoint_now(TrainResult& result);
  void write_pictures(bool final_probe) const;
  std::string path(const std::string& name) const;

  RunConfig config_;
  TrainerOptions opt_;
  std::unique_ptr<Task> task_;
  std::unique_ptr<Model<float>> model_;
  std::unique_ptr<Optimizer<float>> optimizer_;
  std::unique_ptr<LrSchedule> schedule_;
  OptimParams<float> params_;

  int64_t step_ = 0;
  int64_t epoch_ = 0;
  int64_t pos_ = 0;  // next example of order_
  std::vector<int64_t> order_;
  Rng data_rng_;
  Rng::State epoch_start_{};  // data_rng_ before this epoch's permutation was drawn
  double best_val_accuracy_ = -1;
  double best_val_loss_ = std::numeric_limits<double>::max();  // at the best accuracy
  int64_t best_step_ = -1;
  int64_t skipped_ = 0;
  bool resumed_ = false;
  std::vector<int64_t> saved_steps_;  // step-XXXXXX.h5 files in out_dir, oldest first
  ReferentAttention last_referent_;   // of the last evaluation (picks the probe picture's head)
};

/// Asks a running Trainer to stop after its current step (async-signal-safe: sets a flag).
void request_stop();
bool stop_requested();
void clear_stop_request();
/// SIGINT and SIGTERM call request_stop(); a second signal terminates at once.
void install_stop_handlers();

/// "step-000123.h5".
std::string step_checkpoint_name(int64_t step);

}  // namespace qkv
