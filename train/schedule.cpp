#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace qkv {

constexpr double kPi = 3.14159265358979323846;

ScheduleKind parse_schedule_kind(const std::string& name) {
  if (name == "constant") return ScheduleKind::kConstant;
  if (name == "cosine") return ScheduleKind::kCosine;
  if (name == "linear") return ScheduleKind::kLinear;
  fail("unknown learning-rate schedule '{}' (valid: constant, cosine, linear)", name);
}

const char* schedule_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::kConstant:
      return "constant";
    case ScheduleKind::kCosine:
      return "cosine";
    case ScheduleKind::kLinear:
      return "linear";
  }
  return "constant";
}

LrSchedule::LrSchedule(const ScheduleOptions& o) : opt_(o) {
  const char* name = schedule_name(o.kind);
  QKV_CHECK(std::isfinite(o.base_lr) && o.base_lr >= 0,
            "{} schedule: base learning rate {} must be finite and >= 0", name, o.base_lr);
  QKV_CHECK(o.warmup_steps >= 0, "{} schedule: warmup_steps {} must be >= 0", name, o.warmup_steps);
  QKV_CHECK(o.min_ratio >= 0 && o.min_ratio <= 1, "{} schedule: min_ratio {} must be in [0, 1]",
            name, o.min_ratio);
  if (o.kind != ScheduleKind::kConstant)
    QKV_CHECK(o.total_steps > o.warmup_steps,
              "{} schedule: total_steps ({}) must exceed warmup_steps ({})", name, o.total_steps,
              o.warmup_steps);
}

LrSchedule LrSchedule::parse(const std::string& name, double base_lr, int64_t total_steps,
                             int64_t warmup_steps, double min_ratio) {
  return LrSchedule(
      ScheduleOptions{parse_schedule_kind(name), base_lr, total_steps, warmup_steps, min_ratio});
}

double LrSchedule::lr(int64_t step) const {
  QKV_CHECK(step >= 0, "lr schedule: step {} is negative", step);
  const double base = opt_.base_lr;
  const int64_t W = opt_.warmup_steps;
  if (step < W) return base * static_cast<double>(step + 1) / static_cast<double>(W);
  if (opt_.kind == ScheduleKind::kConstant) return base;
  const double p = std::clamp(
      static_cast<double>(step - W) / static_cast<double>(opt_.total_steps - W), 0.0, 1.0);
  const double lo = base * opt_.min_ratio;
  if (opt_.kind == ScheduleKind::kCosine) return lo + (base - lo) * 0.5 * (1.0 + std::cos(kPi * p));
  return lo + (base - lo) * (1.0 - p);
}

}  // namespace qkv
