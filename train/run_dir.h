// A training run's output folder: its file names, the check that a fresh run does not overwrite
// another silently, the lock that keeps two runs out of one folder, and clean-up after a kill.
//
// Files of a run:
//   metrics.jsonl          one record per step; evaluation steps add val_loss, val_accuracy and
//                          each probe's metrics
//   step-XXXXXX.h5         every save_every steps, the last `keep` kept
//   last.h5                the newest checkpoint, replaced (atomically) at every save
//   best.h5                best val accuracy (ties: lower val loss; language models: lowest loss)
//   loss.svg, accuracy.svg rewritten at every checkpoint and at the end
//   NAME.svg               each probe's metrics over training (e.g. referent_attention.svg)
//   probe_attention.jsonl  encoders: the read-out row of the task's probe sentence at every
//   probe_attention.svg    evaluation, and its heatmap (rows = steps) at the end
//   attend/                written by `qkv attend` into a run's folder
//   .lock                  held (flock) while a run writes here
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qkv {

/// "step-000123.h5".
std::string step_checkpoint_name(int64_t step);
/// The step of a "step-XXXXXX.h5" name, or -1.
int64_t parse_step_name(const std::string& name);
/// Whether `name` (a file or folder in a run folder) is something a run writes, temporaries
/// included: what --force removes.
bool is_run_file(const std::string& name);
/// The names in `dir`, sorted; empty when it is not a folder.
std::vector<std::string> folder_entries(const std::string& dir);
/// Throws qkv::Error when `dir` is a file, or holds anything but the lock file and force is off
/// (naming the newest checkpoint there to resume from).
void check_out_dir(const std::string& dir, bool force);
/// The newest complete checkpoint in `dir`: last.h5 when present, else the highest step file;
/// "" when there is none.
std::string newest_checkpoint(const std::string& dir);
/// Removes NAME.tmp files a killed run left in `dir`; returns how many.
int remove_stale_temporaries(const std::string& dir);
/// Keeps the lines of a JSON-lines file whose "step" is <= last_step (atomic rewrite). A missing
/// file is left missing.
void truncate_jsonl(const std::string& path, int64_t last_step);

/// An exclusive lock on DIR/.lock (flock): one run per output folder. The kernel drops it when
/// the process dies, so a killed run leaves no stale lock.
class RunDirLock {
 public:
  RunDirLock() = default;
  /// Takes the lock or throws qkv::Error naming the folder at once (no waiting).
  explicit RunDirLock(const std::string& dir);
  ~RunDirLock();
  RunDirLock(RunDirLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  RunDirLock& operator=(RunDirLock&& o) noexcept;
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace qkv
