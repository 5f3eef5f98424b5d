#include <omp.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>

#include "autograd/kernels.h"
#include "test_threads.h"
#include "test_util.h"

// Counts every global operator new, for the steady-state allocation test at the end.
static std::atomic<long> g_heap_allocs{0};
void* operator new(size_t n) {
  ++g_heap_allocs;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
// GCC sees free() meet a pointer from operator new once inlined; they match here by construction.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  std::free(p);
}
#pragma GCC diagnostic pop

namespace qkv {
namespace {

using testing::error_of;
using testing::randn;

const double kInf = std::numeric_limits<double>::infinity();

/// A float64 leaf with values in [lo, lo + 1 + |normal|): strictly positive when lo > 0.
Var<double> positive(const Shape& shape, Rng& rng, double lo = 0.5) {
  Tensor<double> t = Tensor<double>::empty(shape);
  for (double& x : t) x = lo + std::abs(rng.normal());
  return Var<double>(t, true);
}

/// Row-major flat index of `idx` (aligned at the right of `out`) in `in`, broadcasting size-1 axes.
int64_t bcast_index(const Shape& in, const Shape& out, const std::array<int64_t, 4>& idx) {
  int64_t flat = 0;
  for (int i = 0; i < in.nd; ++i) {
    const int oi = i + out.nd - in.nd;
    flat = flat * in[i] + (in[i] == 1 ? 0 : idx[static_cast<size_t>(oi)]);
  }
  return flat;
}

/// Multi-index of flat element f of shape s.
std::array<int64_t, 4> unflatten(const Shape& s, int64_t f) {
  std::array<int64_t, 4> idx{};
  for (int i = s.nd - 1; i >= 0; --i) {
    idx[static_cast<size_t>(i)] = f % s[i];
    f /= s[i];
  }
  return idx;
}

// ---- gradchecks: binary ops, same shape and broadcasting --------------------------------------

struct BinaryCase {
  Shape a, b;
};

const BinaryCase kBinaryCases[] = {
    {{2, 3}, {2, 3}},
    {{2, 3}, {3}},
    {{3}, {2, 3}},
    {{2, 1, 3}, {4, 1}},
    {{2, 3}, {}},
    {{}, {2, 3}},
    {{2, 3, 4}, {3, 4}},
    {{2, 3, 4}, {2, 3, 1}},
    {{2, 1, 4}, {1, 3, 1}},
    {{2, 3, 4, 5}, {3, 1, 5}},
    {{1, 3, 1, 2}, {2, 1, 4, 1}},
    {{}, {}},
};

TEST(Add, GradcheckBroadcasting) {
  Rng rng(1);
  for (const auto& c : kBinaryCases) {
    auto a = randn(c.a, rng), b = randn(c.b, rng);
    SCOPED_TRACE(c.a.str() + " with " + c.b.str());
    EXPECT_GRADCHECK(gradcheck([&] { return add(a, b); }, {a, b}));
  }
}

TEST(Sub, GradcheckBroadcasting) {
  Rng rng(2);
  for (const auto& c : kBinaryCases) {
    auto a = randn(c.a, rng), b = randn(c.b, rng);
    SCOPED_TRACE(c.a.str() + " with " + c.b.str());
    EXPECT_GRADCHECK(gradcheck([&] { return a - b; }, {a, b}));
  }
}

TEST(Mul, GradcheckBroadcasting) {
  Rng rng(3);
  for (const auto& c : kBinaryCases) {
    auto a = randn(c.a, rng), b = randn(c.b, rng);
    SCOPED_TRACE(c.a.str() + " with " + c.b.str());
    EXPECT_GRADCHECK(gradcheck([&] { return a * b; }, {a, b}));
  }
}

TEST(Div, GradcheckBroadcasting) {
  Rng rng(4);
  for (const auto& c : kBinaryCases) {
    auto a = randn(c.a, rng), b = positive(c.b, rng);
    SCOPED_TRACE(c.a.str() + " with " + c.b.str());
    EXPECT_GRADCHECK(gradcheck([&] { return a / b; }, {a, b}));
  }
}

TEST(Mul, SameVarOnBothSidesAccumulates) {
  Rng rng(5);
  auto x = randn({3, 4}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return mul(x, x); }, {x}));
  // Intermediates are kept in named Vars wherever backward() frees the graph (see the report on
  // engine.cpp: a temporary intermediate is released mid-sweep).
  Var<double> xx = mul(x, x);
  Var<double> y = sum(xx);
  y.backward();
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_NEAR(x.grad()[i], 2 * x.value()[i], 1e-12);
}

