#include <omp.h>

#include <array>
#include <cstring>

#include "test_threads.h"
#include "test_util.h"

namespace qkv {
namespace {

using testing::randn;

// ---- a naive reference: the triple loop, with the batch axes padded to two and broadcast -------

struct Padded {
  std::array<int64_t, 2> batch{1, 1};
  int64_t rows = 0, cols = 0;
  int64_t index(int64_t o0, int64_t o1, int64_t r, int64_t c) const {
    const int64_t b0 = batch[0] == 1 ? 0 : o0, b1 = batch[1] == 1 ? 0 : o1;
    return ((b0 * batch[1] + b1) * rows + r) * cols + c;
  }
};

Padded pad(const Shape& s) {
  Padded p;
  for (int d = 0; d < s.nd - 2; ++d) p.batch[static_cast<size_t>(2 - (s.nd - 2) + d)] = s[d];
  p.rows = s[-2];
  p.cols = s[-1];
  return p;
}

struct NaiveResult {
  Tensor<double> y, da, db;
};

/// y = a·b by the triple loop, and (given g) the gradients dA = Σ g·bᵀ, dB = Σ aᵀ·g.
NaiveResult naive_matmul(const Tensor<double>& a, const Tensor<double>& b, const Shape& out,
                         const Tensor<double>& g) {
  const Padded pa = pad(a.shape()), pb = pad(b.shape()), po = pad(out);
  NaiveResult r{Tensor<double>(out), Tensor<double>(a.shape()), Tensor<double>(b.shape())};
  const int64_t N = pa.rows, K = pa.cols, M = pb.cols;
  for (int64_t o0 = 0; o0 < po.batch[0]; ++o0)
    for (int64_t o1 = 0; o1 < po.batch[1]; ++o1)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t m = 0; m < M; ++m) {
          const int64_t io = po.index(o0, o1, n, m);
          for (int64_t k = 0; k < K; ++k) {
            const int64_t ia = pa.index(o0, o1, n, k), ib = pb.index(o0, o1, k, m);
            r.y[io] += a[ia] * b[ib];
            if (g.defined()) {
              r.da[ia] += g[io] * b[ib];
              r.db[ib] += a[ia] * g[io];
            }
          }
        }
  return r;
}

void expect_near_all(const Tensor<double>& got, const Tensor<double>& want, double tol,
                     const char* what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  for (int64_t i = 0; i < got.numel(); ++i)
    ASSERT_NEAR(got[i], want[i], tol) << what << " element " << i;
}

/// Forward and backward of matmul against the naive loops, for any operand shapes.
void check_against_naive(const Shape& sa, const Shape& sb, const Shape& expected_out,
                         uint64_t seed) {
  Rng rng(seed);
  auto a = randn(sa, rng), b = randn(sb, rng);
  Var<double> y = matmul(a, b);
  ASSERT_EQ(y.shape(), expected_out);
  Tensor<double> g = randn(expected_out, rng, false).value();
  y.backward(g);
  NaiveResult want = naive_matmul(a.value(), b.value(), expected_out, g);
  expect_near_all(y.value(), want.y, 1e-10, "y");
  expect_near_all(a.grad(), want.da, 1e-10, "dA");
  expect_near_all(b.grad(), want.db, 1e-10, "dB");
}

// ---- matmul gradchecks (float64, default tolerances) -------------------------------------------

TEST(Matmul, Gradcheck2D) {
  Rng rng(1);
  auto a = randn({3, 4}, rng), b = randn({4, 5}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return matmul(a, b); }, {a, b}));
}

TEST(Matmul, GradcheckBatched3D) {
  Rng rng(2);
  auto a = randn({2, 3, 4}, rng), b = randn({2, 4, 5}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return matmul(a, b); }, {a, b}));
}

TEST(Matmul, GradcheckBatched4D) {
  Rng rng(3);
  auto a = randn({2, 2, 3, 4}, rng), b = randn({2, 2, 4, 3}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return matmul(a, b); }, {a, b}));
}

TEST(Matmul, GradcheckBroadcastBatch) {
  Rng rng(4);
  auto a = randn({2, 1, 3, 4}, rng), b = randn({1, 5, 4, 2}, rng);
  EXPECT_EQ(matmul(a, b).shape(), (Shape{2, 5, 3, 2}));
  EXPECT_GRADCHECK(gradcheck([&] { return matmul(a, b); }, {a, b}));
}

TEST(Matmul, Gradcheck3DTimes2D) {
  Rng rng(5);
  auto a = randn({2, 3, 4}, rng), b = randn({4, 5}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return matmul(a, b); }, {a, b}));
}

