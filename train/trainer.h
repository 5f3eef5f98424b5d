// Trainer: the training loop over any Task and any BatchModel, writing metrics.jsonl, pictures
// and checkpoints into an output folder (train/run_dir.h lists its files), and resuming
// bit-exactly.
//
//   // From a configuration (what `qkv train` does):
//   RunConfig cfg = resolve_run_config("pronoun", /*file=*/{}, {{"train", {{"steps", 500}}}});
//   TrainerOptions o;
//   o.out_dir = "runs/pronoun";
//   TrainResult r = Trainer(cfg, o).run();       // or Trainer::resume("runs/pronoun/last.h5", o)
//
//   // From code: a task and a model of your own.
//   Trainer t(std::make_unique<MyTask>(), std::make_unique<MyModel>(), train_config, o);
//   t.run();
//   auto again = Trainer::resume("runs/x/last.h5", std::make_unique<MyTask>(),
//                                std::make_unique<MyModel>(), o);
//
// One step: forward, loss, backward, clip by global norm, non-finite check, optimizer step with
// the scheduled lr, zero grads. Everything random (data order, dropout; the model's
// initialisation for a config-built model) comes from train.seed; the checkpoint holds every
// generator's state, the position in the current epoch and the optimizer state, so N steps =
// k steps + save + resume for N − k, bit for bit. Each evaluation runs the task's probes.
//
// Across ranks (TrainerOptions::comm, `mpirun -np N qkv train`) a step is the same step of the
// same global batch: each rank's share of it, one allreduce of the gradients weighted by each
// share's loss denominator (train/data_parallel.h), then the same clipping, checks and update on
// every rank. Each rank's dropout draws come from a stream fixed by (seed, step, rank), so a
// resumed run draws what the uninterrupted one did. Failures and stop requests travel with the
// step's allreduce, so every rank stops at the same step with the same exit status.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "datasets/task.h"
#include "nn/batch_model.h"
#include "nn/config.h"
#include "nn/model.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/distributed.h"
#include "train/evaluate.h"
#include "train/metrics.h"
#include "train/optimizer.h"
#include "train/progress.h"
#include "train/run_config.h"
#include "train/run_dir.h"
#include "train/schedule.h"
#include "train/stop.h"
#include "train/thread_shards.h"

namespace qkv {

struct TrainerOptions {
  /// Output folder; "" = write nothing (no metrics, checkpoints or pictures).
  std::string out_dir;
  /// Allow a non-empty out_dir: the files of an earlier run there are removed first.
  bool force = false;
  Progress progress = Progress::kAuto;
  /// Called after each backward with the 1-based step, before the gradients are checked (tests
  /// inject non-finite values through it).
  std::function<void(int64_t step, BatchModel<float>& model)> after_backward;
  /// The ranks of a data-parallel run (train/distributed.h, docs/distributed.md); nullptr = this
  /// process alone. Every rank builds the same Trainer; each step each takes a contiguous share
  /// of the global batch (train.batch_size), and the gradients are averaged before clipping.
  /// Rank 0 alone writes the output folder and shows progress.
  Communicator* comm = nullptr;
};

struct TrainResult {
  enum class Status { kCompleted, kInterrupted, kDiverged };
  Status status = Status::kCompleted;
  int64_t step = 0;           // the step reached
  int64_t steps_run = 0;      // steps this run() took (a resumed run started past 0)
  int64_t skipped_steps = 0;  // steps skipped for a non-finite gradient
  std::string message;        // what happened, for the user
  std::string checkpoint;     // the last checkpoint written ("" = none)
  EvalResult last_eval;       // the last evaluation on val
  double best_val_accuracy = -1;
  double seconds = 0;  // wall time of run()
};

class Trainer {
 public:
  /// A fresh run from a configuration: builds the task, the model (float32, initialised from
  /// train.seed) and the optimizer, and checks the output folder (qkv::Error when it holds
  /// files, unless options.force, or when another run holds it).
  Trainer(const RunConfig& config, TrainerOptions options);
  /// A fresh run of a task and a model of the caller's (the model as it is: not re-initialised).
  Trainer(std::unique_ptr<Task> task, std::unique_ptr<BatchModel<float>> model,
          const TrainConfig& train, TrainerOptions options);

