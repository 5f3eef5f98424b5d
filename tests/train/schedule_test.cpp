#include "train/schedule.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"

namespace qkv {
namespace {

constexpr double kPi = 3.14159265358979323846;

TEST(Schedule, ConstantWithAndWithoutWarmup) {
  LrSchedule flat({ScheduleKind::kConstant, 0.5, 100, 0, 0.0});
  EXPECT_DOUBLE_EQ(flat.lr(0), 0.5);
  EXPECT_DOUBLE_EQ(flat.lr(1000), 0.5);
  LrSchedule warm({ScheduleKind::kConstant, 0.5, 0, 4, 0.0});
  EXPECT_DOUBLE_EQ(warm.lr(0), 0.125);  // base·(step+1)/W
  EXPECT_DOUBLE_EQ(warm.lr(1), 0.25);
  EXPECT_DOUBLE_EQ(warm.lr(3), 0.5);  // warm-up end
  EXPECT_DOUBLE_EQ(warm.lr(4), 0.5);
}

TEST(Schedule, CosineKeySteps) {
  // base 1, 10 warm-up steps, decay over the next 100 to 0.1.
  LrSchedule s = LrSchedule::parse("cosine", 1.0, 110, 10, 0.1);
  EXPECT_DOUBLE_EQ(s.lr(0), 0.1);
  EXPECT_DOUBLE_EQ(s.lr(4), 0.5);
  EXPECT_DOUBLE_EQ(s.lr(9), 1.0);   // last warm-up step
  EXPECT_DOUBLE_EQ(s.lr(10), 1.0);  // decay starts at the top
  EXPECT_NEAR(s.lr(35), 0.1 + 0.9 * 0.5 * (1 + std::cos(kPi / 4)), 1e-15);
  EXPECT_NEAR(s.lr(60), 0.55, 1e-15);  // half-way: the mid-point of base and min
  EXPECT_NEAR(s.lr(110), 0.1, 1e-15);  // end
  EXPECT_NEAR(s.lr(500), 0.1, 1e-15);  // past the end: stays at min
  for (int64_t t = 11; t <= 110; ++t) EXPECT_LE(s.lr(t), s.lr(t - 1));
}

TEST(Schedule, LinearKeySteps) {
  LrSchedule s = LrSchedule::parse("linear", 2.0, 100);  // no warm-up, min 0
  EXPECT_DOUBLE_EQ(s.lr(0), 2.0);
  EXPECT_DOUBLE_EQ(s.lr(25), 1.5);
  EXPECT_DOUBLE_EQ(s.lr(50), 1.0);
  EXPECT_DOUBLE_EQ(s.lr(100), 0.0);
  LrSchedule w = LrSchedule::parse("linear", 1.0, 20, 10, 0.5);
  EXPECT_DOUBLE_EQ(w.lr(9), 1.0);
  EXPECT_DOUBLE_EQ(w.lr(15), 0.75);
  EXPECT_DOUBLE_EQ(w.lr(20), 0.5);
}

TEST(Schedule, ParseErrorsListValidNames) {
  try {
    parse_schedule_kind("cosin");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "unknown learning-rate schedule 'cosin' (valid: constant, cosine, linear)");
  }
  for (auto k : {ScheduleKind::kConstant, ScheduleKind::kCosine, ScheduleKind::kLinear})
    EXPECT_EQ(parse_schedule_kind(schedule_name(k)), k);
}

TEST(Schedule, ValidatesOptions) {
  try {
    LrSchedule::parse("cosine", 1.0, 10, 10);
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "cosine schedule: total_steps (10) must exceed warmup_steps (10)");
  }
  EXPECT_THROW(LrSchedule::parse("linear", 1.0, 10, 0, 1.5), Error);
  EXPECT_THROW(LrSchedule::parse("constant", -1.0, 10), Error);
  EXPECT_THROW(LrSchedule::parse("constant", 1.0, 10).lr(-1), Error);
  EXPECT_NO_THROW(LrSchedule::parse("constant", 1.0, 0));
}

}  // namespace
}  // namespace qkv
