#include "train/clip.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace qkv {
namespace {

Var<float> with_grad(const std::vector<float>& g) {
  const Shape s{static_cast<int64_t>(g.size())};
  Var<float> v(Tensor<float>::zeros(s), true);
  v.grad() = Tensor<float>::from(s, g);
  return v;
}

TEST(Clip, ReturnsTheGlobalNormAndScalesToMaxNorm) {
  OptimParams<float> ps{{"a", with_grad({3, 4})}, {"b", with_grad({12})}};
  EXPECT_DOUBLE_EQ(grad_norm(ps), 13.0);
  const double norm = clip_grad_norm(ps, 6.5);
  EXPECT_DOUBLE_EQ(norm, 13.0);  // the norm before clipping, as PyTorch
  const double coef = 6.5 / (13.0 + 1e-6);
  EXPECT_FLOAT_EQ(ps[0].second.grad()[0], static_cast<float>(3 * coef));
  EXPECT_FLOAT_EQ(ps[0].second.grad()[1], static_cast<float>(4 * coef));
  EXPECT_FLOAT_EQ(ps[1].second.grad()[0], static_cast<float>(12 * coef));
  EXPECT_NEAR(grad_norm(ps), 6.5, 1e-5);
}

TEST(Clip, LeavesSmallNormsAndDisabledClippingAlone) {
  OptimParams<float> ps{{"a", with_grad({3, 4})}, {"b", with_grad({12})}};
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 100.0), 13.0);
  EXPECT_EQ(ps[0].second.grad()[0], 3.f);
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 0.0), 13.0);  // max_norm <= 0 disables
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, -1.0), 13.0);
  EXPECT_EQ(ps[1].second.grad()[0], 12.f);
}

TEST(Clip, IgnoresUndefinedGradientsAndTakesPlainVars) {
  Var<float> none(Tensor<float>::zeros({2}), true);
  OptimParams<float> ps{{"none", none}, {"a", with_grad({3, 4})}};
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 1.0), 5.0);
  EXPECT_FALSE(none.grad().defined());
  std::vector<Var<float>> vars{with_grad({0, 5}), with_grad({12})};
  EXPECT_DOUBLE_EQ(clip_grad_norm(vars, 1.0), 13.0);
  EXPECT_NEAR(vars[1].grad()[0], 12.0 / 13.0, 1e-6);
}

TEST(Clip, NonFiniteNormLeavesGradientsUntouched) {
  const float inf = std::numeric_limits<float>::infinity();
  OptimParams<float> ps{{"a", with_grad({1, 2})}, {"b", with_grad({inf})}};
  EXPECT_TRUE(std::isinf(clip_grad_norm(ps, 1.0)));
  EXPECT_EQ(ps[0].second.grad()[1], 2.f);
}

TEST(Clip, FindsTheFirstNonFiniteGradient) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  Var<float> none(Tensor<float>::zeros({2}), true);
  OptimParams<float> ok{{"none", none}, {"a", with_grad({1, 2})}};
  EXPECT_EQ(first_nonfinite_grad(ok), std::nullopt);
  OptimParams<float> bad{{"a", with_grad({1, 2})},
                         {"blocks.0.attn.W_Q.weight", with_grad({0, nan})},
                         {"head.weight", with_grad({-inf})}};
  EXPECT_EQ(first_nonfinite_grad(bad), std::optional<std::string>("blocks.0.attn.W_Q.weight"));
  EXPECT_TRUE(std::isnan(grad_norm(bad)));
}

}  // namespace
}  // namespace qkv