TEST(Matmul, Gradcheck2DTimes3D) {
  Rng rng(6);
  auto a = randn({3, 4}, rng), b = randn({2, 4, 5}, rng);
  EXPECT_EQ(matmul(a, b).shape(), (Shape{2, 3, 5}));
  EXPECT_GRADCHECK(gradcheck([&] { return matmul(a, b); }, {a, b}));
}

TEST(Matmul, GradcheckSameOperandTwice) {
  Rng rng(7);
  auto a = randn({4, 4}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return matmul(a, a); }, {a}));
}

// ---- matmul properties -------------------------------------------------------------------------

TEST(Matmul, MatchesNaiveTripleLoopSmall) {
  check_against_naive({3, 4}, {4, 5}, {3, 5}, 10);
  check_against_naive({2, 3, 4}, {2, 4, 5}, {2, 3, 5}, 11);
  check_against_naive({2, 1, 3, 4}, {1, 5, 4, 2}, {2, 5, 3, 2}, 12);
  check_against_naive({3, 2, 4}, {4, 6}, {3, 2, 6}, 13);
  check_against_naive({3, 4}, {2, 2, 4, 5}, {2, 2, 3, 5}, 14);
  check_against_naive({2, 3, 4}, {1, 4, 5}, {2, 3, 5}, 15);
}

// Sizes large enough (millions of multiply-adds) that the work is cut into blocks and run on
// several threads.
TEST(Matmul, MatchesNaiveTripleLoopLarge) {
  check_against_naive({150, 200}, {200, 150}, {150, 150}, 20);
  check_against_naive({3, 160, 100}, {100, 100}, {3, 160, 100}, 21);
  check_against_naive({2, 1, 100, 60}, {1, 3, 60, 120}, {2, 3, 100, 120}, 22);
  check_against_naive({128, 80}, {2, 80, 256}, {2, 128, 256}, 23);
  check_against_naive({2, 2, 96, 64}, {2, 2, 64, 192}, {2, 2, 96, 192}, 24);
}

TEST(Matmul, Float32AgreesWithFloat64) {
  Rng rng(30);
  auto a = randn({2, 3, 20, 16}, rng, false), b = randn({3, 16, 12}, rng, false);
  Tensor<double> y64 = matmul(a, b).value();
  Tensor<float> y32 =
      matmul(Var<float>(a.value().to<float>()), Var<float>(b.value().to<float>())).value();
  ASSERT_EQ(y32.shape(), y64.shape());
  for (int64_t i = 0; i < y64.numel(); ++i) EXPECT_NEAR(y32[i], y64[i], 1e-5 * 16) << i;
}

TEST(Matmul, OnlyTheInputThatRequiresGradGetsAGradient) {
  Rng rng(31);
  auto a = randn({3, 4}, rng, false), b = randn({4, 2}, rng);
  matmul(a, b).backward(Tensor<double>::full({3, 2}, 1.0));
  EXPECT_FALSE(a.grad().defined());
  EXPECT_TRUE(b.grad().defined());
}

// ---- matmul errors -----------------------------------------------------------------------------

using testing::error_of;

TEST(Matmul, InnerDimensionMismatchNamesBothShapes) {
  Var<double> a(Tensor<double>({2, 3})), b(Tensor<double>({4, 5}));
  EXPECT_EQ(error_of([&] { matmul(a, b); }), "matmul: inner dimensions differ: [2, 3] · [4, 5]");
}

TEST(Matmul, BatchThatDoesNotBroadcastIsAnError) {
  Var<double> a(Tensor<double>({2, 3, 4})), b(Tensor<double>({3, 4, 5}));
  EXPECT_EQ(error_of([&] { matmul(a, b); }),
            "matmul: batch dimensions do not broadcast: [2, 3, 4] · [3, 4, 5]");
}

TEST(Matmul, OneDimensionalOperandIsAnError) {
  Var<double> a(Tensor<double>({3})), b(Tensor<double>({3, 5}));
  EXPECT_EQ(error_of([&] { matmul(a, b); }),
            "matmul: needs operands of at least 2 dimensions, got [3] · [3, 5]");
}

// ---- linear ------------------------------------------------------------------------------------

TEST(Linear, GradcheckWithBias2D) {
  Rng rng(40);
  auto x = randn({3, 4}, rng), W = randn({5, 4}, rng), b = randn({5}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return linear(x, W, b); }, {x, W, b}));
}

