#include "test_util.h"

namespace qkv {
namespace {

using testing::randn;

using testing::error_of;

// ---- embedding ---------------------------------------------------------------------------------

TEST(Embedding, GradcheckWithRepeatedIds) {
  Rng rng(1);
  auto W = randn({6, 4}, rng);
  IndexTensor ids({2, 3}, {1, 4, 1, 0, 1, 5});
  EXPECT_GRADCHECK(gradcheck([&] { return embedding(W, ids); }, {W}));
}

TEST(Embedding, LooksUpRows) {
  Rng rng(2);
  auto W = randn({5, 3}, rng, false);
  IndexTensor ids({2, 2}, {4, 0, 2, 4});
  Var<double> y = embedding(W, ids);
  ASSERT_EQ(y.shape(), (Shape{2, 2, 3}));
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(y.value()[i * 3 + c], W.value()[ids[i] * 3 + c]);
}

TEST(Embedding, RepeatedIdGradientIsTheSumOfItsRows) {
  Rng rng(3);
  auto W = randn({4, 3}, rng);
  IndexTensor ids({5}, {2, 0, 2, 3, 2});
  Var<double> y = embedding(W, ids);
  Tensor<double> g = randn({5, 3}, rng, false).value();
  y.backward(g);
  for (int64_t c = 0; c < 3; ++c) {
    EXPECT_DOUBLE_EQ(W.grad()[2 * 3 + c], g[0 * 3 + c] + g[2 * 3 + c] + g[4 * 3 + c]);
    EXPECT_EQ(W.grad()[0 * 3 + c], g[1 * 3 + c]);
    EXPECT_EQ(W.grad()[3 * 3 + c], g[3 * 3 + c]);
    EXPECT_EQ(W.grad()[1 * 3 + c], 0.0);  // never looked up
  }
}

TEST(Embedding, ThreeDimensionalIdsGiveFourDimensionalOutput) {
  Rng rng(4);
  auto W = randn({3, 2}, rng);
  IndexTensor ids({2, 2, 2}, {0, 1, 2, 0, 1, 1, 2, 2});
  EXPECT_EQ(embedding(W, ids).shape(), (Shape{2, 2, 2, 2}));
  EXPECT_GRADCHECK(gradcheck([&] { return embedding(W, ids); }, {W}));
}

TEST(Embedding, Float32AgreesWithFloat64) {
  Rng rng(5);
  auto W = randn({8, 5}, rng, false);
  IndexTensor ids({3}, {7, 0, 7});
  Tensor<double> y64 = embedding(W, ids).value();
  Tensor<float> y32 = embedding(Var<float>(W.value().to<float>()), ids).value();
  for (int64_t i = 0; i < y64.numel(); ++i) EXPECT_EQ(y32[i], static_cast<float>(y64[i]));
}

TEST(Embedding, IdOutOfRangeIsAnError) {
  Var<double> W(Tensor<double>({64, 4}));
  IndexTensor ids({3}, {1, 70, 2});
  EXPECT_EQ(error_of([&] { embedding(W, ids); }),
            "embedding: id 70 is out of range for a vocabulary of 64");
  IndexTensor negative({1}, std::vector<int32_t>{-1});
  EXPECT_EQ(error_of([&] { embedding(W, negative); }),
            "embedding: id -1 is out of range for a vocabulary of 64");
}

TEST(Embedding, WeightMustBe2D) {
  Var<double> W(Tensor<double>({64}));
  EXPECT_EQ(error_of([&] { embedding(W, IndexTensor({1}, std::vector<int32_t>{0})); }),
            "embedding: weight must be [V, C], got [64]");
}

// ---- dropout -----------------------------------------------------------------------------------

TEST(Dropout, GradcheckWithAFixedSeed) {
  Rng rng(10);
  auto x = randn({4, 5}, rng);
  // A fresh Rng inside f: every call draws the same mask.
  EXPECT_GRADCHECK(gradcheck(
      [&] {
        Rng r(99);
        return dropout(x, 0.3, /*training=*/true, r);
      },
      {x}));
}

TEST(Dropout, EvalModeAndZeroPAreTheIdentity) {
  Rng rng(11);
  auto x = randn({3, 4}, rng);
  const Rng::State before = rng.state();
  EXPECT_EQ(dropout(x, 0.5, /*training=*/false, rng).node(), x.node());
  EXPECT_EQ(dropout(x, 0.0, /*training=*/true, rng).node(), x.node());
  EXPECT_EQ(rng.state(), before);  // nothing drawn
}

TEST(Dropout, TrainingZeroesAboutPAndScalesTheRest) {
  Rng rng(12);
  const double p = 0.25;
  Var<float> x(Tensor<float>::full({200, 100}, 1.0f), true);
  Var<float> y = dropout(x, p, /*training=*/true, rng);
  int64_t zeros = 0;
  for (float v : y.value()) {
    if (v == 0) {
      ++zeros;
    } else {
      EXPECT_FLOAT_EQ(v, static_cast<float>(1 / (1 - p)));
    }
  }
  EXPECT_NEAR(static_cast<double>(zeros) / 20000.0, p, 0.015);
  // The gradient is the mask: 0 where dropped, 1/(1-p) where kept.
  y.backward(Tensor<float>::full({200, 100}, 1.0f));
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_EQ(x.grad()[i], y.value()[i]);
}

TEST(Dropout, MaskIsAFunctionOfTheRngState) {
  Rng rng(13);
  auto x = randn({10, 10}, rng, false);
  Rng a(5), b(5);
  Tensor<double> ya = dropout(x, 0.5, true, a).value(), yb = dropout(x, 0.5, true, b).value();
  for (int64_t i = 0; i < ya.numel(); ++i) EXPECT_EQ(ya[i], yb[i]);
  EXPECT_EQ(a.state(), b.state());
  Tensor<double> next = dropout(x, 0.5, true, a).value();  // the stream moved on
  int64_t differ = 0;
  for (int64_t i = 0; i < ya.numel(); ++i) differ += next[i] != ya[i];
  EXPECT_GT(differ, 0);
}

TEST(Dropout, Float32AgreesWithFloat64) {
  Rng rng(14);
  auto x = randn({6, 7}, rng, false);
  Rng a(3), b(3);
  Tensor<double> y64 = dropout(x, 0.4, true, a).value();
  Tensor<float> y32 = dropout(Var<float>(x.value().to<float>()), 0.4, true, b).value();
  for (int64_t i = 0; i < y64.numel(); ++i) EXPECT_NEAR(y32[i], y64[i], 1e-6 * 4) << i;
}

TEST(Dropout, POutsideZeroToOneIsAnError) {
  Rng rng(15);
  Var<double> x(Tensor<double>({2, 2}));
  EXPECT_EQ(error_of([&] { dropout(x, 1.0, true, rng); }), "dropout: p must be in [0, 1), got 1");
  EXPECT_EQ(error_of([&] { dropout(x, -0.1, false, rng); }),
            "dropout: p must be in [0, 1), got -0.1");
}

}  // namespace
}  // namespace qkv
