#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>

#include "test_threads.h"
#include "test_util.h"

namespace qkv {
namespace {

using testing::error_of;
using testing::randn;

/// Q [B, H, T, d], K [B, H, S, d], V [B, H, S, dv], float64 standard normal.
struct Problem {
  Var<double> Q, K, V;
};

Problem make_problem(int64_t B, int64_t H, int64_t T, int64_t S, int64_t d, int64_t dv,
                     uint64_t seed) {
  Rng rng(seed);
  Problem p;
  p.Q = randn({B, H, T, d}, rng);
  p.K = randn({B, H, S, d}, rng);
  p.V = randn({B, H, S, dv}, rng);
  return p;
}

template <typename T>
Var<T> leaf(const Var<double>& x) {
  return Var<T>(x.value().to<T>(), true);
}

/// Whether query t of (b, h) sees key s, read straight from the AttnMask contract (written
/// independently of attention.cpp's strided view).
bool visible(const AttnMask& m, int64_t b, int64_t h, int64_t t, int64_t s) {
  if (m.causal && s > t) return false;
  if (!m.key_padding.empty() && !m.key_padding[b * m.key_padding.shape[1] + s]) return false;
  if (!m.allowed.empty()) {
    const Shape& a = m.allowed.shape;
    const int64_t full[4] = {b, h, t, s};
    int64_t idx = 0;
    for (int i = 0; i < a.dim(); ++i) {
      const int64_t coord = a[i] == 1 ? 0 : full[4 - a.dim() + i];
      idx = idx * a[i] + coord;
    }
    if (!m.allowed[idx]) return false;
  }
  return true;
}

/// The attention by plain loops: O [B, H, T, dv] and P [B, H, T, S].
Tensor<double> naive_attention(const Tensor<double>& Q, const Tensor<double>& K,
                               const Tensor<double>& V, const AttnMask& m, Tensor<double>* P_out) {
  const int64_t B = Q.size(0), H = Q.size(1), T = Q.size(2), d = Q.size(3), S = K.size(2),
                dv = V.size(3);
  Tensor<double> O({B, H, T, dv});
  Tensor<double> P({B, H, T, S});
  std::vector<double> sc(static_cast<size_t>(S));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t) {
        const int64_t bh = b * H + h;
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t s = 0; s < S; ++s) {
          double dot = 0;
          for (int64_t i = 0; i < d; ++i) dot += Q[(bh * T + t) * d + i] * K[(bh * S + s) * d + i];
          sc[s] = visible(m, b, h, t, s) ? dot / std::sqrt(double(d))
                                         : -std::numeric_limits<double>::infinity();
          mx = std::max(mx, sc[s]);
        }
        if (mx == -std::numeric_limits<double>::infinity()) continue;  // all hidden: zeros
        double z = 0;
        for (int64_t s = 0; s < S; ++s) z += std::exp(sc[s] - mx);
        for (int64_t s = 0; s < S; ++s) {
          const double ps = std::exp(sc[s] - mx) / z;
          P[(bh * T + t) * S + s] = ps;
          for (int64_t j = 0; j < dv; ++j)
            O[(bh * T + t) * dv + j] += ps * V[(bh * S + s) * dv + j];
        }
      }
  if (P_out) *P_out = P;
  return O;
}

AttnMask causal() {
  AttnMask m;
  m.causal = true;
  return m;
}

AttnMask key_padding(const Shape& shape, std::vector<uint8_t> v) {
  AttnMask m;
  m.key_padding = BoolTensor(shape, std::move(v));
  return m;
}

AttnMask allowed(const Shape& shape, std::vector<uint8_t> v) {
  AttnMask m;
  m.allowed = BoolTensor(shape, std::move(v));
  return m;
}

/// A random 0/1 mask of the given shape (about a third hidden).
BoolTensor random_bool(const Shape& shape, uint64_t seed) {
  Rng rng(seed);
  BoolTensor t(shape);
  for (auto& x : t.data) x = rng.uniform() < 0.67 ? 1 : 0;
  return t;
}

GradcheckReport check(Problem& p, const AttnMask& mask) {
  return gradcheck([&] { return scaled_dot_product_attention(p.Q, p.K, p.V, mask); },
                   {{"Q", p.Q}, {"K", p.K}, {"V", p.V}});
}

void expect_near(const Tensor<double>& a, const Tensor<double>& b, double tol, const char* what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_NEAR(a[i], b[i], tol) << what << " at " << i;
}

template <typename T>
bool bitwise_equal(const Tensor<T>& a, const Tensor<T>& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<size_t>(a.numel()) * sizeof(T)) == 0;
}

// ---- forward against plain loops -----------------------------------------------------------