TEST(Linear, GradcheckWithoutBias2D) {
  Rng rng(41);
  auto x = randn({3, 4}, rng), W = randn({5, 4}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return linear(x, W, Var<double>()); }, {x, W}));
}

TEST(Linear, GradcheckWithBias3D) {
  Rng rng(42);
  auto x = randn({2, 3, 4}, rng), W = randn({3, 4}, rng), b = randn({3}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return linear(x, W, b); }, {x, W, b}));
}

TEST(Linear, GradcheckWithoutBias3D) {
  Rng rng(43);
  auto x = randn({2, 3, 4}, rng), W = randn({6, 4}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return linear(x, W, Var<double>()); }, {x, W}));
}

// linear's backward writes dX (=) when no gradient has reached x yet and adds to it otherwise:
// x feeding two layers (the second backward adds to the first's dX), and x as its own weight
// (dX written first, then dW added to the same buffer).
TEST(Linear, GradcheckInputSharedByTwoLayersAndAsItsOwnWeight) {
  Rng rng(50);
  auto x = randn({4, 4}, rng), W1 = randn({3, 4}, rng), W2 = randn({5, 4}, rng),
       b = randn({4}, rng);
  EXPECT_GRADCHECK(gradcheck(
      [&] {
        return add(sum(mul(linear(x, W1, Var<double>()), linear(x, W1, Var<double>()))),
                   sum(linear(x, W2, Var<double>())));
      },
      {x, W1, W2}));
  EXPECT_GRADCHECK(gradcheck([&] { return linear(x, x, b); }, {x, b}));
}

/// linear against loops: y = x·Wᵀ + b, dX = G·W, dW = Gᵀ·X, db = Σ G.
void check_linear_against_naive(int64_t R, int64_t in, int64_t out, uint64_t seed) {
  Rng rng(seed);
  auto x = randn({R, in}, rng), W = randn({out, in}, rng), b = randn({out}, rng);
  Var<double> y = linear(x, W, b);
  Tensor<double> g = randn({R, out}, rng, false).value();
  y.backward(g);
  Tensor<double> wy({R, out}), dx({R, in}), dw({out, in}), db({out});
  for (int64_t r = 0; r < R; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = b.value()[o];
      for (int64_t i = 0; i < in; ++i) {
        s += x.value()[r * in + i] * W.value()[o * in + i];
        dx[r * in + i] += g[r * out + o] * W.value()[o * in + i];
        dw[o * in + i] += g[r * out + o] * x.value()[r * in + i];
      }
      wy[r * out + o] = s;
      db[o] += g[r * out + o];
    }
  expect_near_all(y.value(), wy, 1e-10, "y");
  expect_near_all(x.grad(), dx, 1e-10, "dX");
  expect_near_all(W.grad(), dw, 1e-10, "dW");
  expect_near_all(b.grad(), db, 1e-10, "db");
}

TEST(Linear, MatchesNaiveLoops) {
  check_linear_against_naive(3, 4, 5, 44);
  check_linear_against_naive(100, 70, 50, 45);
  check_linear_against_naive(601, 90, 80, 46);  // millions of multiply-adds: uneven parallel blocks
}

TEST(Linear, Float32AgreesWithFloat64) {
  Rng rng(47);
  auto x = randn({4, 8, 32}, rng, false), W = randn({24, 32}, rng, false),
       b = randn({24}, rng, false);
  Tensor<double> y64 = linear(x, W, b).value();
  Tensor<float> y32 = linear(Var<float>(x.value().to<float>()), Var<float>(W.value().to<float>()),
                             Var<float>(b.value().to<float>()))
                          .value();
  ASSERT_EQ(y32.shape(), (Shape{4, 8, 24}));
  for (int64_t i = 0; i < y64.numel(); ++i) EXPECT_NEAR(y32[i], y64[i], 1e-5 * 32) << i;
}

