#include <cmath>
#include <limits>
#include <string>

#include "test_util.h"

namespace qkv {
namespace {

using testing::error_of;
using testing::randn;

TEST(Sum, GradcheckAllElements) {
  Rng rng(1);
  auto x = randn({2, 3, 4}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return sum(x); }, {x}));
  EXPECT_GRADCHECK(gradcheck([&] { return mean(x); }, {x}));
  auto s = randn({}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return sum(s); }, {s}));
}

TEST(Sum, GradcheckOverAxes) {
  Rng rng(2);
  auto x = randn({2, 3, 4, 2}, rng);
  const std::vector<std::vector<int>> axes_sets = {{0},    {1},          {-1},   {3}, {0, 2},
                                                   {1, 3}, {0, 1, 2, 3}, {2, 1}, {}};
  for (const auto& axes : axes_sets) {
    for (bool keepdim : {false, true}) {
      SCOPED_TRACE(::testing::Message()
                   << "axes of size " << axes.size() << " keepdim " << keepdim);
      EXPECT_GRADCHECK(gradcheck([&] { return sum(x, axes, keepdim); }, {x}));
      EXPECT_GRADCHECK(gradcheck([&] { return mean(x, axes, keepdim); }, {x}));
    }
  }
}

TEST(Sum, ValuesAndShapes) {
  Var<double> x(Tensor<double>::from({2, 3}, {1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(sum(x).shape(), Shape({}));
  EXPECT_EQ(sum(x).item(), 21.0);
  EXPECT_EQ(mean(x).item(), 3.5);
  Var<double> r0 = sum(x, {0});
  EXPECT_EQ(r0.shape(), Shape({3}));
  EXPECT_EQ(r0.value().to_vector(), (std::vector<double>{5, 7, 9}));
  Var<double> r1 = sum(x, {1}, /*keepdim=*/true);
  EXPECT_EQ(r1.shape(), Shape({2, 1}));
  EXPECT_EQ(r1.value().to_vector(), (std::vector<double>{6, 15}));
  Var<double> m1 = mean(x, {-1});
  EXPECT_EQ(m1.shape(), Shape({2}));
  EXPECT_EQ(m1.value().to_vector(), (std::vector<double>{2, 5}));
  Var<double> all = sum(x, {0, 1});
  EXPECT_EQ(all.shape(), Shape({}));
  EXPECT_EQ(all.item(), 21.0);
  EXPECT_EQ(sum(x, {0, 1}, true).shape(), Shape({1, 1}));
  // No axes: nothing reduced (NumPy's axis=()).
  EXPECT_EQ(sum(x, {}).value().to_vector(), x.value().to_vector());
}

TEST(Sum, MiddleAxisOfFourDims) {
  Rng rng(3);
  auto x = randn({2, 3, 4, 5}, rng, false);
  Tensor<double> y = sum(x, {1, 3}).value();
  ASSERT_EQ(y.shape(), Shape({2, 4}));
  for (int a = 0; a < 2; ++a)
    for (int c = 0; c < 4; ++c) {
      double s = 0;
      for (int b = 0; b < 3; ++b)
        for (int d = 0; d < 5; ++d) s += x.value()[((a * 3 + b) * 4 + c) * 5 + d];
      EXPECT_NEAR(y[a * 4 + c], s, 1e-12);
    }
}

TEST(Mean, BackwardSpreadsEvenly) {
  Var<double> x(Tensor<double>({4, 5}), true);
  mean(x).backward();
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_DOUBLE_EQ(x.grad()[i], 1.0 / 20);
  x.zero_grad();
  Var<double> m = mean(x, {0});
  m.backward(Tensor<double>::full({5}, 2.0));
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_DOUBLE_EQ(x.grad()[i], 2.0 / 4);
}

TEST(Reduce, Float32AgreesWithFloat64) {
  Rng rng(4);
  auto x = randn({3, 7, 5}, rng, false);
  Var<float> xf(x.value().to<float>());
  EXPECT_NEAR(sum(xf).item(), sum(x).item(), 1e-5);
  EXPECT_NEAR(mean(xf).item(), mean(x).item(), 1e-6);
  Tensor<double> y = mean(x, {1}).value();
  Tensor<float> yf = mean(xf, {1}).value();
  for (int64_t i = 0; i < y.numel(); ++i) EXPECT_NEAR(yf[i], y[i], 1e-6);
}

TEST(Reduce, Errors) {
  Var<double> x(Tensor<double>({2, 3}));
  EXPECT_EQ(error_of([&] { sum(x, {2}); }), "sum: axis 2 is out of range for shape [2, 3]");
  EXPECT_EQ(error_of([&] {
              mean(x, {0, -2});
            }),
            "mean: axis -2 is repeated in the axes for shape [2, 3]");
}

TEST(Mean, OfNothingIsNaN) {
  Var<double> x(Tensor<double>({0, 3}));
  EXPECT_TRUE(std::isnan(mean(x).item()));
  Tensor<double> m = mean(x, {0}).value();
  ASSERT_EQ(m.shape(), Shape({3}));
  EXPECT_TRUE(std::isnan(m[0]));
  EXPECT_EQ(sum(x, {0}).value().to_vector(), (std::vector<double>{0, 0, 0}));
}

}  // namespace
}  // namespace qkv