TEST(Attention, ForwardMatchesLoopsForEveryMaskKind) {
  Problem p = make_problem(2, 3, 4, 5, 3, 2, 1);
  const std::vector<std::pair<const char*, AttnMask>> masks = {
      {"none", AttnMask{}},
      {"causal", causal()},
      {"key_padding", key_padding({2, 5}, {1, 1, 0, 1, 0, 1, 0, 1, 1, 1})},
      {"allowed [T,S]", AttnMask{false, {}, random_bool({4, 5}, 2)}},
      {"allowed [B,1,T,S]", AttnMask{false, {}, random_bool({2, 1, 4, 5}, 3)}},
      {"allowed [1,1,T,S]", AttnMask{false, {}, random_bool({1, 1, 4, 5}, 4)}},
      {"allowed [B,H,T,S]", AttnMask{false, {}, random_bool({2, 3, 4, 5}, 5)}},
      {"all three", AttnMask{true, BoolTensor({2, 5}, {1, 0, 1, 1, 1, 1, 1, 1, 0, 1}),
                             random_bool({2, 1, 4, 5}, 6)}},
  };
  for (const auto& [name, mask] : masks) {
    Tensor<double> P, P_ref;
    Tensor<double> O = scaled_dot_product_attention(p.Q, p.K, p.V, mask, &P).value();
    Tensor<double> O_ref = naive_attention(p.Q.value(), p.K.value(), p.V.value(), mask, &P_ref);
    SCOPED_TRACE(name);
    expect_near(O, O_ref, 1e-13, "O");
    expect_near(P, P_ref, 1e-13, "P");
  }
}

// ---- gradchecks, float64, default tolerances ------------------------------------------------

TEST(Attention, GradcheckNoMask) {
  Problem p = make_problem(2, 2, 3, 3, 4, 4, 10);
  EXPECT_GRADCHECK(check(p, {}));
}

TEST(Attention, GradcheckCausal) {
  Problem p = make_problem(2, 2, 4, 4, 3, 3, 11);
  EXPECT_GRADCHECK(check(p, causal()));
}

TEST(Attention, GradcheckKeyPadding) {
  Problem p = make_problem(2, 2, 3, 4, 3, 3, 12);
  EXPECT_GRADCHECK(check(p, key_padding({2, 4}, {1, 1, 1, 0, 1, 0, 1, 1})));
}

TEST(Attention, GradcheckArbitraryBooleanMask) {
  Problem p = make_problem(2, 2, 4, 4, 3, 3, 13);
  EXPECT_GRADCHECK(check(p, allowed({4, 4}, {1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1})));
}

TEST(Attention, GradcheckCrossAttentionShapes) {
  // T ≠ S and dv ≠ d, with and without a mask.
  Problem p = make_problem(2, 2, 3, 5, 4, 2, 14);
  EXPECT_GRADCHECK(check(p, {}));
  EXPECT_GRADCHECK(
      check(p, AttnMask{true, BoolTensor({2, 5}, {1, 1, 1, 1, 0, 1, 1, 0, 1, 1}), {}}));
}

TEST(Attention, GradcheckSelfAttentionWithOneInputAsQKV) {
  // The same tensor as Q, K and V: its gradient is the sum of the three paths.
  Rng rng(15);
  Var<double> x = randn({1, 2, 4, 3}, rng);
  EXPECT_GRADCHECK(
      gradcheck([&] { return scaled_dot_product_attention(x, x, x, causal()); }, {{"x", x}}));
}

// The backward writes dQ, dK, dV (=) when no gradient has reached them yet and adds to them
// otherwise: here V and Q also feed another op, built before and after the attention, so that
// one of the two orders of the backward sweep reaches them first.
TEST(Attention, GradcheckInputsThatAlsoFeedAnotherOp) {
  Rng rng(16);
  Problem p = make_problem(2, 2, 4, 5, 3, 3, 17);
  const Var<double>&Q = p.Q, &K = p.K, &V = p.V;
  EXPECT_GRADCHECK(gradcheck(
      [&] {
        Var<double> other = sum(mul(V, V));
        return add(sum(scaled_dot_product_attention(Q, K, V, causal())), other);
      },
      {{"Q", Q}, {"K", K}, {"V", V}}));
  EXPECT_GRADCHECK(gradcheck(
      [&] {
        Var<double> O = sum(scaled_dot_product_attention(Q, K, V, causal()));
        return add(O, add(sum(mul(V, V)), sum(mul(Q, Q))));
      },
      {{"Q", Q}, {"K", K}, {"V", V}}));
}

/// B=2, H=2, T=4, S=5: query row 2 sees no key ([T, S] mask row of zeros), and keys 3 of batch 0
/// and 0 of batch 1 are padding.
AttnMask mask_with_a_dead_row() {
  AttnMask m;
  m.allowed = BoolTensor({4, 5}, std::vector<uint8_t>(20, 1));
  for (int s = 0; s < 5; ++s) m.allowed[2 * 5 + s] = 0;
  m.key_padding = BoolTensor({2, 5}, {1, 1, 1, 0, 1, 0, 1, 1, 1, 1});
  return m;
}

