#include <cmath>
#include <limits>
#include <vector>

#include "autograd/kernels.h"
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

// The float kernel against std::exp: rows of 1, 7, 16 and 33 entries (one block, part of one,
// exactly one, two and a part), some entries −inf, one row all −inf, logits spread over ±40 so
// some exponents fall below float's normal range. The reference takes d = x − max as the kernel
// rounds it (float) and exponentiates and sums in double: what is left is exp's, the sum's and
// the scaling's rounding, a few ulp. A row gives the same bits wherever it starts in memory.
TEST(Softmax, RowsKernelMatchesStdExpWithinAFewUlp) {
  const float ninf = -std::numeric_limits<float>::infinity();
  Rng rng(11);
  for (const int64_t n : {1, 7, 16, 33}) {
    const int64_t rows = 6;
    std::vector<float> x(static_cast<size_t>(rows * n));
    for (float& v : x) v = static_cast<float>(15 * rng.normal());
    for (int64_t j = 0; j < n; ++j) x[static_cast<size_t>(n + j)] = ninf;  // row 1: all −inf
    for (int64_t j = 0; j < n; j += 3) x[static_cast<size_t>(2 * n + j)] = ninf;
    x[static_cast<size_t>(3 * n)] = 40.0f;  // row 3: one entry dominates, the rest underflow
    if (n > 1) x[static_cast<size_t>(3 * n + 1)] = -60.0f;
    std::vector<float> y(x.size());
    softmax_rows(x.data(), y.data(), rows, n);
    for (int64_t r = 0; r < rows; ++r) {
      const float* xi = x.data() + r * n;
      const float* yi = y.data() + r * n;
      float m = ninf;
      for (int64_t j = 0; j < n; ++j) m = std::max(m, xi[j]);
      std::vector<double> e(static_cast<size_t>(n), 0.0);
      double z = 0;
      for (int64_t j = 0; j < n && m != ninf; ++j) z += e[j] = std::exp(double(xi[j] - m));
      for (int64_t j = 0; j < n; ++j) {
        if (xi[j] == ninf) {
          EXPECT_EQ(yi[j], 0.0f) << "n " << n << " row " << r << " entry " << j << " is −inf";
          continue;
        }
        const double ref = e[j] / z;
        EXPECT_LE(std::abs(yi[j] - ref), 4 * 0x1p-24 * ref + std::numeric_limits<float>::min())
            << "n " << n << " row " << r << " entry " << j << ": " << yi[j] << " vs " << ref;
      }
    }
    // Shifted by one float (another alignment) and in place: the same bits.
    std::vector<float> shifted(x.size() + 1);
    std::copy(x.begin(), x.end(), shifted.begin() + 1);
    softmax_rows(shifted.data() + 1, shifted.data() + 1, rows, n);
    for (size_t i = 0; i < y.size(); ++i)
      EXPECT_EQ(std::memcmp(&y[i], &shifted[i + 1], sizeof(float)), 0) << "n " << n << " at " << i;
  }
}

TEST(Softmax, RowsKernelFloat64MatchesStdExp) {
  Rng rng(12);
  const int64_t rows = 3, n = 21;
  std::vector<double> x(rows * n), y(x.size());
  for (double& v : x) v = 10 * rng.normal();
  x[5] = -std::numeric_limits<double>::infinity();
  softmax_rows(x.data(), y.data(), rows, n);
  for (int64_t r = 0; r < rows; ++r) {
    double m = x[r * n], z = 0;
    for (int64_t j = 0; j < n; ++j) m = std::max(m, x[r * n + j]);
    for (int64_t j = 0; j < n; ++j) z += std::exp(x[r * n + j] - m);
    for (int64_t j = 0; j < n; ++j) {
      const double ref = std::exp(x[r * n + j] - m) / z;
      EXPECT_NEAR(y[r * n + j], ref, 1e-15 * ref) << "row " << r << " entry " << j;
    }
  }
  EXPECT_EQ(y[5], 0.0);
}

TEST(Softmax, ZeroDimensionalInputIsRejected) {
  Var<double> x(Tensor<double>::scalar(1.0), true);
  EXPECT_THROW(softmax(x), Error);
}

}  // namespace
}  // namespace qkv
