// Learning-rate schedules: lr(step) is a pure function of the number of optimizer steps already
// taken (0 for the first step), so a resumed run recomputes the same rate.
//
//   warm-up (all kinds, when warmup_steps > 0), for step < W:   lr = base · (step + 1) / W
//   then, with progress p = clamp((step − W) / (total − W), 0, 1) and lo = base · min_ratio:
//     constant   lr = base
//     cosine     lr = lo + (base − lo) · ½(1 + cos(π p))
//     linear     lr = lo + (base − lo) · (1 − p)
//   steps past total_steps stay at lo (cosine, linear).
#pragma once

#include <cstdint>
#include <string>

namespace qkv {

enum class ScheduleKind { kConstant, kCosine, kLinear };

/// "constant" | "cosine" | "linear"; anything else throws qkv::Error listing the valid names.
ScheduleKind parse_schedule_kind(const std::string& name);
/// The name parse_schedule_kind() accepts for `kind`.
const char* schedule_name(ScheduleKind kind);

struct ScheduleOptions {
  ScheduleKind kind = ScheduleKind::kConstant;
  double base_lr = 1e-3;
  int64_t total_steps = 0;   ///< steps of the whole run; decays reach min at this step
  int64_t warmup_steps = 0;  ///< 0 = no warm-up
  double min_ratio = 0.0;    ///< final lr as a fraction of base_lr, in [0, 1]
};

class LrSchedule {
 public:
  /// Validates the options (base_lr >= 0, warmup_steps >= 0, min_ratio in [0, 1], and for
  /// cosine/linear total_steps > warmup_steps); throws qkv::Error.
  explicit LrSchedule(const ScheduleOptions& options);
  /// Builds a schedule by name (see parse_schedule_kind).
  static LrSchedule parse(const std::string& name, double base_lr, int64_t total_steps,
                          int64_t warmup_steps = 0, double min_ratio = 0.0);

  /// The learning rate for the step taken after `step` steps (step >= 0).
  double lr(int64_t step) const;
  const ScheduleOptions& options() const { return opt_; }

 private:
  ScheduleOptions opt_;
};

}  // namespace qkv
