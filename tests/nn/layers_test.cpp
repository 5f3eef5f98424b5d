// Layers: values against hand-computed numbers, attention maps, layer-level gradchecks.
#include <cmath>
#include <memory>

#include "nn/layers.h"
#include "nn_test_util.h"

namespace qkv {
namespace {

using testing::error_of;

using testing::randn;

/// Draws every parameter of m from N(0, std) (LayerNorm weights too: any value is a fair test).
void randomize(Module<double>& m, Rng& rng, double std = 0.5) {
  for (auto& [name, p] : m.named_parameters())
    for (double& x : p.value()) x = rng.normal(0, std);
}

using testing::gradcheck_inputs;

TEST(Linear, ComputesXWTransposePlusB) {
  Linear<double> lin(2, 3);
  EXPECT_EQ(lin.weight.shape(), (Shape{3, 2}));
  EXPECT_EQ(lin.bias.shape(), (Shape{3}));
  lin.weight.value() = Tensor<double>::from({3, 2}, {1, 2, 3, 4, 5, 6});
  lin.bias.value() = Tensor<double>::from({3}, {0.5, -1, 2});
  Var<double> x(Tensor<double>::from({1, 2}, {1, -1}));
  Tensor<double> y = lin.forward(x).value();
  EXPECT_EQ(y.shape(), (Shape{1, 3}));
  EXPECT_DOUBLE_EQ(y[0], 1 - 2 + 0.5);
  EXPECT_DOUBLE_EQ(y[1], 3 - 4 - 1);
  EXPECT_DOUBLE_EQ(y[2], 5 - 6 + 2);
  Linear<double> no_bias(2, 3, /*with_bias=*/false);
  EXPECT_FALSE(no_bias.bias.defined());
  EXPECT_EQ(no_bias.named_parameters().size(), 1u);
}

TEST(SinusoidalPositional, MatchesHandComputedValues) {
  SinusoidalPositional<double> pe(3, 6);
  const Tensor<double>& t = pe.table();
  ASSERT_EQ(t.shape(), (Shape{3, 6}));
  // Row 0: sin 0 = 0, cos 0 = 1.
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t[i], i % 2 ? 1.0 : 0.0);
  // PE[p, 2i] = sin(p / 10000^(2i/6)), PE[p, 2i+1] = cos(same); values from Python's math.
  const double row1[6] = {0.8414709848078965, 0.5403023058681398,    0.046399223464731285,
                          0.9989229760406304, 0.0021544330233656045, 0.9999976792064809};
  const double row2[6] = {0.9092974268256817, -0.4161468365471424,   0.09269850077872725,
                          0.9956942241237399, 0.0043088560467428125, 0.9999907168366957};
  for (int i = 0; i < 6; ++i) {
    EXPECT_NEAR(t[6 + i], row1[i], 1e-15) << i;
    EXPECT_NEAR(t[12 + i], row2[i], 1e-15) << i;
  }
  // The module adds the first T rows to every example and has no parameters.
  EXPECT_TRUE(pe.named_parameters().empty());
  Var<double> x(Tensor<double>::zeros({2, 2, 6}));
  Tensor<double> y = pe.forward(x).value();
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 12; ++i) EXPECT_EQ(y[b * 12 + i], t[i]);
  EXPECT_EQ(error_of([&] {
              pe.forward(Var<double>(Tensor<double>::zeros({1, 4, 6})));
            }),
            "SinusoidalPositional: sequence length 4 exceeds max_len 3");
  // Float rounds the same double values.
  SinusoidalPositional<float> pf(3, 6);
  for (int i = 0; i < 18; ++i) EXPECT_EQ(pf.table()[i], static_cast<float>(t[i]));
}