TEST(Attention, FullyMaskedQueryRowGivesExactZerosAndZeroGradient) {
  Problem p = make_problem(2, 2, 4, 5, 3, 2, 16);
  const AttnMask mask = mask_with_a_dead_row();
  EXPECT_GRADCHECK(check(p, mask));

  Tensor<double> P;
  Var<double> O = scaled_dot_product_attention(p.Q, p.K, p.V, mask, &P);
  Rng rng(17);
  O.backward(randn(O.shape(), rng, false).value());
  ASSERT_TRUE(O.value().all_finite());
  ASSERT_TRUE(p.Q.grad().all_finite());
  ASSERT_TRUE(p.K.grad().all_finite());
  ASSERT_TRUE(p.V.grad().all_finite());
  for (int bh = 0; bh < 4; ++bh) {
    for (int j = 0; j < 2; ++j) EXPECT_EQ(O.value()[(bh * 4 + 2) * 2 + j], 0.0) << "bh " << bh;
    for (int s = 0; s < 5; ++s) EXPECT_EQ(P[(bh * 4 + 2) * 5 + s], 0.0) << "bh " << bh;
    for (int i = 0; i < 3; ++i) EXPECT_EQ(p.Q.grad()[(bh * 4 + 2) * 3 + i], 0.0) << "bh " << bh;
    // A padding key is seen by no query: its K and V gradients are exactly zero too.
    const int pad = bh < 2 ? 3 : 0;
    for (int i = 0; i < 3; ++i) EXPECT_EQ(p.K.grad()[(bh * 5 + pad) * 3 + i], 0.0);
    for (int j = 0; j < 2; ++j) EXPECT_EQ(p.V.grad()[(bh * 5 + pad) * 2 + j], 0.0);
  }
}

TEST(Attention, FullyPaddedBatchElementPassesNoGradient) {
  Problem p = make_problem(2, 1, 3, 3, 2, 2, 18);
  const AttnMask mask = key_padding({2, 3}, {1, 1, 0, 0, 0, 0});
  EXPECT_GRADCHECK(check(p, mask));
  Var<double> O = scaled_dot_product_attention(p.Q, p.K, p.V, mask);
  O.backward(Tensor<double>::full(O.shape(), 1.0));
  for (int i = 6; i < 12; ++i) {  // batch 1: every element of O, dQ, dK, dV
    EXPECT_EQ(O.value()[i], 0.0);
    EXPECT_EQ(p.Q.grad()[i], 0.0);
    EXPECT_EQ(p.K.grad()[i], 0.0);
    EXPECT_EQ(p.V.grad()[i], 0.0);
  }
}

// ---- properties ------------------------------------------------------------------------------

TEST(Attention, ProbabilityRowsSumToOneOrZeroWhenFullyMasked) {
  Problem p = make_problem(2, 2, 4, 5, 3, 2, 19);
  const AttnMask mask = mask_with_a_dead_row();
  Tensor<double> P;
  scaled_dot_product_attention(p.Q, p.K, p.V, mask, &P);
  ASSERT_EQ(P.shape(), Shape({2, 2, 4, 5}));
  for (int bh = 0; bh < 4; ++bh)
    for (int t = 0; t < 4; ++t) {
      double sum = 0;
      for (int s = 0; s < 5; ++s) {
        const double v = P[(bh * 4 + t) * 5 + s];
        EXPECT_GE(v, 0.0);
        if (!visible(mask, bh / 2, bh % 2, t, s)) {
          EXPECT_EQ(v, 0.0);
        }
        sum += v;
      }
      EXPECT_NEAR(sum, t == 2 ? 0.0 : 1.0, 1e-12) << "bh " << bh << " t " << t;
    }
}

template <typename T>
void expect_no_nan_at_extreme_scores() {
  Problem p = make_problem(2, 2, 6, 6, 4, 3, 20);
  Var<T> Q = leaf<T>(p.Q), K = leaf<T>(p.K), V = leaf<T>(p.V);
  for (T& x : Q.value()) x *= 30;  // scores q·k/√d of a few hundred to ±1000 and beyond
  for (T& x : K.value()) x *= 30;
  for (const AttnMask& mask : {AttnMask{}, causal()}) {
    Tensor<T> P;
    Var<T> O = scaled_dot_product_attention(Q, K, V, mask, &P);
    O.backward(Tensor<T>::full(O.shape(), T(1)));
    EXPECT_TRUE(O.value().all_finite());
    EXPECT_TRUE(P.all_finite());
    EXPECT_TRUE(Q.grad().all_finite());
    EXPECT_TRUE(K.grad().all_finite());
    EXPECT_TRUE(V.grad().all_finite());
    for (int64_t r = 0; r < P.numel() / 6; ++r) {
      T sum = 0;
      for (int s = 0; s < 6; ++s) sum += P[r * 6 + s];
      EXPECT_NEAR(sum, 1.0, 1e-5);
    }
  }
}

TEST(Attention, ScoresOfThousandsGiveNoNaNFloat32) {
  expect_no_nan_at_extreme_scores<float>();
}
TEST(Attention, ScoresOfThousandsGiveNoNaNFloat64) {
  expect_no_nan_at_extreme_scores<double>();
}