  /// Continues the run saved in `checkpoint`, rebuilding its task (with the stored vocabulary)
  /// and its model from the checkpoint's configs. The output folder defaults to the checkpoint's
  /// folder; metrics and step files after the checkpoint's step are dropped there (said on
  /// stderr). `train_overrides` may change steps, eval_every, eval_examples, save_every, keep,
  /// skip_nonfinite, lr, schedule, warmup, min_lr_ratio, clip and weight_decay (an exact resume
  /// changes none); any other key throws qkv::Error.
  static std::unique_ptr<Trainer> resume(const std::string& checkpoint, TrainerOptions options,
                                         const nlohmann::json& train_overrides = {});
  /// As above with the caller's task and model, which must match the checkpoint's parameters.
  static std::unique_ptr<Trainer> resume(const std::string& checkpoint, std::unique_ptr<Task> task,
                                         std::unique_ptr<BatchModel<float>> model,
                                         TrainerOptions options,
                                         const nlohmann::json& train_overrides = {});
  ~Trainer();

  /// Trains until train.steps (or an interrupt, see request_stop, or a non-finite gradient).
  TrainResult run();

  /// The current state as a checkpoint (parameters, optimizer, step, generators, epoch position).
  Checkpoint make_checkpoint() const;
  /// Writes make_checkpoint() to `path` (atomically).
  void save(const std::string& path) const;

  BatchModel<float>& model() { return *model_; }
  const Task& task() const { return *task_; }
  const TrainConfig& train_config() const { return train_; }
  int64_t step() const { return step_; }
  const std::string& out_dir() const { return opt_.out_dir; }

 private:
  Trainer(std::unique_ptr<Task> task, std::unique_ptr<BatchModel<float>> model,
          const TrainConfig& train, TrainerOptions options, bool resuming);
  static std::unique_ptr<Trainer> resume_from(const Checkpoint& ck, const std::string& checkpoint,
                                              std::unique_ptr<Task> task,
                                              std::unique_ptr<BatchModel<float>> model,
                                              const TrainConfig& train, TrainerOptions options);
  void restore(const Checkpoint& ck, const std::string& checkpoint);
  void prepare_out_dir(bool resuming, int64_t resume_step);
  void start_epoch();
  Batch next_batch();
  /// Forward and backward of this step's batch (this rank's share of it across ranks), the
  /// gradients averaged over the ranks; returns the batch's loss and its real tokens.
  std::pair<double, double> compute_gradients(int64_t step);
  std::pair<double, double> compute_gradients_across_ranks(int64_t step);
  void reseed_dropout(int64_t step);
  /// Runs a write of rank 0's (the output folder); across ranks, an error is held until the
  /// next collective, so that every rank stops together.
  void on_rank0(const std::function<void()>& write);
  bool distributed() const { return comm_->size() > 1; }
  /// Whether this process writes the output folder: rank 0 of a run with one.
  bool writes() const { return comm_->rank() == 0 && !opt_.out_dir.empty(); }
  void evaluate_now(MetricsRecord& record, TrainResult& result);
  void record_probe(const HeadRef& focus);
  std::string checkpoint_now(TrainResult& result);
  void write_pictures(bool final_probe) const;
  std::string summary_line(int64_t step, const MetricsRecord& r, const EvalResult& e) const;
  std::string path(const std::string& name) const;
  std::string last_good_checkpoint() const;

  TrainConfig train_;
  TrainerOptions opt_;
  std::unique_ptr<Task> task_;
  std::unique_ptr<BatchModel<float>> model_;
  RunDirLock lock_;
  std::unique_ptr<Optimizer<float>> optimizer_;
  std::unique_ptr<LrSchedule> schedule_;
  OptimParams<float> params_;

  int64_t step_ = 0;
  int64_t epoch_ = 0;
  int64_t pos_ = 0;              // next example of order_
  std::vector<uint32_t> order_;  // 4 bytes an example: a text's train windows are one a character
  Rng data_rng_;
  Rng::State epoch_start_{};  // data_rng_ before this epoch's permutation was drawn
  double best_val_accuracy_ = -1;
  double best_val_loss_ = std::numeric_limits<double>::max();  // at the best accuracy
  int64_t best_step_ = -1;
  int64_t skipped_ = 0;
  bool resumed_ = false;
  std::vector<int64_t> saved_steps_;  // step-XXXXXX.h5 files in out_dir, oldest first
  HeadRef focus_;                     // the head the last evaluation's probes pointed at
  // Each probe's metric names in its display order (as the last evaluation reported them).
  std::vector<std::pair<std::string, std::vector<std::string>>> probe_metrics_;
  Communicator* comm_;
  std::unique_ptr<GradientAverager> averager_;  // across ranks only
  std::unique_ptr<ThreadShards> shards_;        // the step's batch shards (train.shards)
  bool stop_agreed_ = false;                    // across ranks: some rank asked to stop
  std::exception_ptr held_error_;               // rank 0's failed write, for the next collective
};

}  // namespace qkv
