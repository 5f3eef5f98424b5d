#include <cmath>

#include "test_util.h"

namespace qkv {
namespace {

using testing::randn;

TEST(Softmax, GradcheckFloat64) {
  Rng rng(1);
  auto x = randn({3, 5}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return softmax(x); }, {x}));
}

TEST(Softmax, GradcheckBatched4D) {
  Rng rng(2);
  auto x = randn({2, 2, 3, 4}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return softmax(x); }, {x}));
}

TEST(LogSoftmax, GradcheckFloat64) {
  Rng rng(3);
  auto x = randn({4, 6}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return log_softmax(x); }, {x}));
}

TEST(Softmax, RowsSumToOne) {
  Rng rng(4);
  auto x = randn({7, 9}, rng, false);
  for (double& v : x.value()) v *= 30;
  Tensor<double> y = softmax(x).value();
  for (int r = 0; r < 7; ++r) {
    double s = 0;
    for (int j = 0; j < 9; ++j) s += y[r * 9 + j];
    EXPECT_NEAR(s, 1.0, 1e-12) << "row " << r;
  }
}

TEST(Softmax, ExtremeLogitsGiveNoNaN) {
  Var<float> x(Tensor<float>::from({2, 3}, {1000, -1000, 0, -1000, -1000, 1000}), true);
  Var<float> y = softmax(x);
  EXPECT_TRUE(y.value().all_finite());
  EXPECT_FLOAT_EQ(y.value()[0], 1.0f);
  EXPECT_FLOAT_EQ(y.value()[5], 1.0f);
  Var<float> ls = log_softmax(x);
  EXPECT_TRUE(ls.value().all_finite());
  EXPECT_FLOAT_EQ(ls.value()[1], -2000.0f);
  y.backward(Tensor<float>::full({2, 3}, 1.0f));
  EXPECT_TRUE(x.grad().all_finite());
}

TEST(Softmax, AllMinusInfRowGivesZeros) {
  const double inf = std::numeric_limits<double>::infinity();
  Var<double> x(Tensor<double>::from({2, 2}, {-inf, -inf, 0.0, 1.0}), true);
  Var<double> y = softmax(x);
  EXPECT_EQ(y.value()[0], 0.0);
  EXPECT_EQ(y.value()[1], 0.0);
  y.backward(Tensor<double>::full({2, 2}, 1.0));
  EXPECT_EQ(x.grad()[0], 0.0);
  EXPECT_EQ(x.grad()[1], 0.0);
}

TEST(Softmax, Float32AgreesWithFloat64) {
  Rng rng(5);
  auto x = randn({5, 11}, rng, false);
  Var<float> xf(x.value().to<float>());
  Tensor<double> y64 = softmax(x).value();
  Tensor<float> y32 = softmax(xf).value();
  for (int64_t i = 0; i < y64.numel(); ++i) EXPECT_NEAR(y32[i], y64[i], 1e-6);
}

TEST(Softmax, ZeroDimensionalInputIsRejected) {
  Var<double> x(Tensor<double>::scalar(1.0), true);
  EXPECT_THROW(softmax(x), Error);
}

}  // namespace
}  // namespace qkv