TEST(Attention, Float32ForwardAgreesWithFloat64) {
  Problem p = make_problem(3, 2, 7, 9, 8, 5, 21);
  const AttnMask mask{true, random_bool({3, 9}, 22), {}};
  Tensor<double> P64;
  Tensor<float> P32;
  Tensor<double> O64 = scaled_dot_product_attention(p.Q, p.K, p.V, mask, &P64).value();
  Tensor<float> O32 =
      scaled_dot_product_attention(leaf<float>(p.Q), leaf<float>(p.K), leaf<float>(p.V), mask, &P32)
          .value();
  for (int64_t i = 0; i < O64.numel(); ++i) EXPECT_NEAR(O32[i], O64[i], 1e-5) << "O " << i;
  for (int64_t i = 0; i < P64.numel(); ++i) EXPECT_NEAR(P32[i], P64[i], 1e-5) << "P " << i;
}

TEST(Attention, NoGradStillFillsPAndRecordsNothing) {
  Problem p = make_problem(1, 2, 3, 3, 2, 2, 23);
  NoGradGuard no_grad;
  Tensor<double> P;
  Var<double> O = scaled_dot_product_attention(p.Q, p.K, p.V, causal(), &P);
  EXPECT_FALSE(O.requires_grad());
  ASSERT_EQ(P.shape(), Shape({1, 2, 3, 3}));
  EXPECT_EQ(P[0], 1.0);  // row 0 under the causal mask sees key 0 only
}

struct AttnRun {
  Tensor<float> O, P, dQ, dK, dV;
};

AttnRun run_float32(const Problem& p, const AttnMask& mask) {
  Var<float> Q = leaf<float>(p.Q), K = leaf<float>(p.K), V = leaf<float>(p.V);
  AttnRun r;
  Var<float> O = scaled_dot_product_attention(Q, K, V, mask, &r.P);
  Tensor<float> g = Tensor<float>::empty(O.shape());
  for (int64_t i = 0; i < g.numel(); ++i) g[i] = std::sin(0.37f * float(i));
  O.backward(g);
  r.O = O.value();
  r.dQ = Q.grad();
  r.dK = K.grad();
  r.dV = V.grad();
  return r;
}

TEST(Attention, DeterministicAcrossRunsAndThreadCounts) {
  // B·H·T·S·(d + dv) of millions of multiply-adds: the (b, h) blocks run on several threads.
  Problem p = make_problem(32, 4, 64, 48, 16, 8, 24);
  const AttnMask mask{true, random_bool({32, 48}, 25), {}};
  const AttnRun a = run_float32(p, mask);
  const AttnRun b = run_float32(p, mask);
  const AttnRun c = [&] {
    test::ScopedThreads one(1);
    return run_float32(p, mask);
  }();
  for (const AttnRun* r : {&b, &c}) {
    EXPECT_TRUE(bitwise_equal(a.O, r->O));
    EXPECT_TRUE(bitwise_equal(a.P, r->P));
    EXPECT_TRUE(bitwise_equal(a.dQ, r->dQ));
    EXPECT_TRUE(bitwise_equal(a.dK, r->dK));
    EXPECT_TRUE(bitwise_equal(a.dV, r->dV));
  }
}

// ---- fused against composed -----------------------------------------------------------------

/// Output and dQ, dK, dV (under a random upstream gradient) of one attention implementation.
struct Grads {
  Tensor<double> O, dQ, dK, dV;
};

// retain_graph: the engine's sweep releases each node's inputs as it goes, which can destroy an
// intermediate node (held only by its consumer) before the sweep reaches it; the composed graph
// has such nodes. Retaining the graph keeps them alive until O goes. See the disabled test below.
template <typename F>
Grads forward_backward(const Problem& p, F attention, bool retain_graph = true) {
  Var<double> Q(p.Q.value(), true), K(p.K.value(), true), V(p.V.value(), true);
  Var<double> O = attention(Q, K, V);
  Rng rng(99);
  O.backward(randn(O.shape(), rng, false).value(), retain_graph);
  return {O.value(), Q.grad(), K.grad(), V.grad()};
}

TEST(Attention, FusedAgreesWithComposedOnValuesAndGradients) {
  const std::vector<std::pair<const char*, std::pair<Problem, AttnMask>>> cases = {
      {"no mask", {make_problem(2, 3, 5, 5, 4, 4, 30), {}}},
      {"causal", {make_problem(2, 3, 5, 5, 4, 4, 31), causal()}},
      {"key padding",
       {make_problem(2, 2, 4, 6, 3, 3, 32),
        key_padding({2, 6}, {1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1})}},
      {"allowed [B,1,T,S]",
       {make_problem(2, 2, 4, 4, 3, 3, 33), AttnMask{false, {}, random_bool({2, 1, 4, 4}, 34)}}},
      {"cross, T != S, dv != d", {make_problem(3, 2, 3, 7, 5, 2, 35), causal()}},
      {"dead row and padded keys", {make_problem(2, 2, 4, 5, 3, 2, 36), mask_with_a_dead_row()}},
      {"fully padded batch element",
       {make_problem(2, 1, 3, 3, 2, 2, 37), key_padding({2, 3}, {1, 1, 0, 0, 0, 0})}},
  };
  for (const auto& [name, pm] : cases) {
    SCOPED_TRACE(name);
    const Problem& p = pm.first;
    const AttnMask& mask = pm.second;
    const Grads f =
        forward_backward(p, [&](const Var<double>& Q, const Var<double>& K, const Var<double>& V) {
          return scaled_dot_product_attention(Q, K, V, mask);
        });
    const Grads c =
        forward_backward(p, [&](const Var<double>& Q, const Var<double>& K, const Var<double>& V) {
          return attention_composed(Q, K, V, mask);
        });
    // Every row, fully masked ones included: composed softmax gives an all −inf row zeros too.
    expect_near(f.O, c.O, 1e-10, "O");
    expect_near(f.dQ, c.dQ, 1e-10, "dQ");
    expect_near(f.dK, c.dK, 1e-10, "dK");
    expect_near(f.dV, c.dV, 1e-10, "dV");
  }
}

