// The packing-free float GEMM of autograd/gemm_kernel.h against a float64 triple loop, in the
// three operand layouts linear() uses and with each initial value of C. Sizes are chosen so that
// every path of the kernel runs: full 6-row bands and every remainder (M = 6·q + 1..5, the last
// 7 or 8 rows as 4 + 3 or 4 + 4), panels of two packets and of one, and a scalar column tail, for
// AVX2 (8 floats) and AVX-512 (16) alike.
#include <cmath>
#include <cstring>

#include "autograd/gemm_kernel.h"
#include "test_util.h"

namespace qkv {
namespace {

using gemm::Init;

/// Operand layout: A(m, k) = a[m·a_m + k·a_k].
struct Layout {
  bool a_transposed;  // false: A row-major [M, K]; true: A stored as [K, M] (dW = Gᵀ·X)
};

struct Case {
  int64_t M, N, K;
};

/// Runs the kernel on random data and checks every element against the float64 sum of the same
/// float inputs, to within the bound of a float sum of K products (γ_K · Σ|terms|, γ_K =
/// K·u/(1−K·u) with u = 2⁻²⁴), doubled for slack. Returns the largest error relative to its bound,
/// so that a caller can also show the bound is tight enough to catch a wrong sum.
double check(const Case& c, bool a_transposed, Init init, uint64_t seed, int64_t drop_k = -1) {
  Rng rng(seed);
  const int64_t M = c.M, N = c.N, K = c.K;
  const int64_t ldb = N + 3, ldc = N + 5;  // strides wider than the rows: the kernel must use them
  Tensor<float> a = testing::randn_tensor<float>({M * K}, rng);
  Tensor<float> b = testing::randn_tensor<float>({K * ldb}, rng);
  Tensor<float> c0 = testing::randn_tensor<float>({M * ldc}, rng);
  Tensor<float> bias = testing::randn_tensor<float>({N}, rng);
  const int64_t a_m = a_transposed ? 1 : K, a_k = a_transposed ? M : 1;
  Tensor<float> out = c0.clone();
  gemm::small_gemm(M, N, K, a.data(), a_m, a_k, b.data(), ldb, out.data(), ldc,
                   init == Init::kBias ? bias.data() : nullptr, init);
  const double u = std::ldexp(1.0, -24), gamma = (K + 1) * u / (1 - (K + 1) * u);
  double worst = 0;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double want = init == Init::kAccumulate ? c0[m * ldc + n]
                    : init == Init::kBias     ? bias[n]
                                              : 0.0;
      double mag = std::abs(want);
      for (int64_t k = 0; k < K; ++k) {
        if (k == drop_k) continue;  // the deliberately wrong reference of the test below
        const double t = double(a[m * a_m + k * a_k]) * double(b[k * ldb + n]);
        want += t;
        mag += std::abs(t);
      }
      const double bound = 2 * gamma * mag + 1e-30;
      worst = std::max(worst, std::abs(out[m * ldc + n] - want) / bound);
    }
  // Padding between rows of C is never written.
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = N; n < ldc; ++n) EXPECT_EQ(out[m * ldc + n], c0[m * ldc + n]) << m << "," << n;
  return worst;
}

const Case kCases[] = {
    {1, 1, 1},
    {5, 7, 3},
    {6, 16, 32},
    {13, 37, 19},
    {17, 64, 32},
    {32, 32, 1024},
    {11, 45, 64},
    {7, 16, 8},
    {8, 24, 9},
    {20, 33, 70},
    {6, 2 * gemm::kPacket + gemm::kPacket + 3, 5},
};

TEST(GemmKernel, RowMajorAMatchesFloat64ForEveryInitialValue) {
  uint64_t seed = 1;
  for (const Case& c : kCases)
    for (Init init : {Init::kZero, Init::kBias, Init::kAccumulate})
      EXPECT_LE(check(c, false, init, seed++), 1.0) << c.M << "x" << c.N << "x" << c.K;
}

TEST(GemmKernel, TransposedAMatchesFloat64ForEveryInitialValue) {
  uint64_t seed = 100;
  for (const Case& c : kCases)
    for (Init init : {Init::kZero, Init::kBias, Init::kAccumulate})
      EXPECT_LE(check(c, true, init, seed++), 1.0) << c.M << "x" << c.N << "x" << c.K;
}

// The bound is tight enough to matter: a reference that leaves out one k is far outside it.
TEST(GemmKernel, TheBoundCatchesASumMissingOneTerm) {
  EXPECT_GT(check({13, 37, 19}, false, Init::kZero, 7, /*drop_k=*/18), 100.0);
  EXPECT_GT(check({13, 37, 19}, true, Init::kAccumulate, 8, /*drop_k=*/0), 100.0);
}

// linear() cuts its rows into blocks wherever it likes because a row's result cannot depend on
// the band it falls in: every M from 1 to 40 in one call, bit for bit the same as row by row.
TEST(GemmKernel, ARowHasTheSameBitsInAnyBand) {
  for (int64_t M = 1; M <= 40; ++M) {  // every split: 6s alone, 6s and 5s, 6s and a remainder
    Rng rng(static_cast<uint64_t>(M));
    const int64_t N = 2 * gemm::kPacket + 3, K = 37;
    Tensor<float> a = testing::randn_tensor<float>({M * K}, rng);
    Tensor<float> b = testing::randn_tensor<float>({K * N}, rng);
    Tensor<float> bias = testing::randn_tensor<float>({N}, rng);
    Tensor<float> whole = Tensor<float>::empty({M * N}), rows = Tensor<float>::empty({M * N});
    gemm::small_gemm(M, N, K, a.data(), K, 1, b.data(), N, whole.data(), N, bias.data(),
                     Init::kBias);
    for (int64_t m = 0; m < M; ++m)
      gemm::small_gemm(1, N, K, a.data() + m * K, K, 1, b.data(), N, rows.data() + m * N, N,
                       bias.data(), Init::kBias);
    EXPECT_EQ(std::memcmp(whole.data(), rows.data(), sizeof(float) * M * N), 0) << "M = " << M;
  }
}

TEST(GemmKernel, ZeroRowsOrColumnsWriteNothing) {
  float c[4] = {1, 2, 3, 4};
  const float a[4] = {5, 6, 7, 8}, b[4] = {9, 10, 11, 12};
  gemm::small_gemm(0, 2, 2, a, 2, 1, b, 2, c, 2, nullptr, Init::kZero);
  gemm::small_gemm(2, 0, 2, a, 2, 1, b, 2, c, 2, nullptr, Init::kZero);
  EXPECT_EQ(c[0], 1);
  EXPECT_EQ(c[3], 4);
}

}  // namespace
}  // namespace qkv