TEST(Add, AGradientWrittenFreshHasTheBitsOfTheSum) {
  // The first term to reach a gradient of the output's shape is written (0 + g), not added to a
  // zero-filled buffer; later terms add. Same node on both sides, and a node another op reached.
  Rng rng(7);
  auto x = randn({3, 4}, rng), w = randn({3, 4}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return add(x, x); }, {x}));
  EXPECT_GRADCHECK(gradcheck([&] { return sub(x, x) + mul(x, w); }, {x, w}));
  EXPECT_GRADCHECK(gradcheck([&] { return mul(add(x, w), x) - w; }, {x, w}));
  Var<double> twice = add(x, x);
  twice.backward(Tensor<double>::full({3, 4}, 1.5));
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_EQ(x.grad()[i], 3.0);
  // g = −0 gives +0, as 0 + (−0) does; −g for sub's second input likewise.
  auto a = randn({2}, rng), b = randn({2}, rng);
  Tensor<double> g = Tensor<double>::empty({2});
  g[0] = -0.0;
  g[1] = 0.0;
  Var<double> d = sub(a, b);
  d.backward(g);
  EXPECT_FALSE(std::signbit(a.grad()[0]));
  EXPECT_FALSE(std::signbit(b.grad()[1]));
  EXPECT_EQ(a.grad()[1], 0.0);
  EXPECT_EQ(b.grad()[0], 0.0);
}

TEST(Gelu, AddsToAGradientAnotherOpWroteFirst) {
  // dx is written outright when gelu is x's only reader, and added to otherwise.
  Rng rng(8);
  auto x = randn({3, 5}, rng);
  for (GeluForm form : {GeluForm::kErf, GeluForm::kTanh}) {
    EXPECT_GRADCHECK(gradcheck(
        [&] {
          const Var<double> h = x * 1.5;
          return gelu(h, form) + h * h;
        },
        {x}));
    EXPECT_GRADCHECK(gradcheck(
        [&] {
          const Var<double> h = x * 1.5;
          return h * h + gelu(h, form);
        },
        {x}));
  }
}

TEST(Add, OnlyOneInputRequiresGrad) {
  Rng rng(6);
  auto a = randn({2, 3}, rng);
  auto b = randn({3}, rng, /*requires_grad=*/false);
  EXPECT_GRADCHECK(gradcheck([&] { return a * b + a; }, {a}));
  EXPECT_FALSE(b.grad().defined());
}

// ---- broadcasting values against a naive index walk ------------------------------------------

TEST(Broadcast, ValuesAndGradientsMatchNaiveIndexing) {
  Rng rng(7);
  for (const auto& c : kBinaryCases) {
    auto a = randn(c.a, rng), b = randn(c.b, rng);
    Var<double> y = mul(a, b);
    const Shape s = y.shape();
    Tensor<double> g = Tensor<double>::empty(s);
    for (double& v : g) v = rng.normal();
    y.backward(g);
    Tensor<double> da(c.a), db(c.b);
    for (int64_t f = 0; f < y.numel(); ++f) {
      const auto idx = unflatten(s, f);
      const int64_t ia = bcast_index(c.a, s, idx), ib = bcast_index(c.b, s, idx);
      EXPECT_DOUBLE_EQ(y.value()[f], a.value()[ia] * b.value()[ib]);
      da[ia] += g[f] * b.value()[ib];
      db[ib] += g[f] * a.value()[ia];
    }
    for (int64_t i = 0; i < da.numel(); ++i) EXPECT_NEAR(a.grad()[i], da[i], 1e-12);
    for (int64_t i = 0; i < db.numel(); ++i) EXPECT_NEAR(b.grad()[i], db[i], 1e-12);
  }
}

