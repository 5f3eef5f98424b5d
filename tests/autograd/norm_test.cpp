#include <omp.h>

#include <cmath>
#include <cstring>

#include "test_threads.h"
#include "test_util.h"

namespace qkv {
namespace {

using testing::randn;

using testing::error_of;

TEST(LayerNorm, GradcheckInputWeightBias) {
  Rng rng(1);
  auto x = randn({2, 3, 5}, rng), w = randn({5}, rng), b = randn({5}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return layer_norm(x, w, b); }, {x, w, b}));
}

TEST(LayerNorm, AddsToAGradientAnotherOpWroteFirst) {
  // dx is written outright when layer_norm is x's only reader, and added to otherwise: x here is
  // an intermediate that a product reads too, in either order of the two terms.
  Rng rng(2);
  auto x = randn({3, 5}, rng), w = randn({5}, rng), b = randn({5}, rng);
  EXPECT_GRADCHECK(gradcheck(
      [&] {
        const Var<double> h = x * 1.5;
        return layer_norm(h, w, b) + h * h;
      },
      {x, w, b}));
  EXPECT_GRADCHECK(gradcheck(
      [&] {
        const Var<double> h = x * 1.5;
        return h * h + layer_norm(h, w, b);
      },
      {x, w, b}));
}

TEST(LayerNorm, Gradcheck2DLargeEps) {
  Rng rng(2);
  auto x = randn({4, 6}, rng), w = randn({6}, rng), b = randn({6}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return layer_norm(x, w, b, 0.1); }, {x, w, b}));
}

TEST(LayerNorm, GradcheckWithoutAffine) {
  Rng rng(3);
  auto x = randn({3, 4}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return layer_norm(x, Var<double>(), Var<double>()); }, {x}));
}

TEST(LayerNorm, GradcheckWeightOnlyAndBiasOnly) {
  Rng rng(4);
  auto x = randn({3, 4}, rng), w = randn({4}, rng), b = randn({4}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return layer_norm(x, w, Var<double>()); }, {x, w}));
  EXPECT_GRADCHECK(gradcheck([&] { return layer_norm(x, Var<double>(), b); }, {x, b}));
}

TEST(LayerNorm, RowsHaveZeroMeanAndUnitVariance) {
  Rng rng(5);
  auto x = randn({6, 32}, rng, false);
  for (double& v : x.value()) v = 3 * v + 7;
  Tensor<double> y = layer_norm(x, Var<double>(), Var<double>(), 0.0).value();
  for (int r = 0; r < 6; ++r) {
    double m = 0, v = 0;
    for (int j = 0; j < 32; ++j) m += y[r * 32 + j] / 32;
    for (int j = 0; j < 32; ++j) v += (y[r * 32 + j] - m) * (y[r * 32 + j] - m) / 32;
    EXPECT_NEAR(m, 0.0, 1e-12) << "row " << r;
    EXPECT_NEAR(v, 1.0, 1e-12) << "row " << r;
  }
}

/// layer_norm against loops written from the definition (and the textbook backward), on a shape
/// large enough to run in parallel blocks.
TEST(LayerNorm, MatchesNaiveLoopsLarge) {
  const int64_t R = 300, C = 257;
  Rng rng(6);
  auto x = randn({3, 100, C}, rng), w = randn({C}, rng), b = randn({C}, rng);
  Var<double> y = layer_norm(x, w, b);
  Tensor<double> g = randn({3, 100, C}, rng, false).value();
  y.backward(g);
  Tensor<double> dw({C}), db({C});
  for (int64_t r = 0; r < R; ++r) {
    const double* xr = x.value().data() + r * C;
    const double* gr = g.data() + r * C;
    double mu = 0, var = 0;
    for (int64_t j = 0; j < C; ++j) mu += xr[j] / C;
    for (int64_t j = 0; j < C; ++j) var += (xr[j] - mu) * (xr[j] - mu) / C;
    const double rs = 1 / std::sqrt(var + 1e-5);
    double m1 = 0, m2 = 0;
    for (int64_t j = 0; j < C; ++j) {
      const double xh = (xr[j] - mu) * rs;
      ASSERT_NEAR(y.value()[r * C + j], xh * w.value()[j] + b.value()[j], 1e-12);
      dw[j] += gr[j] * xh;
      db[j] += gr[j];
      m1 += gr[j] * w.value()[j] / C;
      m2 += gr[j] * w.value()[j] * xh / C;
    }
    for (int64_t j = 0; j < C; ++j) {
      const double xh = (xr[j] - mu) * rs;
      ASSERT_NEAR(x.grad()[r * C + j], rs * (gr[j] * w.value()[j] - m1 - xh * m2), 1e-10);
    }
  }
  for (int64_t j = 0; j < C; ++j) {
    EXPECT_NEAR(w.grad()[j], dw[j], 1e-10);
    EXPECT_NEAR(b.grad()[j], db[j], 1e-10);
  }
}