TEST(LearnedPositional, AddsItsRows) {
  LearnedPositional<double> pos(4, 2);
  pos.weight.value() = Tensor<double>::from({4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  Var<double> x(Tensor<double>::full({2, 3, 2}, 10.0));
  Tensor<double> y = pos.forward(x).value();
  const double expected[6] = {11, 12, 13, 14, 15, 16};
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 6; ++i) EXPECT_EQ(y[b * 6 + i], expected[i]);
  EXPECT_EQ(error_of([&] {
              pos.forward(Var<double>(Tensor<double>::zeros({1, 5, 2})));
            }),
            "LearnedPositional: sequence length 5 exceeds max_len 4");
}

TEST(LayerNorm, OnesAndZerosAndItsEps) {
  LayerNorm<double> ln(4, 0.5);
  for (double w : ln.weight.value()) EXPECT_EQ(w, 1.0);
  for (double b : ln.bias.value()) EXPECT_EQ(b, 0.0);
  Var<double> x(Tensor<double>::from({1, 4}, {1, 2, 3, 4}));
  Tensor<double> y = ln.forward(x).value();
  const double var = 1.25;  // biased variance of 1..4
  EXPECT_NEAR(y[0], (1 - 2.5) / std::sqrt(var + 0.5), 1e-12);
  EXPECT_NEAR(y[3], (4 - 2.5) / std::sqrt(var + 0.5), 1e-12);
}

TEST(Dropout, IdentityInEvalAndScaledInTraining) {
  Rng rng(5);
  Dropout<double> drop(0.5, &rng);
  Var<double> x(Tensor<double>::full({1000}, 1.0));
  drop.eval();
  Tensor<double> y = drop.forward(x).value();
  for (double v : y) EXPECT_EQ(v, 1.0);
  drop.train();
  y = drop.forward(x).value();
  int zeros = 0;
  for (double v : y) {
    EXPECT_TRUE(v == 0.0 || v == 2.0) << v;
    zeros += v == 0.0;
  }
  EXPECT_GT(zeros, 400);
  EXPECT_LT(zeros, 600);
  EXPECT_EQ(error_of([&] { Dropout<double>(1.0, &rng); }), "Dropout: p must be in [0, 1), got 1");
}

TEST(FeedForward, EachActivationMatchesItsComposition) {
  Rng rng(6);
  for (Activation act : {Activation::kGelu, Activation::kRelu, Activation::kGeluTanh}) {
    FeedForward<double> ff(4, 8, act);
    randomize(ff, rng);
    Var<double> x = randn({2, 3, 4}, rng, false);
    Var<double> h = ff.fc1->forward(x);
    h = act == Activation::kRelu   ? relu(h)
        : act == Activation::kGelu ? gelu(h, GeluForm::kErf)
                                   : gelu(h, GeluForm::kTanh);
    Tensor<double> expected = ff.fc2->forward(h).value();
    Tensor<double> y = ff.forward(x).value();
    for (int64_t i = 0; i < y.numel(); ++i) EXPECT_EQ(y[i], expected[i]);
  }
  EXPECT_EQ(error_of([] { parse_activation("swish"); }),
            "activation 'swish' is not one of gelu, relu, gelu_tanh");
}

TEST(Attention, NamesAndHeadCheck) {
  Attention<double> attn(8, 2);
  std::vector<std::string> names;
  for (auto& [name, p] : attn.named_parameters()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"W_Q.weight", "W_Q.bias", "W_K.weight", "W_K.bias",
                                             "W_V.weight", "W_V.bias", "W_O.weight", "W_O.bias"}));
  EXPECT_EQ(error_of([] { Attention<double>(8, 3); }),
            "Attention: d_model (8) must be divisible by n_heads (3)");
}

TEST(Attention, SelfAttentionMapsAreCausalRowsSummingToOne) {
  Rng rng(7);
  Attention<double> attn(8, 2);
  randomize(attn, rng);
  Var<double> x = randn({2, 5, 8}, rng, false);
  AttnMask mask;
  mask.causal = true;
  mask.key_padding = BoolTensor({2, 5}, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0});
  Var<double> y = attn.forward(x, Var<double>(), mask, /*keep_attention=*/true);
  EXPECT_EQ(y.shape(), (Shape{2, 5, 8}));
  const Tensor<double>& P = attn.last_attention();
  ASSERT_EQ(P.shape(), (Shape{2, 2, 5, 5}));
  for (int b = 0; b < 2; ++b)
    for (int h = 0; h < 2; ++h)
      for (int t = 0; t < 5; ++t) {
        double s = 0;
        for (int k = 0; k < 5; ++k) {
          const double p = P[((b * 2 + h) * 5 + t) * 5 + k];
          s += p;
          if (k > t || (b == 1 && k >= 3)) {
            EXPECT_EQ(p, 0.0) << b << h << t << k;
          }
        }
        EXPECT_NEAR(s, 1.0, 1e-12);
      }
  // Without keep_attention the stale map is dropped.
  attn.forward(x, Var<double>(), mask);
  EXPECT_FALSE(attn.last_attention().defined());
}