// Float32 weights of at most 64 × 64 elements run on the packing-free kernel (gemm_kernel.h), in
// the forward and in both backward products: all of them against float64, with row counts and
// widths that leave remainders everywhere, with and without bias.
TEST(Linear, SmallWeightFloat32AgreesWithFloat64ForwardAndBackward) {
  struct Shapes {
    Shape x;
    int64_t out;
    bool bias;
  };
  for (const Shapes& c : {Shapes{{257, 37}, 45, true}, Shapes{{3, 50, 32}, 64, false},
                          Shapes{{5, 1}, 3, true}, Shapes{{2, 512, 64}, 32, true}}) {
    Rng rng(49);
    const int64_t in = c.x[-1];
    auto x = randn(c.x, rng), W = randn({c.out, in}, rng), b = randn({c.out}, rng);
    Var<double> b64 = c.bias ? b : Var<double>();
    Var<double> y64 = linear(x, W, b64);
    Tensor<double> g = randn(y64.shape(), rng, false).value();
    y64.backward(g);
    Var<float> x32(x.value().to<float>(), true), W32(W.value().to<float>(), true),
        b32 = c.bias ? Var<float>(b.value().to<float>(), true) : Var<float>();
    Var<float> y32 = linear(x32, W32, b32);
    y32.backward(g.to<float>());
    // Each element is a float sum of (R or in or out) products of N(0, 1) numbers; 1e-5 per term.
    const int64_t R = x.numel() / in;
    auto expect_close = [](const Tensor<float>& got, const Tensor<double>& want, double tol,
                           const char* what) {
      ASSERT_EQ(got.shape(), want.shape()) << what;
      for (int64_t i = 0; i < got.numel(); ++i)
        ASSERT_NEAR(got[i], want[i], tol) << what << " element " << i;
    };
    expect_close(y32.value(), y64.value(), 1e-5 * (in + 1), "y");
    expect_close(x32.grad(), x.grad(), 1e-5 * c.out, "dX");
    expect_close(W32.grad(), W.grad(), 1e-5 * R, "dW");
    if (c.bias) expect_close(b32.grad(), b.grad(), 1e-5 * R, "db");
  }
}

struct LinearRun {
  Tensor<float> y, dx, dw, db;
};

/// One float32 forward + backward of a training-sized linear layer, fresh leaves each time: a
/// weight of [128, 96] goes to Eigen's GEMM, one of [32, 32] to the small kernel; 4104 rows make
/// either millions of multiply-adds, so the work runs in parallel blocks.
LinearRun run_linear_once(int64_t out = 128, int64_t in = 96) {
  Rng rng(48);
  auto make = [&](const Shape& s) { return testing::randn<float>(s, rng); };
  Var<float> x = make({8, 513, in}), W = make({out, in}), b = make({out});
  Var<float> y = linear(x, W, b);
  Tensor<float> g = testing::randn_tensor<float>(y.shape(), rng);
  y.backward(g);
  return {y.value().clone(), x.grad().clone(), W.grad().clone(), b.grad().clone()};
}

using testing::expect_bitwise_equal;

TEST(Linear, ForwardAndBackwardAreBitwiseDeterministic) {
  LinearRun first = run_linear_once(), second = run_linear_once();
  expect_bitwise_equal(first.y, second.y, "y");
  expect_bitwise_equal(first.dx, second.dx, "dX");
  expect_bitwise_equal(first.dw, second.dw, "dW");
  expect_bitwise_equal(first.db, second.db, "db");
}

TEST(Linear, ResultDoesNotDependOnTheThreadCount) {
  test::ScopedThreads threads(1);
  for (const auto& [out, in] : {std::pair<int64_t, int64_t>{128, 96}, {32, 32}}) {
    threads.set(1);
    LinearRun one = run_linear_once(out, in);
    threads.set(std::max(2, threads.before()));
    LinearRun many = run_linear_once(out, in);
    expect_bitwise_equal(one.y, many.y, "y");
    expect_bitwise_equal(one.dx, many.dx, "dX");
    expect_bitwise_equal(one.dw, many.dw, "dW");
    expect_bitwise_equal(one.db, many.db, "db");
  }
}

TEST(Linear, InputFeaturesMismatchIsAnError) {
  Var<double> x(Tensor<double>({2, 5})), W(Tensor<double>({4, 3}));
  EXPECT_EQ(error_of([&] { linear(x, W, Var<double>()); }),
            "linear: input [2, 5] does not match weight [4, 3] (in = 3)");
}

TEST(Linear, BiasMismatchIsAnError) {
  Var<double> x(Tensor<double>({2, 3})), W(Tensor<double>({4, 3})), b(Tensor<double>({5}));
  EXPECT_EQ(error_of([&] { linear(x, W, b); }),
            "linear: bias [5] does not match weight [4, 3] (out = 4)");
}

TEST(Linear, WeightMustBe2D) {
  Var<double> x(Tensor<double>({2, 3})), W(Tensor<double>({4, 3, 1}));
  EXPECT_EQ(error_of([&] { linear(x, W, Var<double>()); }),
            "linear: weight must be [out, in], got [4, 3, 1]");
}

}  // namespace
}  // namespace qkv