TEST(Broadcast, ResultShapes) {
  Var<double> a(Tensor<double>({2, 1, 3}));
  Var<double> b(Tensor<double>({4, 1}));
  EXPECT_EQ(add(a, b).shape(), Shape({2, 4, 3}));
  Var<double> s(Tensor<double>::scalar(2.0));
  EXPECT_EQ(mul(s, b).shape(), Shape({4, 1}));
  EXPECT_EQ(mul(s, s).shape(), Shape({}));
}

TEST(Broadcast, ErrorNamesOpAndBothShapes) {
  Var<double> a(Tensor<double>({2, 3}));
  Var<double> b(Tensor<double>({4}));
  EXPECT_EQ(error_of([&] { add(a, b); }), "add: cannot broadcast [2, 3] with [4]");
  EXPECT_EQ(error_of([&] { sub(b, a); }), "sub: cannot broadcast [4] with [2, 3]");
  EXPECT_EQ(error_of([&] { mul(a, b); }), "mul: cannot broadcast [2, 3] with [4]");
  EXPECT_EQ(error_of([&] { div(a, b); }), "div: cannot broadcast [2, 3] with [4]");
}

TEST(Elementwise, InputsAreNotWritten) {
  Rng rng(8);
  auto a = randn({2, 3}, rng), b = randn({3}, rng);
  Tensor<double> a0 = a.value().clone(), b0 = b.value().clone();
  Var<double> ab = a * b, t = tanh(ab), e = exp(b), q = t / e, g = gelu(q);
  Var<double> y = sum(g);
  y.backward();
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_EQ(a.value()[i], a0[i]);
  for (int64_t i = 0; i < b.numel(); ++i) EXPECT_EQ(b.value()[i], b0[i]);
}

// ---- gradchecks: unary and scalar ops --------------------------------------------------------

TEST(Unary, GradcheckEveryOp) {
  Rng rng(9);
  auto x = randn({3, 4}, rng);
  auto p = positive({3, 4}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return neg(x); }, {x}));
  EXPECT_GRADCHECK(gradcheck([&] { return -x; }, {x}));
  EXPECT_GRADCHECK(gradcheck([&] { return add_scalar(x, 2.5); }, {x}));
  EXPECT_GRADCHECK(gradcheck([&] { return mul_scalar(x, -1.5); }, {x}));
  EXPECT_GRADCHECK(gradcheck([&] { return 3.0 * x + 1.0; }, {x}));
  EXPECT_GRADCHECK(gradcheck([&] { return pow_scalar(x, 3.0); }, {x}));
  EXPECT_GRADCHECK(gradcheck([&] { return pow_scalar(x, 2.0); }, {x}));
  EXPECT_GRADCHECK(gradcheck([&] { return pow_scalar(p, 0.5); }, {p}));
  EXPECT_GRADCHECK(gradcheck([&] { return pow_scalar(p, -1.5); }, {p}));
  EXPECT_GRADCHECK(gradcheck([&] { return pow_scalar(x, 0.0); }, {x}));
  EXPECT_GRADCHECK(gradcheck([&] { return exp(x); }, {x}));
  EXPECT_GRADCHECK(gradcheck([&] { return log(p); }, {p}));
  EXPECT_GRADCHECK(gradcheck([&] { return sqrt(p); }, {p}));
  EXPECT_GRADCHECK(gradcheck([&] { return tanh(x); }, {x}));
  EXPECT_GRADCHECK(gradcheck([&] { return gelu(x); }, {x}));
  EXPECT_GRADCHECK(gradcheck([&] { return gelu(x, GeluForm::kTanh); }, {x}));
}

TEST(Relu, GradcheckAwayFromZero) {
  Tensor<double> t = Tensor<double>::from({2, 4}, {-2.0, -0.7, -0.1, 0.2, 0.9, 1.5, -3.0, 0.05});
  Var<double> x(t, true);
  EXPECT_GRADCHECK(gradcheck([&] { return relu(x); }, {x}));
  Var<double> y = relu(x);
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_EQ(y.value()[i], std::max(t[i], 0.0));
}

TEST(Relu, GradientAtZeroIsZero) {
  Var<double> x(Tensor<double>::from({3}, {-1.0, 0.0, 1.0}), true);
  Var<double> r = relu(x);
  sum(r).backward();
  EXPECT_EQ(x.grad()[0], 0.0);
  EXPECT_EQ(x.grad()[1], 0.0);
  EXPECT_EQ(x.grad()[2], 1.0);
}