TEST(LayerNorm, Float32AgreesWithFloat64) {
  Rng rng(7);
  auto x = randn({4, 5, 48}, rng, false), w = randn({48}, rng, false), b = randn({48}, rng, false);
  Tensor<double> y64 = layer_norm(x, w, b).value();
  Tensor<float> y32 =
      layer_norm(Var<float>(x.value().to<float>()), Var<float>(w.value().to<float>()),
                 Var<float>(b.value().to<float>()))
          .value();
  for (int64_t i = 0; i < y64.numel(); ++i) EXPECT_NEAR(y32[i], y64[i], 1e-5) << i;
}

TEST(LayerNorm, ConstantRowGivesBiasAndFiniteGradient) {
  Var<double> x(Tensor<double>::full({2, 4}, 3.0), true);
  Var<double> w(Tensor<double>::full({4}, 2.0), true), b(Tensor<double>::full({4}, 0.5), true);
  Var<double> y = layer_norm(x, w, b);
  for (double v : y.value()) EXPECT_EQ(v, 0.5);
  y.backward(Tensor<double>::full({2, 4}, 1.0));
  EXPECT_TRUE(x.grad().all_finite());
  EXPECT_TRUE(w.grad().all_finite());
}

struct NormRun {
  Tensor<float> y, dx, dw, db;
};

NormRun run_norm_once() {
  Rng rng(8);
  auto make = [&](const Shape& s) { return testing::randn<float>(s, rng); };
  Var<float> x = make({8, 64, 256}), w = make({256}), b = make({256});
  Var<float> y = layer_norm(x, w, b);
  Tensor<float> g = testing::randn_tensor<float>(y.shape(), rng);
  y.backward(g);
  return {y.value().clone(), x.grad().clone(), w.grad().clone(), b.grad().clone()};
}

using testing::expect_bitwise_equal;

TEST(LayerNorm, ResultDoesNotDependOnTheThreadCount) {
  test::ScopedThreads threads(1);
  NormRun one = run_norm_once();
  threads.set(std::max(2, threads.before()));
  NormRun many = run_norm_once(), again = run_norm_once();
  for (const NormRun* r : {&many, &again}) {
    expect_bitwise_equal(one.y, r->y, "y");
    expect_bitwise_equal(one.dx, r->dx, "dx");
    expect_bitwise_equal(one.dw, r->dw, "dweight");
    expect_bitwise_equal(one.db, r->db, "dbias");
  }
}

TEST(LayerNorm, WeightShapeMismatchIsAnError) {
  Var<double> x(Tensor<double>({2, 4})), w(Tensor<double>({5})), b(Tensor<double>({4}));
  EXPECT_EQ(error_of([&] { layer_norm(x, w, b); }),
            "layer_norm: weight [5] does not match input [2, 4] (C = 4)");
}

TEST(LayerNorm, BiasShapeMismatchIsAnError) {
  Var<double> x(Tensor<double>({2, 4})), w(Tensor<double>({4})), b(Tensor<double>({4, 1}));
  EXPECT_EQ(error_of([&] { layer_norm(x, w, b); }),
            "layer_norm: bias [4, 1] does not match input [2, 4] (C = 4)");
}

TEST(LayerNorm, NegativeEpsIsAnError) {
  Var<double> x(Tensor<double>({2, 4}));
  EXPECT_EQ(error_of([&] { layer_norm(x, Var<double>(), Var<double>(), -1.0); }),
            "layer_norm: eps must be finite and >= 0, got -1");
}

}  // namespace
}  // namespace qkv
