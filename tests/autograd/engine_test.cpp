#include "test_util.h"

namespace qkv {
namespace {

using testing::randn;

// A deliberately wrong op: forward y = x², backward claims dy/dx = x (the right one is 2x).
Var<double> wrong_square(const Var<double>& x) {
  Tensor<double> y = x.value().clone();
  y.vec() = y.vec().array().square().matrix();
  return make_result<double>(y, {&x}, "wrong_square", [](Node<double>& o) {
    if (Tensor<double>* dx = o.input_grad(0))
      dx->vec().array() += o.grad.vec().array() * o.input_value(0).vec().array();  // bug: no 2
  });
}

TEST(Gradcheck, CatchesAWrongBackward) {
  Rng rng(11);
  auto x = randn({3, 4}, rng);
  GradcheckReport r = gradcheck([&] { return wrong_square(x); }, {x});
  EXPECT_FALSE(r.ok) << r.table();
  ASSERT_EQ(r.inputs.size(), 1u);
  EXPECT_FALSE(r.inputs[0].ok);
  // At the worst entry analytic is x and numeric is 2x: they must differ by half the numeric.
  EXPECT_NEAR(r.inputs[0].analytic * 2, r.inputs[0].numeric, 1e-6);
  EXPECT_NE(r.table().find("FAIL"), std::string::npos);
}

TEST(Gradcheck, FastModeCatchesAWrongBackward) {
  Rng rng(12);
  auto x = randn({30, 30}, rng);
  GradcheckOptions o;
  o.fast = true;
  GradcheckReport r = gradcheck([&] { return wrong_square(x); }, {{"x", x}}, o);
  EXPECT_FALSE(r.ok) << r.table();
}

TEST(Gradcheck, RestoresInputsAndZeroesGrads) {
  Rng rng(13);
  auto x = randn({2, 3}, rng);
  Tensor<double> before = x.value().clone();
  EXPECT_GRADCHECK(gradcheck([&] { return softmax(x); }, {x}));
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_EQ(x.value()[i], before[i]);
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_EQ(x.grad()[i], 0.0);
}

TEST(Engine, ValueUsedTwiceAccumulatesBothContributions) {
  // a = softmax(x) feeds two consumers, b = softmax(a) and c = log_softmax(a), summed by a
  // hand-written op: dL/da must be the sum of both paths.
  Rng rng(14);
  auto x = randn({1, 4}, rng);
  auto f = [&] {
    Var<double> a = softmax(x);
    Var<double> b = softmax(a);
    Var<double> c = log_softmax(a);
    Tensor<double> v = b.value().clone();
    v.add_(c.value());
    return make_result<double>(v, {&b, &c}, "sum2", [](Node<double>& o) {
      for (size_t i = 0; i < 2; ++i)
        if (Tensor<double>* d = o.input_grad(i)) d->add_(o.grad);
    });
  };
  EXPECT_GRADCHECK(gradcheck(f, {x}));
  // Dropping either path's contribution must be caught.
  auto one_path = [&] {
    Var<double> a = softmax(x);
    Var<double> b = softmax(a);
    Var<double> c = log_softmax(a);
    Tensor<double> v = b.value().clone();
    v.add_(c.value());
    return make_result<double>(v, {&b, &c}, "sum2_wrong", [](Node<double>& o) {
      if (Tensor<double>* d = o.input_grad(0)) d->add_(o.grad);
    });
  };
  EXPECT_FALSE(gradcheck(one_path, {x}).ok);
}

TEST(Engine, SecondBackwardThroughFreedGraphIsAnError) {
  Rng rng(15);
  auto x = randn({2, 3}, rng);
  Var<double> y = softmax(x);
  Tensor<double> g = Tensor<double>::full({2, 3}, 1.0);
  y.backward(g);
  try {
    y.backward(g);
    FAIL() << "second backward did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("retain_graph"), std::string::npos) << e.what();
  }
}

TEST(Engine, RetainGraphAllowsASecondBackwardAndAccumulates) {
  Rng rng(16);
  auto x = randn({2, 3}, rng);
  Var<double> y = log_softmax(x);
  Tensor<double> g = Tensor<double>::full({2, 3}, 0.5);
  g[0] = 2.0;
  y.backward(g, /*retain_graph=*/true);
  Tensor<double> once = x.grad().clone();
  y.backward(g);
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_DOUBLE_EQ(x.grad()[i], 2 * once[i]);
}

TEST(Engine, TemporaryIntermediatesSurviveTheSweep) {
  // Intermediates held only by their consumers: freeing the graph during the sweep destroyed them
  // while still queued, a use-after-free that corrupted the leaves' values through the pool.
  Rng rng(20);
  auto a = randn({3, 4}, rng), b = randn({3, 4}, rng);
  const Tensor<double> a0 = a.value().clone(), b0 = b.value().clone();
  sum(gelu(tanh(a * b) / exp(b))).backward();
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_EQ(a.value()[i], a0[i]);
  for (int64_t i = 0; i < b.numel(); ++i) EXPECT_EQ(b.value()[i], b0[i]);
  // Same gradients as with every intermediate kept alive in a named variable.
  const Tensor<double> da = a.grad().clone(), db = b.grad().clone();
  a.zero_grad();
  b.zero_grad();
  Var<double> p = a * b, t = tanh(p), e = exp(b), q = t / e, g = gelu(q), s = sum(g);
  s.backward();
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_EQ(da[i], a.grad()[i]);
  for (int64_t i = 0; i < b.numel(); ++i) EXPECT_EQ(db[i], b.grad()[i]);
}

TEST(Engine, NonScalarBackwardNeedsUpstream) {
  Rng rng(17);
  auto x = randn({2, 3}, rng);
  EXPECT_THROW(softmax(x).backward(), Error);
}

TEST(Engine, NoGradGuardRecordsNothing) {
  Rng rng(18);
  auto x = randn({2, 3}, rng);
  NoGradGuard guard;
  Var<double> y = softmax(x);
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(y.is_leaf());
  EXPECT_THROW(y.backward(Tensor<double>::full({2, 3}, 1.0)), Error);
}

TEST(Engine, InputsWithoutRequiresGradGetNoGradient) {
  Rng rng(19);
  auto x = randn({2, 3}, rng, /*requires_grad=*/false);
  Var<double> y = softmax(x);
  EXPECT_FALSE(y.requires_grad());
  EXPECT_FALSE(x.grad().defined());
}

TEST(Engine, LongChainDoesNotOverflowTheStack) {
  Var<double> x(Tensor<double>::full({1, 2}, 0.1), true);
  Var<double> y = x;
  for (int i = 0; i < 100000; ++i) y = softmax(y);
  y.backward(Tensor<double>::full({1, 2}, 1.0));
  EXPECT_TRUE(x.grad().all_finite());
}

}  // namespace
}  // namespace qkv