// Fails with the engine of commit 2e4a8b1: backward without retain_graph clears each node's inputs
// during the sweep, freeing intermediate nodes (here softmax's and mul_scalar's results) that the
// sweep has yet to visit, so dQ and dK come out wrong (and memory is used after free). Enable once
// autograd/engine.cpp keeps the graph's nodes alive until the sweep ends.
TEST(Attention, ComposedBackwardWithoutRetainGraphMatchesFused) {
  const Problem p = make_problem(2, 3, 5, 5, 4, 4, 30);
  const auto fused = [](const Var<double>& Q, const Var<double>& K, const Var<double>& V) {
    return scaled_dot_product_attention(Q, K, V, causal());
  };
  const auto composed = [](const Var<double>& Q, const Var<double>& K, const Var<double>& V) {
    return attention_composed(Q, K, V, causal());
  };
  const Grads f = forward_backward(p, fused, /*retain_graph=*/false);
  const Grads c = forward_backward(p, composed, /*retain_graph=*/false);
  expect_near(f.dQ, c.dQ, 1e-10, "dQ");
  expect_near(f.dK, c.dK, 1e-10, "dK");
  expect_near(f.dV, c.dV, 1e-10, "dV");
}

/// Q [B, T, H·d], K [B, S, H·d], V [B, S, H·dv]: the heads side by side in the features.
Problem make_merged_problem(int64_t B, int64_t H, int64_t T, int64_t S, int64_t d, int64_t dv,
                            uint64_t seed) {
  Rng rng(seed);
  Problem p;
  p.Q = randn({B, T, H * d}, rng);
  p.K = randn({B, S, H * d}, rng);
  p.V = randn({B, S, H * dv}, rng);
  return p;
}

/// [B, T, H·d] → [B, H, T, d] and back, by the shape ops.
Var<double> split_heads(const Var<double>& x, int64_t H) {
  return permute(reshape(x, {x.size(0), x.size(1), H, x.size(2) / H}), {0, 2, 1, 3});
}
Var<double> merge_heads(const Var<double>& x) {
  return reshape(permute(x, {0, 2, 1, 3}), {x.size(0), x.size(2), x.size(1) * x.size(3)});
}

TEST(Attention, MultiHeadEqualsSplitAttendMergeExactly) {
  const std::vector<std::tuple<const char*, int64_t, Problem, AttnMask>> cases = {
      {"no mask", 3, make_merged_problem(2, 3, 5, 5, 4, 4, 40), {}},
      {"causal", 2, make_merged_problem(2, 2, 6, 6, 3, 3, 41), causal()},
      {"cross, T != S, dv != d, padded keys", 2, make_merged_problem(2, 2, 3, 5, 4, 3, 42),
       key_padding({2, 5}, {1, 1, 0, 1, 1, 0, 1, 1, 1, 1})},
      {"dead row", 2, make_merged_problem(2, 2, 4, 5, 3, 2, 43), mask_with_a_dead_row()},
  };
  for (const auto& [name, H, p, mask] : cases) {
    SCOPED_TRACE(name);
    const int64_t heads = H;
    const AttnMask& m = mask;
    const Grads f =
        forward_backward(p, [&](const Var<double>& Q, const Var<double>& K, const Var<double>& V) {
          return multi_head_attention(Q, K, V, heads, m);
        });
    const Grads c =
        forward_backward(p, [&](const Var<double>& Q, const Var<double>& K, const Var<double>& V) {
          return merge_heads(scaled_dot_product_attention(
              split_heads(Q, heads), split_heads(K, heads), split_heads(V, heads), m));
        });
    // The same products on the same numbers, read in place instead of from copies: equal bits.
    EXPECT_EQ(f.O.to_vector(), c.O.to_vector());
    EXPECT_EQ(f.dQ.to_vector(), c.dQ.to_vector());
    EXPECT_EQ(f.dK.to_vector(), c.dK.to_vector());
    EXPECT_EQ(f.dV.to_vector(), c.dV.to_vector());
  }
}

TEST(Attention, MultiHeadGradcheckFloat64) {
  Problem p = make_merged_problem(2, 2, 3, 4, 3, 2, 44);
  const AttnMask mask = key_padding({2, 4}, {1, 1, 1, 0, 1, 0, 1, 1});
  EXPECT_GRADCHECK(gradcheck([&] { return multi_head_attention(p.Q, p.K, p.V, 2, mask); },
                             {{"Q", p.Q}, {"K", p.K}, {"V", p.V}}));
  Problem s = make_merged_problem(1, 3, 4, 4, 2, 2, 45);
  EXPECT_GRADCHECK(gradcheck([&] { return multi_head_attention(s.Q, s.K, s.V, 3, causal()); },
                             {{"Q", s.Q}, {"K", s.K}, {"V", s.V}}));
}