TEST(Unary, Composition) {
  Rng rng(10);
  auto x = randn({2, 3}, rng);
  auto w = randn({3}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return sqrt(exp(x * w) + 1.0) - log(exp(x) + 2.0); }, {x, w}));
}

// ---- known values ----------------------------------------------------------------------------

// Computed independently with Python's math.erf / math.tanh:
//   x·½(1 + erf(x/√2))   and   ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
TEST(Gelu, KnownValues) {
  const std::vector<double> xs = {1.0, -1.0, 0.5, -2.0, 3.0, 0.0};
  const std::vector<double> erf_form = {0.8413447460685429,  -0.15865525393145707,
                                        0.34573123063700656, -0.04550026389635842,
                                        2.99595030590511,    0.0};
  const std::vector<double> tanh_form = {0.8411919906082768,  -0.15880800939172324,
                                         0.34571400982514394, -0.04540230591222494,
                                         2.996362607918227,   0.0};
  Var<double> x(Tensor<double>::from({6}, xs));
  Tensor<double> ye = gelu(x).value(), yt = gelu(x, GeluForm::kTanh).value();
  for (size_t i = 0; i < xs.size(); ++i) {
    EXPECT_NEAR(ye[static_cast<int64_t>(i)], erf_form[i], 1e-15) << "erf form at " << xs[i];
    EXPECT_NEAR(yt[static_cast<int64_t>(i)], tanh_form[i], 1e-15) << "tanh form at " << xs[i];
  }
  Var<float> xf(Tensor<float>::from({1}, {1.0f}));
  EXPECT_NEAR(gelu(xf).item(), 0.8413447460685429, 1e-6);
  EXPECT_NEAR(gelu(xf, GeluForm::kTanh).item(), 0.8411919906082768, 1e-6);
}

// Float32 gelu, both forms, forward and backward, at 37 elements (not a whole number of vector
// packets: 4, 8 or 16 floats) over [−6, 6], against the scalar formulas in double on the same
// float inputs. 1 + erf and 1 + tanh cancel for negative x in any float code, so the error is
// measured against |x| + 1 (and g's scale): within 2 (forward) and 4 (backward) float
// ulp of that; Eigen's vectorized erf and tanh reach 0.7 and 1.0.
TEST(Gelu, Float32VectorPathMatchesTheScalarFormula) {
  const int64_t n = 37;
  Rng rng(23);
  Tensor<float> xv = Tensor<float>::empty({n}), gv = Tensor<float>::empty({n});
  for (int64_t i = 0; i < n; ++i) {
    xv[i] =
        static_cast<float>(-6.0 + 12.0 * static_cast<double>(i) / (n - 1) + 0.01 * rng.normal());
    gv[i] = static_cast<float>(rng.normal());
  }
  const double k = std::sqrt(2 / M_PI), c = 0.044715, eps = std::numeric_limits<float>::epsilon();
  for (const GeluForm form : {GeluForm::kErf, GeluForm::kTanh}) {
    const char* name = form == GeluForm::kErf ? "erf" : "tanh";
    Var<float> x(xv.clone(), true);
    Var<float> y = gelu(x, form);
    y.backward(gv);
    for (int64_t i = 0; i < n; ++i) {
      const double xi = xv[i], g = gv[i];
      double ref, dref;
      if (form == GeluForm::kErf) {
        const double phi = 0.5 * (1 + std::erf(xi / std::sqrt(2.0)));
        ref = xi * phi;
        dref = g * (phi + xi * std::exp(-0.5 * xi * xi) / std::sqrt(2 * M_PI));
      } else {
        const double t = std::tanh(k * (xi + c * xi * xi * xi));
        ref = 0.5 * xi * (1 + t);
        dref = g * (0.5 * (1 + t) + 0.5 * xi * (1 - t * t) * k * (1 + 3 * c * xi * xi));
      }
      const double ey = std::abs(y.value()[i] - ref) / ((std::abs(xi) + 1) * eps);
      const double ed =
          std::abs(x.grad()[i] - dref) / ((std::abs(xi) + 1) * (std::abs(g) + 1) * eps);
      EXPECT_LE(ey, 2) << name << " form: y at x = " << xi;
      EXPECT_LE(ed, 4) << name << " form: dx at x = " << xi;
    }
  }
}

