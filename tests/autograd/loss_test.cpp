#include <cmath>

#include "test_util.h"

namespace qkv {
namespace {

using testing::randn;

using testing::error_of;

TEST(CrossEntropy, GradcheckWithIgnoredTargets) {
  Rng rng(1);
  auto x = randn({5, 4}, rng);
  IndexTensor t({5}, {1, -1, 3, 0, -1});
  EXPECT_GRADCHECK(gradcheck([&] { return cross_entropy(x, t); }, {x}));
}

TEST(CrossEntropy, AddsToAGradientAnotherOpWroteFirst) {
  // The logits' gradient is written outright (ignored rows set to 0) when the loss is their only
  // reader, and added to otherwise, in either order of the two terms.
  Rng rng(2);
  auto x = randn({5, 4}, rng);
  IndexTensor t({5}, {1, -1, 3, 0, -1});
  EXPECT_GRADCHECK(gradcheck(
      [&] {
        const Var<double> h = x * 1.5;
        return cross_entropy(h, t) + sum(h * h);
      },
      {x}));
  EXPECT_GRADCHECK(gradcheck(
      [&] {
        const Var<double> h = x * 1.5;
        return sum(h * h) + cross_entropy(h, t);
      },
      {x}));
}

TEST(CrossEntropy, GradcheckWithExtremeLogits) {
  Rng rng(2);
  auto x = randn({4, 3}, rng);
  double* v = x.value().data();
  v[0] = 1000;   // row 0: the target class dominates
  v[4] = -1000;  // row 1: the target class is hopeless
  v[8] = 1000;
  v[9] = -1000;  // row 3: one class at each extreme
  v[10] = 1000;
  IndexTensor t({4}, {0, 1, 2, 1});
  EXPECT_GRADCHECK(gradcheck([&] { return cross_entropy(x, t); }, {x}));
}

TEST(CrossEntropy, ExtremeLogitsGiveFiniteLossAndGradientInFloat32) {
  Var<float> x(Tensor<float>::from({2, 3}, {1000, -1000, 0, -1000, -1000, 1000}), true);
  IndexTensor t({2}, {1, 2});
  Var<float> loss = cross_entropy(x, t);
  EXPECT_TRUE(std::isfinite(loss.item()));
  EXPECT_FLOAT_EQ(loss.item(), 1000.0f);  // row 0 costs 2000, row 1 costs 0
  loss.backward();
  EXPECT_TRUE(x.grad().all_finite());
  EXPECT_FLOAT_EQ(x.grad()[0], 0.5f);  // (p − 1[j = t]) / 2 with p = (1, 0, 0)
  EXPECT_FLOAT_EQ(x.grad()[1], -0.5f);
}

TEST(CrossEntropy, GradientIsSoftmaxMinusOneHotOverCount) {
  Rng rng(3);
  auto x = randn({4, 5}, rng);
  IndexTensor t({4}, {2, -1, 0, 4});
  cross_entropy(x, t).backward();
  Tensor<double> p = softmax(x.detach()).value();
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t j = 0; j < 5; ++j) {
      const double want = t[r] == -1 ? 0.0 : (p[r * 5 + j] - (j == t[r] ? 1.0 : 0.0)) / 3.0;
      EXPECT_NEAR(x.grad()[r * 5 + j], want, 1e-15) << r << "," << j;
    }
}

TEST(CrossEntropy, MatchesMinusMeanLogSoftmaxAtTheTargets) {
  Rng rng(4);
  auto x = randn({6, 7}, rng, false);
  IndexTensor t({6}, {3, -1, 6, 0, 0, -1});
  Tensor<double> ls = log_softmax(x).value();
  double want = 0;
  for (int64_t r = 0; r < 6; ++r)
    if (t[r] != -1) want -= ls[r * 7 + t[r]] / 4;
  EXPECT_NEAR(cross_entropy(x, t).item(), want, 1e-14);
}

TEST(CrossEntropy, UniformLogitsGiveLogV) {
  for (int64_t V : {2, 10, 1000}) {
    Var<double> x(Tensor<double>::full({3, V}, 0.7));
    IndexTensor t({3}, {0, static_cast<int32_t>(V - 1), 1});
    EXPECT_NEAR(cross_entropy(x, t).item(), std::log(static_cast<double>(V)), 1e-12) << V;
  }
}

TEST(CrossEntropy, EveryTargetIgnoredGivesZeroLossAndZeroGradient) {
  Rng rng(5);
  auto x = randn({3, 4}, rng);
  IndexTensor t({3}, {-1, -1, -1});
  Var<double> loss = cross_entropy(x, t);
  EXPECT_EQ(loss.item(), 0.0);
  loss.backward();
  for (double g : x.grad()) EXPECT_EQ(g, 0.0);
  EXPECT_GRADCHECK(gradcheck([&] { return cross_entropy(x, t); }, {x}));
}

TEST(CrossEntropy, LargeInputMatchesRowByRow) {
  // Large enough to run rows in parallel; every row checked against its own formula.
  Rng rng(6);
  const int64_t N = 300, V = 257;
  auto x = randn({N, V}, rng);
  IndexTensor t({N});
  for (int64_t r = 0; r < N; ++r) t[r] = r % 7 == 0 ? -1 : static_cast<int32_t>(rng.below(V));
  Var<double> loss = cross_entropy(x, t);
  loss.backward();
  Tensor<double> ls = log_softmax(x.detach()).value();
  double want = 0, n = 0;
  for (int64_t r = 0; r < N; ++r) {
    if (t[r] == -1) continue;
    want -= ls[r * V + t[r]];
    n += 1;
  }
  EXPECT_NEAR(loss.item(), want / n, 1e-12);
  for (int64_t r = 0; r < N; ++r)
    for (int64_t j = 0; j < V; ++j) {
      const double g = t[r] == -1 ? 0.0 : (std::exp(ls[r * V + j]) - (j == t[r])) / n;
      ASSERT_NEAR(x.grad()[r * V + j], g, 1e-15);
    }
}

TEST(CrossEntropy, BackwardScalesByTheUpstreamGradientAndAccumulates) {
  // L = 2.5·CE(x) + CE(x): two cross-entropy nodes add into the same dx, each scaled by its g.
  Rng rng(9);
  auto x = randn({6, 9}, rng);
  IndexTensor t({6}, {8, 0, -1, 3, 3, 1});
  add(mul_scalar(cross_entropy(x, t), 2.5), cross_entropy(x, t)).backward();
  Tensor<double> p = softmax(x.detach()).value();
  for (int64_t r = 0; r < 6; ++r)
    for (int64_t j = 0; j < 9; ++j) {
      const double want = t[r] == -1 ? 0.0 : 3.5 * (p[r * 9 + j] - (j == t[r])) / 5.0;
      EXPECT_NEAR(x.grad()[r * 9 + j], want, 1e-15) << r << "," << j;
    }
}

TEST(CrossEntropy, KeepsPerRowStatisticsNotAnNByVBuffer) {
  // The backward recomputes (p − onehot)/n from the logits: what the node keeps is O(N).
  Rng rng(10);
  auto x = randn({64, 500}, rng);
  IndexTensor t({64});
  for (int64_t r = 0; r < 64; ++r) t[r] = static_cast<int32_t>(rng.below(500));
  Var<double> loss = cross_entropy(x, t);
  int64_t kept = 0;
  for (const Tensor<double>& s : loss.node()->saved) kept += s.defined() ? s.numel() : 0;
  EXPECT_LE(kept, 3 * 64);
}

TEST(CrossEntropy, Float32AgreesWithFloat64) {
  Rng rng(7);
  auto x = randn({8, 11}, rng, false);
  for (double& v : x.value()) v *= 5;
  IndexTensor t({8}, {0, 1, 2, -1, 4, 5, 10, 9});
  const double l64 = cross_entropy(x, t).item();
  const float l32 = cross_entropy(Var<float>(x.value().to<float>()), t).item();
  EXPECT_NEAR(l32, l64, 1e-5 * std::abs(l64) + 1e-6);
}

TEST(CrossEntropy, UnderNoGradNothingIsRecorded) {
  Rng rng(8);
  auto x = randn({2, 3}, rng);
  NoGradGuard no_grad;
  Var<double> loss = cross_entropy(x, IndexTensor({2}, {0, 1}));
  EXPECT_FALSE(loss.requires_grad());
}

TEST(CrossEntropy, TargetOutOfRangeIsAnError) {
  Var<double> x(Tensor<double>({3, 5}));
  EXPECT_EQ(error_of([&] {
              cross_entropy(x, IndexTensor({3}, {0, 7, 1}));
            }),
            "cross_entropy: target 7 is out of range for 5 classes (use -1 to ignore a row)");
  EXPECT_EQ(error_of([&] {
              cross_entropy(x, IndexTensor({3}, {0, 5, 1}));
            }),
            "cross_entropy: target 5 is out of range for 5 classes (use -1 to ignore a row)");
  EXPECT_EQ(error_of([&] {
              cross_entropy(x, IndexTensor({3}, {-2, 0, 1}));
            }),
            "cross_entropy: target -2 is out of range for 5 classes (use -1 to ignore a row)");
}

TEST(CrossEntropy, ShapeMismatchesAreErrors) {
  Var<double> x(Tensor<double>({3, 5}));
  EXPECT_EQ(error_of([&] {
              cross_entropy(x, IndexTensor({2}, {0, 1}));
            }),
            "cross_entropy: 2 targets for logits of shape [3, 5]");
  Var<double> x3(Tensor<double>({2, 3, 5}));
  EXPECT_EQ(error_of([&] { cross_entropy(x3, IndexTensor({6})); }),
            "cross_entropy: logits must be [N, V], got [2, 3, 5]");
}

}  // namespace
}  // namespace qkv