TEST(Attention, MultiHeadKeepsPAsBHTS) {
  const Problem p = make_merged_problem(2, 2, 3, 3, 2, 2, 46);
  Tensor<double> P;
  multi_head_attention(p.Q, p.K, p.V, 2, causal(), &P);
  Tensor<double> want;
  scaled_dot_product_attention(split_heads(p.Q, 2), split_heads(p.K, 2), split_heads(p.V, 2),
                               causal(), &want);
  EXPECT_EQ(P.shape(), Shape({2, 2, 3, 3}));
  EXPECT_EQ(P.to_vector(), want.to_vector());
}

TEST(Attention, BackwardFromRecomputedPEqualsBackwardFromKeptP) {
  // Without P_out the op keeps no P and its backward recomputes it block by block; asking for P
  // keeps it. Both backward passes must give the same bits, under each kind of mask.
  const std::vector<std::pair<const char*, AttnMask>> masks = {
      {"none", {}},
      {"causal", causal()},
      {"causal and key padding",
       [] {
         AttnMask m = key_padding({2, 5}, {1, 1, 1, 0, 0, 1, 0, 1, 1, 1});
         m.causal = true;
         return m;
       }()},
  };
  const Problem p = make_merged_problem(2, 2, 5, 5, 3, 4, 48);
  for (const auto& [name, mask] : masks) {
    SCOPED_TRACE(name);
    const AttnMask& m = mask;
    const Grads recomputed =
        forward_backward(p, [&](const Var<double>& Q, const Var<double>& K, const Var<double>& V) {
          return multi_head_attention(Q, K, V, 2, m);
        });
    Tensor<double> P;
    const Grads kept =
        forward_backward(p, [&](const Var<double>& Q, const Var<double>& K, const Var<double>& V) {
          return multi_head_attention(Q, K, V, 2, m, &P);
        });
    EXPECT_EQ(recomputed.O.to_vector(), kept.O.to_vector());
    EXPECT_EQ(recomputed.dQ.to_vector(), kept.dQ.to_vector());
    EXPECT_EQ(recomputed.dK.to_vector(), kept.dK.to_vector());
    EXPECT_EQ(recomputed.dV.to_vector(), kept.dV.to_vector());
  }
}

// Float32 heads of at most 64 keys and features run on the packing-free kernel (gemm_kernel.h):
// values and all three gradients against float64, in both layouts, under each kind of mask, with
// sizes that leave remainder rows and columns in every product; then bigger heads (Eigen's GEMM).
TEST(Attention, Float32ForwardAndBackwardAgreeWithFloat64) {
  struct Case {
    const char* name;
    bool merged;
    int64_t H;
    Problem p;
    AttnMask mask;
  };
  const std::vector<Case> cases = {
      {"split, causal", false, 2, make_problem(2, 2, 16, 16, 32, 32, 60), causal()},
      {"merged, key padding, T != S, dv != d", true, 2, make_merged_problem(3, 2, 7, 13, 9, 20, 61),
       key_padding({3, 13}, {1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                             1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0})},
      {"merged, dead row", true, 2, make_merged_problem(2, 2, 4, 5, 3, 2, 62),
       mask_with_a_dead_row()},
      {"split, allowed mask", false, 1, make_problem(2, 1, 6, 6, 8, 8, 63),
       AttnMask{false, {}, random_bool({2, 1, 6, 6}, 64)}},
      {"merged, heads above the small size", true, 2, make_merged_problem(1, 2, 70, 70, 8, 8, 65),
       causal()},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto attend = [&](const auto& Q, const auto& K, const auto& V) {
      return c.merged ? multi_head_attention(Q, K, V, c.H, c.mask)
                      : scaled_dot_product_attention(Q, K, V, c.mask);
    };
    const Grads want = forward_backward(c.p, attend);
    Var<float> Q = leaf<float>(c.p.Q), K = leaf<float>(c.p.K), V = leaf<float>(c.p.V);
    Var<float> O = attend(Q, K, V);
    Rng rng(99);  // the upstream gradient forward_backward used
    O.backward(randn(O.shape(), rng, false).value().to<float>());
    auto expect_close = [](const Tensor<float>& got, const Tensor<double>& ref, const char* what) {
      ASSERT_EQ(got.shape(), ref.shape()) << what;
      for (int64_t i = 0; i < got.numel(); ++i)
        ASSERT_NEAR(got[i], ref[i], 2e-5 * (1 + std::abs(ref[i]))) << what << " element " << i;
    };
    expect_close(O.value(), want.O, "O");
    expect_close(Q.grad(), want.dQ, "dQ");
    expect_close(K.grad(), want.dK, "dK");
    expect_close(V.grad(), want.dV, "dV");
  }
}