TEST(Elementwise, KnownValues) {
  Var<double> a(Tensor<double>::from({2, 2}, {1.0, 4.0, 9.0, 16.0}));
  Var<double> b(Tensor<double>::from({2}, {2.0, -1.0}));
  EXPECT_EQ((a + b).value().to_vector(), (std::vector<double>{3, 3, 11, 15}));
  EXPECT_EQ((a - b).value().to_vector(), (std::vector<double>{-1, 5, 7, 17}));
  EXPECT_EQ((a * b).value().to_vector(), (std::vector<double>{2, -4, 18, -16}));
  EXPECT_EQ((a / b).value().to_vector(), (std::vector<double>{0.5, -4, 4.5, -16}));
  EXPECT_EQ(sqrt(a).value().to_vector(), (std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(pow_scalar(a, 0.5).value().to_vector(), (std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(relu(b).value().to_vector(), (std::vector<double>{2, 0}));
  EXPECT_NEAR(log(a).value()[3], std::log(16.0), 1e-15);
  EXPECT_NEAR(exp(b).value()[1], std::exp(-1.0), 1e-15);
  EXPECT_NEAR(tanh(b).value()[0], std::tanh(2.0), 1e-15);
}

// ---- float32 and float64 agree ---------------------------------------------------------------

TEST(Elementwise, Float32AgreesWithFloat64) {
  Rng rng(11);
  auto x = randn({4, 33}, rng, false);
  auto w = randn({33}, rng, false);
  auto p = positive({4, 33}, rng);
  Var<float> xf(x.value().to<float>()), wf(w.value().to<float>()), pf(p.value().to<float>());
  auto check = [](const Tensor<double>& y64, const Tensor<float>& y32, const char* what) {
    ASSERT_EQ(y64.shape(), y32.shape()) << what;
    for (int64_t i = 0; i < y64.numel(); ++i)
      EXPECT_NEAR(y32[i], y64[i], 2e-6 * (1 + std::abs(y64[i]))) << what << " at " << i;
  };
  check((x + w).value(), (xf + wf).value(), "add");
  check((x - w).value(), (xf - wf).value(), "sub");
  check((x * w).value(), (xf * wf).value(), "mul");
  check((x / p).value(), (xf / pf).value(), "div");
  check(exp(x).value(), exp(xf).value(), "exp");
  check(log(p).value(), log(pf).value(), "log");
  check(sqrt(p).value(), sqrt(pf).value(), "sqrt");
  check(tanh(x).value(), tanh(xf).value(), "tanh");
  check(relu(x).value(), relu(xf).value(), "relu");
  check(gelu(x).value(), gelu(xf).value(), "gelu");
  check(gelu(x, GeluForm::kTanh).value(), gelu(xf, GeluForm::kTanh).value(), "gelu_tanh");
  check(pow_scalar(p, 1.5).value(), pow_scalar(pf, 1.5).value(), "pow_scalar");
  check(pow_scalar(x, 3.0).value(), pow_scalar(xf, 3.0).value(), "pow_scalar of negatives");
  check(where(BoolTensor({33}, 1), x, w).value(), where(BoolTensor({33}, 1), xf, wf).value(),
        "where");
}

TEST(Elementwise, Float32GradientsAgreeWithFloat64) {
  Rng rng(12);
  auto x = randn({3, 17}, rng);
  auto w = randn({17}, rng);
  Var<float> xf(x.value().to<float>(), true), wf(w.value().to<float>(), true);
  Var<double> xw = x * w, g1 = gelu(xw, GeluForm::kTanh), g2 = gelu(x), y = g1 + g2;
  sum(y).backward();
  Var<float> xwf = xf * wf, g1f = gelu(xwf, GeluForm::kTanh), g2f = gelu(xf), yf = g1f + g2f;
  sum(yf).backward();
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_NEAR(xf.grad()[i], x.grad()[i], 1e-5);
  for (int64_t i = 0; i < w.numel(); ++i)
    EXPECT_NEAR(wf.grad()[i], w.grad()[i], 1e-5 * (1 + std::abs(w.grad()[i])));
}

// ---- large tensors: the chunked, multi-threaded path ------------------------------------------

// 199999 elements make four chunks of for_chunks (the last one partial): every element must get
// the scalar formula's value, at one thread and at two alike, bit for bit.
TEST(Elementwise, ChunkedPathMatchesTheScalarFormulaAtAnyThreadCount) {
  const int64_t n = 199999;
  ASSERT_GT(n, 3 * kElementChunk);
  Rng rng(21);
  const Tensor<double> xv = randn({3, n / 3}, rng, false).value();
  const Tensor<double> wv = randn({3, n / 3}, rng, false).value();
  struct Run {
    Tensor<double> ye, yt, s, dx, dw;
  };
  test::ScopedThreads threads(1);
  auto run = [&](int n_threads) {
    threads.set(n_threads);
    Var<double> x(xv.clone(), true), w(wv.clone(), true);
    Var<double> ye = gelu(x), yt = gelu(x, GeluForm::kTanh), s = add(x, w);
    Var<double> l = sum(mul(add(ye, yt), w));
    l.backward();
    return Run{ye.value(), yt.value(), s.value(), x.grad().clone(), w.grad().clone()};
  };
  const Run one = run(1), two = run(2);
  for (int64_t i = 0; i < n; ++i) {
    const double x = xv[i], w = wv[i];
    const double phi = 0.5 * (1 + std::erf(x / std::sqrt(2.0)));
    const double dens = std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI);
    const double k = std::sqrt(2 / M_PI), u = k * (x + 0.044715 * x * x * x), t = std::tanh(u);
    const double ye = x * phi, yt = 0.5 * x * (1 + t);
    const double dye = phi + x * dens;
    const double dyt = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x);
    EXPECT_NEAR(one.ye[i], ye, 1e-14) << "gelu at " << i;
    EXPECT_NEAR(one.yt[i], yt, 1e-14) << "gelu_tanh at " << i;
    EXPECT_EQ(one.s[i], x + w) << "add at " << i;
    EXPECT_NEAR(one.dx[i], w * (dye + dyt), 1e-13) << "dx at " << i;
    EXPECT_NEAR(one.dw[i], ye + yt, 1e-14) << "dw at " << i;
  }
  testing::expect_bitwise_equal(one.ye, two.ye, "gelu");
  testing::expect_bitwise_equal(one.yt, two.yt, "gelu_tanh");
  testing::expect_bitwise_equal(one.s, two.s, "add");
  testing::expect_bitwise_equal(one.dx, two.dx, "dx");
  testing::expect_bitwise_equal(one.dw, two.dw, "dw");
}

// ---- masked_fill -----------------------------------------------------------------------------

TEST(MaskedFill, MinusInfFeedingSoftmaxGradcheck) {
  Rng rng(13);
  auto x = randn({2, 3, 4}, rng);
  // A causal-like [3, 4] mask, broadcast over the batch: 1 = hidden.
  BoolTensor mask({3, 4}, std::vector<uint8_t>{0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1});
  EXPECT_GRADCHECK(gradcheck([&] { return softmax(masked_fill(x, mask, -kInf)); }, {x}));
  Var<double> p = softmax(masked_fill(x, mask, -kInf));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i = 0; i < 12; ++i)
      if (mask[i]) {
        EXPECT_EQ(p.value()[b * 12 + i], 0.0);
      }
}

TEST(MaskedFill, ValuesAndZeroGradientAtFilledPositions) {
  Var<double> x(Tensor<double>::from({2, 3}, {1, 2, 3, 4, 5, 6}), true);
  BoolTensor mask({3}, std::vector<uint8_t>{0, 1, 0});
  Var<double> y = masked_fill(x, mask, -kInf);
  EXPECT_EQ(y.value().to_vector(), (std::vector<double>{1, -kInf, 3, 4, -kInf, 6}));
  y.backward(Tensor<double>::full({2, 3}, 2.0));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{2, 0, 2, 2, 0, 2}));
  Var<double> z = masked_fill(x, BoolTensor({2, 1}, std::vector<uint8_t>{1, 0}), 7.5);
  EXPECT_EQ(z.value().to_vector(), (std::vector<double>{7.5, 7.5, 7.5, 4, 5, 6}));
}