TEST(Attention, CrossAttentionReadsAMemoryOfAnotherLength) {
  Rng rng(8);
  Attention<double> attn(8, 4);
  randomize(attn, rng);
  Var<double> x = randn({2, 3, 8}, rng, false);
  Var<double> memory = randn({2, 6, 8}, rng, false);
  AttnMask mask;
  mask.key_padding = BoolTensor({2, 6}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0});
  Var<double> y = attn.forward(x, memory, mask, true);
  EXPECT_EQ(y.shape(), (Shape{2, 3, 8}));
  const Tensor<double>& P = attn.last_attention();
  ASSERT_EQ(P.shape(), (Shape{2, 4, 3, 6}));
  for (int64_t row = 0; row < 2 * 4 * 3; ++row) {
    double s = 0;
    for (int k = 0; k < 6; ++k) s += P[row * 6 + k];
    EXPECT_NEAR(s, 1.0, 1e-12);
    if (row >= 12) {
      EXPECT_EQ(P[row * 6 + 4] + P[row * 6 + 5], 0.0);
    }
  }
  EXPECT_EQ(error_of([&] {
              attn.forward(x, randn({2, 6, 4}, rng, false), mask);
            }),
            "Attention '(root)': memory [2, 6, 4] does not match queries [2, 3, 8]");
}

TEST(Attention, GradcheckCrossAttentionAllInputsFloat64) {
  Rng rng(9);
  Attention<double> attn(8, 2);
  randomize(attn, rng);
  Var<double> x = randn({2, 3, 8}, rng);
  Var<double> memory = randn({2, 4, 8}, rng);
  AttnMask mask;
  mask.key_padding = BoolTensor({2, 4}, {1, 1, 1, 1, 1, 1, 0, 1});
  auto inputs = gradcheck_inputs(attn);
  inputs.emplace_back("x", x);
  inputs.emplace_back("memory", memory);
  EXPECT_GRADCHECK(gradcheck([&] { return attn.forward(x, memory, mask); }, inputs));
}

TEST(TransformerBlock, CrossBlockRegistersInCanonicalOrder) {
  BlockOptions o;
  o.d_model = 4;
  o.n_heads = 2;
  o.d_ff = 8;
  o.cross = true;
  TransformerBlock<double> block(o, nullptr);
  std::vector<std::string> modules;
  for (auto& [name, m] : block.children()) modules.push_back(name);
  EXPECT_EQ(modules,
            (std::vector<std::string>{"ln1", "attn", "ln_x", "xattn", "ln2", "ff", "dropout"}));
  o.norm = Norm::kNone;
  o.cross = false;
  TransformerBlock<double> plain(o, nullptr);
  modules.clear();
  for (auto& [name, m] : plain.children()) modules.push_back(name);
  EXPECT_EQ(modules, (std::vector<std::string>{"attn", "ff", "dropout"}));
}

// Each norm placement against its formula, composed from the block's own layers.
TEST(TransformerBlock, NormPlacementsFollowTheirFormulas) {
  Rng rng(10);
  for (Norm norm : {Norm::kPre, Norm::kPost, Norm::kNone}) {
    BlockOptions o;
    o.d_model = 8;
    o.n_heads = 2;
    o.d_ff = 16;
    o.norm = norm;
    TransformerBlock<double> block(o, nullptr);
    randomize(block, rng);
    Var<double> x = randn({2, 4, 8}, rng, false);
    AttnMask m;
    m.causal = true;
    Var<double> expected;
    auto A = [&](const Var<double>& a) { return block.attn->forward(a, Var<double>(), m); };
    auto F = [&](const Var<double>& a) { return block.ff->forward(a); };
    if (norm == Norm::kPre) {
      Var<double> h = x + A(block.ln1->forward(x));
      expected = h + F(block.ln2->forward(h));
    } else if (norm == Norm::kPost) {
      Var<double> h = block.ln1->forward(x + A(x));
      expected = block.ln2->forward(h + F(h));
    } else {
      Var<double> h = x + A(x);
      expected = h + F(h);
    }
    Tensor<double> y = block.forward(x, m).value();
    for (int64_t i = 0; i < y.numel(); ++i) EXPECT_NEAR(y[i], expected.value()[i], 1e-12);
  }
}

TEST(TransformerBlock, GradcheckPostLNCrossBlockFloat64) {
  Rng rng(11);
  BlockOptions o;
  o.d_model = 8;
  o.n_heads = 2;
  o.d_ff = 12;
  o.norm = Norm::kPost;
  o.activation = Activation::kGeluTanh;
  o.cross = true;
  TransformerBlock<double> block(o, nullptr);
  randomize(block, rng);
  Var<double> x = randn({2, 3, 8}, rng);
  Var<double> memory = randn({2, 4, 8}, rng);
  AttnMask self_mask;
  self_mask.causal = true;
  AttnMask cross_mask;
  cross_mask.key_padding = BoolTensor({2, 4}, {1, 1, 1, 1, 1, 1, 1, 0});
  auto inputs = gradcheck_inputs(block);
  inputs.emplace_back("x", x);
  inputs.emplace_back("memory", memory);
  EXPECT_GRADCHECK(
      gradcheck([&] { return block.forward(x, self_mask, memory, cross_mask); }, inputs));
}

}  // namespace
}  // namespace qkv