TEST(Attention, Float32BackwardFromRecomputedPEqualsBackwardFromKeptP) {
  const Problem p = make_merged_problem(2, 2, 16, 16, 16, 8, 66);  // S > dv: P recomputed
  AttnMask mask = key_padding({2, 16}, std::vector<uint8_t>(32, 1));
  mask.key_padding[5] = mask.key_padding[20] = 0;
  mask.causal = true;
  auto run = [&](bool keep) {
    Var<float> Q = leaf<float>(p.Q), K = leaf<float>(p.K), V = leaf<float>(p.V);
    Tensor<float> P;
    Var<float> O = multi_head_attention(Q, K, V, 2, mask, keep ? &P : nullptr);
    Tensor<float> g = Tensor<float>::empty(O.shape());
    for (int64_t i = 0; i < g.numel(); ++i) g[i] = std::cos(0.61f * float(i));
    O.backward(g);
    return std::vector<std::vector<float>>{O.value().to_vector(), Q.grad().to_vector(),
                                           K.grad().to_vector(), V.grad().to_vector()};
  };
  EXPECT_EQ(run(false), run(true));
}

TEST(Attention, KeepsPOnlyWhenAskedForOrNoLargerThanO) {
  const Problem p = make_merged_problem(2, 2, 4, 4, 3, 3, 49);  // S = 4 keys > dv = 3
  auto kept = [](const Var<double>& O) {
    int64_t n = 0;
    for (const Tensor<double>& s : O.node()->saved) n += s.defined() ? s.numel() : 0;
    return n;
  };
  EXPECT_EQ(kept(multi_head_attention(p.Q, p.K, p.V, 2, causal())), 0);
  EXPECT_EQ(
      kept(multi_head_attention(p.Q, p.K, p.V, 2, key_padding({2, 4}, {1, 1, 1, 0, 1, 1, 0, 0}))),
      2 * 4);  // the key padding, to recompute P with
  Tensor<double> P;
  EXPECT_EQ(kept(multi_head_attention(p.Q, p.K, p.V, 2, causal(), &P)), 2 * 2 * 4 * 4);
  // S = 4 ≤ dv = 5: P [2, 2, 4, 4] is no larger than O [2, 4, 2·5], so it is kept unasked, and
  // the key padding is not (nothing is recomputed).
  const Problem wide = make_merged_problem(2, 2, 4, 4, 3, 5, 50);
  EXPECT_EQ(kept(multi_head_attention(wide.Q, wide.K, wide.V, 2, causal())), 2 * 2 * 4 * 4);
  EXPECT_EQ(kept(multi_head_attention(wide.Q, wide.K, wide.V, 2,
                                      key_padding({2, 4}, {1, 1, 1, 0, 1, 1, 0, 0}))),
            2 * 2 * 4 * 4);
}

TEST(Attention, MultiHeadShapeErrorsNameTheOp) {
  Rng rng(47);
  auto Q = randn({2, 3, 6}, rng), K = randn({2, 4, 6}, rng), V = randn({2, 4, 5}, rng);
  EXPECT_EQ(error_of([&] { multi_head_attention(Q, K, V, 2); }),
            "multi_head_attention: 2 heads do not divide the features of Q [2, 3, 6], K [2, 4, 6] "
            "and V [2, 4, 5]");
  auto Q4 = randn({2, 2, 3, 3}, rng);
  EXPECT_EQ(error_of([&] { multi_head_attention(Q4, K, K, 2); }),
            "multi_head_attention: Q must have shape [B, T, H·d], got [2, 2, 3, 3]");
}

TEST(Attention, ComposedGradcheckCausal) {
  Problem p = make_problem(1, 2, 3, 3, 2, 2, 38);
  EXPECT_GRADCHECK(gradcheck([&] { return attention_composed(p.Q, p.K, p.V, causal()); },
                             {{"Q", p.Q}, {"K", p.K}, {"V", p.V}}));
}

TEST(Attention, ComposedShapeErrorsNameTheComposedOp) {
  Rng rng(39);
  Var<double> Q = randn({2, 2, 3, 4}, rng), K = randn({2, 2, 5, 3}, rng),
              V = randn({2, 2, 5, 6}, rng);
  EXPECT_EQ(error_of([&] { attention_composed(Q, K, V); }),
            "attention_composed: Q [2, 2, 3, 4] and K [2, 2, 5, 3] differ in head size d (4 vs 3)");
}

// ---- errors ----------------------------------------------------------------------------------