TEST(MaskedFill, GradcheckSameShapeAndScalarMask) {
  Rng rng(14);
  auto x = randn({3, 4}, rng);
  BoolTensor full({3, 4}, std::vector<uint8_t>{1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0});
  EXPECT_GRADCHECK(gradcheck([&] { return masked_fill(x, full, 0.25) * x; }, {x}));
  BoolTensor one({}, std::vector<uint8_t>{0});
  EXPECT_GRADCHECK(gradcheck([&] { return masked_fill(x, one, 1.0); }, {x}));
}

TEST(MaskedFill, MaskMustBroadcastToInput) {
  Var<double> x(Tensor<double>({2, 3}));
  BoolTensor mask({2, 2}, std::vector<uint8_t>{0, 1, 0, 1});
  EXPECT_EQ(error_of([&] { masked_fill(x, mask, 0.0); }),
            "masked_fill: mask of shape [2, 2] does not broadcast to [2, 3]");
  BoolTensor bigger({4, 2, 3});
  EXPECT_THROW(masked_fill(x, bigger, 0.0), Error);
}

// ---- where -----------------------------------------------------------------------------------

TEST(Where, GradcheckBroadcastingAllThree) {
  Rng rng(15);
  auto a = randn({2, 3, 4}, rng);
  auto b = randn({4}, rng);
  BoolTensor cond({3, 1}, std::vector<uint8_t>{1, 0, 1});
  EXPECT_GRADCHECK(gradcheck([&] { return where(cond, a, b); }, {a, b}));
  auto a2 = randn({3, 1}, rng);
  auto b2 = randn({1, 4}, rng);
  BoolTensor cond2({2, 3, 4});
  for (int64_t i = 0; i < cond2.numel(); ++i) cond2[i] = static_cast<uint8_t>(i % 3 == 0);
  EXPECT_GRADCHECK(gradcheck([&] { return where(cond2, a2, b2); }, {a2, b2}));
}

TEST(Where, Values) {
  Var<double> a(Tensor<double>::from({2, 2}, {1, 2, 3, 4}));
  Var<double> b(Tensor<double>::scalar(-kInf));
  BoolTensor cond({2}, std::vector<uint8_t>{1, 0});
  EXPECT_EQ(where(cond, a, b).value().to_vector(), (std::vector<double>{1, -kInf, 3, -kInf}));
  BoolTensor bad({3});
  EXPECT_EQ(error_of([&] { where(bad, a, b); }), "where: cannot broadcast [3] with [2, 2]");
}

// ---- the hot path ----------------------------------------------------------------------------

// A float32 step through the broadcasting fast paths ([B,T,C] + [C], [B,T,C] ⊙ [B,T,1]), an
// activation, a mask, a permute, a slice and reductions, forward and backward: once the caching
// pool is warm, it must not touch the system heap at all.
TEST(HotPath, SteadyStateStepMakesNoHeapAllocation) {
  Rng rng(20);
  auto f32 = [&](const Shape& s) {
    return Var<float>(randn(s, rng, false).value().to<float>(), true);
  };
  Var<float> x = f32({4, 8, 16}), b = f32({16}), s = f32({4, 8, 1}), w = f32({8, 16});
  BoolTensor mask({8, 16});
  for (int64_t i = 0; i < mask.numel(); ++i) mask[i] = static_cast<uint8_t>(i % 5 == 0);
  const std::vector<int> perm = {1, 0, 2}, axes = {0, -1};
  auto step = [&] {
    Var<float> h = add(x, b);
    Var<float> m = mul(h, s);
    Var<float> g = gelu(m, GeluForm::kTanh);
    Var<float> k = masked_fill(g, mask, 0.0);
    Var<float> d = sub(k, w);
    Var<float> p = permute(d, perm);
    Var<float> sl = slice(p, 0, 1, 5);
    Var<float> mm = mean(sl, axes);
    Var<float> l = sum(mm);
    l.backward();
  };
  step();
  step();
  const long before = g_heap_allocs.load();
  step();
  EXPECT_EQ(g_heap_allocs.load() - before, 0);
  EXPECT_TRUE(x.grad().all_finite());
}

}  // namespace
}  // namespace qkv