TEST(Attention, ShapeErrorsNameTheOpAndShapes) {
  Rng rng(26);
  Var<double> Q = randn({2, 2, 3, 4}, rng), K = randn({2, 2, 5, 3}, rng),
              V = randn({2, 2, 5, 6}, rng);
  EXPECT_EQ(error_of([&] { scaled_dot_product_attention(Q, K, V); }),
            "scaled_dot_product_attention: Q [2, 2, 3, 4] and K [2, 2, 5, 3] differ in head size "
            "d (4 vs 3)");
  Var<double> K4 = randn({2, 2, 5, 4}, rng), V7 = randn({2, 2, 7, 6}, rng);
  EXPECT_EQ(error_of([&] { scaled_dot_product_attention(Q, K4, V7); }),
            "scaled_dot_product_attention: K [2, 2, 5, 4] and V [2, 2, 7, 6] differ in key count "
            "S (5 vs 7)");
  Var<double> K1 = randn({2, 1, 5, 4}, rng);
  EXPECT_EQ(error_of([&] { scaled_dot_product_attention(Q, K1, V); }),
            "scaled_dot_product_attention: Q [2, 2, 3, 4] and K [2, 1, 5, 4] differ in batch or "
            "heads [B, H]");
  Var<double> Q3 = randn({2, 3, 4}, rng);
  EXPECT_EQ(error_of([&] { scaled_dot_product_attention(Q3, K4, V); }),
            "scaled_dot_product_attention: Q must have shape [B, H, T, d], got [2, 3, 4]");
}

TEST(Attention, MaskShapeErrorsNameTheOpAndShapes) {
  Problem p = make_problem(2, 2, 3, 5, 4, 4, 27);
  EXPECT_EQ(error_of([&] {
              scaled_dot_product_attention(p.Q, p.K, p.V, key_padding({2, 3}, {1, 1, 1, 1, 1, 1}));
            }),
            "scaled_dot_product_attention: key_padding mask has shape [2, 3], expected [B, S] = "
            "[2, 5]");
  EXPECT_EQ(
      error_of([&] {
        scaled_dot_product_attention(p.Q, p.K, p.V, AttnMask{false, {}, BoolTensor({5, 3}, 1)});
      }),
      "scaled_dot_product_attention: allowed mask of shape [5, 3] does not broadcast to "
      "[B, H, T, S] = [2, 2, 3, 5]");
  EXPECT_EQ(error_of([&] {
              scaled_dot_product_attention(p.Q, p.K, p.V,
                                           AttnMask{false, {}, BoolTensor({3, 2, 3, 5}, 1)});
            }),
            "scaled_dot_product_attention: allowed mask of shape [3, 2, 3, 5] does not broadcast "
            "to [B, H, T, S] = [2, 2, 3, 5]");
}

// ---- a wrong backward must be caught ---------------------------------------------------------

// The fused forward, with a backward that forgets the softmax's rowsum term: dS = P ⊙ dP instead
// of P ⊙ (dP − rowsum(dP ⊙ P)). dV is still right; dQ and dK are not.
Var<double> attention_without_rowsum(const Var<double>& Q, const Var<double>& K,
                                     const Var<double>& V) {
  Tensor<double> P, O;
  {
    NoGradGuard no_grad;
    O = scaled_dot_product_attention(Q, K, V, {}, &P).value();
  }
  Var<double> out =
      make_result<double>(O, {&Q, &K, &V}, "attention_no_rowsum", [](Node<double>& n) {
        const Tensor<double>&q = n.input_value(0), &k = n.input_value(1), &v = n.input_value(2);
        const int64_t BH = q.size(0) * q.size(1), T = q.size(2), d = q.size(3), S = k.size(2),
                      dv = v.size(3);
        const double c = 1 / std::sqrt(double(d));
        for (int64_t bh = 0; bh < BH; ++bh) {
          ConstRowsMap<double> P(n.saved[0].data() + bh * T * S, T, S);
          ConstRowsMap<double> dO(n.grad.data() + bh * T * dv, T, dv);
          ConstRowsMap<double> Qi(q.data() + bh * T * d, T, d), Ki(k.data() + bh * S * d, S, d);
          ConstRowsMap<double> Vi(v.data() + bh * S * dv, S, dv);
          const Mat<double> dS = P.cwiseProduct(dO * Vi.transpose());  // bug: no − rowsum(dP ⊙ P)
          if (Tensor<double>* g = n.input_grad(0))
            RowsMap<double>(g->data() + bh * T * d, T, d) += c * dS * Ki;
          if (Tensor<double>* g = n.input_grad(1))
            RowsMap<double>(g->data() + bh * S * d, S, d) += c * dS.transpose() * Qi;
          if (Tensor<double>* g = n.input_grad(2))
            RowsMap<double>(g->data() + bh * S * dv, S, dv) += P.transpose() * dO;
        }
      });
  if (records(out)) out.node()->saved[0] = P;
  return out;
}

TEST(Attention, GradcheckCatchesABackwardWithoutTheRowsumTerm) {
  Problem p = make_problem(2, 2, 3, 4, 3, 3, 28);
  GradcheckReport r = gradcheck([&] { return attention_without_rowsum(p.Q, p.K, p.V); },
                                {{"Q", p.Q}, {"K", p.K}, {"V", p.V}});
  EXPECT_FALSE(r.ok) << r.table();
  ASSERT_EQ(r.inputs.size(), 3u);
  EXPECT_FALSE(r.inputs[0].ok) << r.table();  // dQ wrong
  EXPECT_FALSE(r.inputs[1].ok) << r.table();  // dK wrong
  EXPECT_TRUE(r.inputs[2].ok) << r.table();   // dV right: the harness itself is sound
}

}  // namespace
}  // namespace qkv
