// Model: canonical names, initialisation, float/double agreement, masks, attention maps,
// dropout state, and one SGD step.
#include <cmath>
#include <map>

#include "nn/model.h"
#include "nn_test_util.h"

namespace qkv {
namespace {

using testing::error_of;
using testing::tiny;
using testing::tiny_batch;

std::vector<std::pair<std::string, Shape>> names_and_shapes(const Module<double>& m) {
  std::vector<std::pair<std::string, Shape>> out;
  for (const auto& [name, p] : m.named_parameters()) out.emplace_back(name, p.shape());
  return out;
}

bool has(const std::vector<std::pair<std::string, Shape>>& list, const std::string& name) {
  for (const auto& [n, s] : list)
    if (n == name) return true;
  return false;
}

TEST(Model, NamedParametersEqualParamShapesForEveryVariant) {
  testing::for_each_variant([](const ModelConfig& c, const std::string& arch,
                               const std::string& norm, const std::string& pos, bool tied) {
    const std::string what = fmt::format("{} {} {} tied={}", arch, norm, pos, tied);
    Model<double> model(c, 1);
    const auto list = names_and_shapes(model);
    EXPECT_EQ(list, param_shapes(c)) << what;
    EXPECT_EQ(model.num_parameters(), param_count(c)) << what;
    const std::string p = arch == "seq2seq" ? "dec." : "";
    EXPECT_EQ(has(list, p + "ln_f.weight"), norm == "pre") << what;
    EXPECT_EQ(has(list, p + "head.weight"), !tied) << what;
    EXPECT_EQ(has(list, p + "pos_emb.weight"), pos == "learned") << what;
    EXPECT_EQ(has(list, p + "blocks.1.ln1.weight"), norm != "none") << what;
    EXPECT_EQ(has(list, "dec.blocks.1.xattn.W_O.weight"), p == "dec.") << what;
    EXPECT_EQ(has(list, "dec.blocks.1.ln_x.bias"), p == "dec." && norm != "none") << what;
    EXPECT_EQ(has(list, "enc.ln_f.bias"), p == "dec." && norm == "pre") << what;
    EXPECT_FALSE(has(list, "enc.head.weight")) << what;
  });
}

TEST(Model, InitialisationFollowsGPT2) {
  ModelConfig c = tiny("decoder", 4);
  c.d_model = 64;
  c.n_heads = 4;
  c.d_ff = 256;
  c.vocab_size = 200;
  c.max_len = 64;
  Model<double> model(c, 42);
  const double resid = 0.02 / std::sqrt(2.0 * 4);
  for (const auto& [name, p] : model.named_parameters()) {
    const Tensor<double>& v = p.value();
    const bool is_bias = name.size() > 5 && name.substr(name.size() - 5) == ".bias";
    if (name.find("ln") != std::string::npos) {
      for (double x : v) EXPECT_EQ(x, is_bias ? 0.0 : 1.0) << name;
    } else if (is_bias) {
      for (double x : v) EXPECT_EQ(x, 0.0) << name;
    } else {
      double mean = 0, sq = 0;
      for (double x : v) mean += x;
      mean /= static_cast<double>(v.numel());
      for (double x : v) sq += (x - mean) * (x - mean);
      const double sd = std::sqrt(sq / static_cast<double>(v.numel()));
      const bool scaled = name.find("W_O.weight") != std::string::npos ||
                          name.find("fc2.weight") != std::string::npos;
      const double want = scaled ? resid : 0.02;
      // Relative error of a sample std over n draws is about 1/√(2n): 4096 → 1.1%; allow 10%.
      EXPECT_NEAR(sd, want, 0.1 * want) << name;
      EXPECT_NEAR(mean, 0.0, 0.2 * want) << name;
    }
  }
}

TEST(Model, SameSeedSameModelInFloatAndDouble) {
  for (const char* arch : {"encoder", "decoder", "seq2seq"}) {
    const ModelConfig c = tiny(arch, 2);
    Model<float> f(c, 7);
    Model<double> d(c, 7);
    Model<double> d2(c, 7);
    Model<double> other(c, 8);
    const auto fp = f.named_parameters();
    const auto dp = d.named_parameters();
    const auto dp2 = d2.named_parameters();
    const auto op = other.named_parameters();
    ASSERT_EQ(fp.size(), dp.size());
    bool differs = false;
    for (size_t i = 0; i < fp.size(); ++i) {
      ASSERT_EQ(fp[i].first, dp[i].first);
      for (int64_t k = 0; k < fp[i].second.numel(); ++k) {
        EXPECT_EQ(fp[i].second.value()[k], static_cast<float>(dp[i].second.value()[k]))
            << fp[i].first;
        EXPECT_EQ(dp2[i].second.value()[k], dp[i].second.value()[k]);
        differs = differs || op[i].second.value()[k] != dp[i].second.value()[k];
      }
    }
    EXPECT_TRUE(differs) << arch;
    EXPECT_EQ(f.dropout_rng_state(), d.dropout_rng_state());
    // The same batch gives the same loss to float precision.
    const Batch b = tiny_batch(c);
    EXPECT_NEAR(f.forward(b).loss.item(), d.forward(b).loss.item(), 1e-5) << arch;
  }
}

TEST(Model, ConvertFloatModelToDouble) {
  const ModelConfig c = tiny("seq2seq");
  Model<float> f(c, 3);
  testing::randomize(f, 4);
  f.eval();
  Model<double> d = convert_model<double>(f);
  EXPECT_FALSE(d.training());
  EXPECT_EQ(d.config(), f.config());
  const auto fp = f.named_parameters();
  const auto dp = d.named_parameters();
  for (size_t i = 0; i < fp.size(); ++i)
    for (int64_t k = 0; k < fp[i].second.numel(); ++k)
      EXPECT_EQ(dp[i].second.value()[k], static_cast<double>(fp[i].second.value()[k]));
  const Batch b = tiny_batch(c);
  const double lf = f.forward(b).loss.item(), ld = d.forward(b).loss.item();
  EXPECT_NEAR(lf, ld, 1e-5 * std::abs(ld));
}

TEST(Model, OutputShapesAndLosses) {
  for (const char* arch : {"encoder", "decoder", "seq2seq"}) {
    const ModelConfig c = tiny(arch);
    Model<double> m(c, 1);
    const Batch b = tiny_batch(c);
    ForwardResult<double> r = m.forward(b);
    if (std::string(arch) == "encoder") {
      EXPECT_EQ(r.logits.shape(), (Shape{2, 3}));
    } else {
      EXPECT_EQ(r.logits.shape(), (Shape{2, 5, 11}));
    }
    ASSERT_TRUE(r.loss.defined());
    EXPECT_EQ(r.loss.shape(), Shape{});
    // A fresh model predicts nearly uniformly: the loss is close to log(classes).
    EXPECT_NEAR(r.loss.item(), std::log(std::string(arch) == "encoder" ? 3.0 : 11.0), 0.1);
    EXPECT_TRUE(r.attention.empty());
    Batch no_targets = b;
    no_targets.targets = IndexTensor();
    EXPECT_FALSE(m.forward(no_targets).loss.defined());
  }
}

TEST(Model, DecoderLossIsTheMeanOverNonIgnoredTargets) {
  const ModelConfig c = tiny("decoder");
  Model<double> m(c, 2);
  testing::randomize(m, 3);
  const Batch b = tiny_batch(c);
  ForwardResult<double> r = m.forward(b);
  const Tensor<double>& z = r.logits.value();
  double total = 0;
  int n = 0;
  for (int64_t i = 0; i < 10; ++i) {
    if (b.targets[i] < 0) continue;
    double mx = -1e300, s = 0;
    for (int v = 0; v < 11; ++v) mx = std::max(mx, z[i * 11 + v]);
    for (int v = 0; v < 11; ++v) s += std::exp(z[i * 11 + v] - mx);
    total += mx + std::log(s) - z[i * 11 + b.targets[i]];
    ++n;
  }
  EXPECT_EQ(n, 7);  // two padded positions and one real one (example 0, position 1) ignored
  EXPECT_NEAR(r.loss.item(), total / n, 1e-12);
}

TEST(Model, BatchErrorsAreClear) {
  const ModelConfig c = tiny("encoder");
  Model<float> m(c, 1);
  Batch b = tiny_batch(c);
  b.positions[1] = 5;
  EXPECT_EQ(error_of([&] { m.forward(b); }),
            "Model: read-out position 5 of example 1 is outside [0, 5)");
  b = tiny_batch(c);
  b.mask = BoolTensor({2, 4});
  EXPECT_EQ(error_of([&] { m.forward(b); }), "Model: batch mask has shape [2, 4], expected [2, 5]");
  Model<float> dec(tiny("decoder"), 1);
  Batch longer;
  longer.tokens = IndexTensor({1, 7});
  EXPECT_EQ(error_of([&] { dec.forward(longer); }),
            "LearnedPositional: sequence length 7 exceeds max_len 6");
}

// Padding keys are hidden: appending padding (any ids) leaves an encoder's logits unchanged.
TEST(Model, EncoderPaddingDoesNotChangeLogits) {
  for (const char* norm : {"pre", "post"}) {
    ModelConfig c = tiny("encoder", 2);
    c.norm = norm;
    Model<double> m(c, 5);
    testing::randomize(m, 6);
    Batch plain;
    plain.tokens = IndexTensor({1, 4}, {3, 1, 4, 1});
    plain.positions = IndexTensor({1}, {2});
    Batch padded;
    padded.tokens = IndexTensor({1, 6}, {3, 1, 4, 1, 9, 7});
    padded.mask = BoolTensor({1, 6}, {1, 1, 1, 1, 0, 0});
    padded.positions = IndexTensor({1}, {2});
    const Tensor<double> a = m.forward(plain).logits.value();
    const Tensor<double> b = m.forward(padded).logits.value();
    for (int k = 0; k < 3; ++k) EXPECT_NEAR(a[k], b[k], 1e-12) << norm;
    // Without the mask the padding is seen, and the logits move.
    padded.mask = BoolTensor();
    const Tensor<double> seen = m.forward(padded).logits.value();
    EXPECT_GT(std::abs(seen[0] - a[0]) + std::abs(seen[1] - a[1]), 1e-6) << norm;
  }
}

// Causality: a later token cannot change an earlier position's logits.
TEST(Model, DecoderIsCausal) {
  for (const char* arch : {"decoder", "seq2seq"}) {
    const ModelConfig c = tiny(arch, 2);
    Model<double> m(c, 8);
    testing::randomize(m, 9);
    Batch b = tiny_batch(c);
    b.mask = BoolTensor();
    const Tensor<double> before = m.forward(b).logits.value();
    b.tokens[3] = (b.tokens[3] + 1) % 11;  // example 0, position 3
    const Tensor<double> after = m.forward(b).logits.value();
    for (int t = 0; t < 5; ++t) {
      double diff = 0;
      for (int v = 0; v < 11; ++v) diff += std::abs(after[t * 11 + v] - before[t * 11 + v]);
      if (t < 3) {
        EXPECT_LT(diff, 1e-12) << arch << " position " << t;
      } else {
        EXPECT_GT(diff, 1e-6) << arch << " position " << t;
      }
    }
    for (int i = 55; i < 110; ++i) EXPECT_EQ(after[i], before[i]) << "example 1 is untouched";
  }
}

// A padded source token cannot reach the decoder through cross-attention.
TEST(Model, Seq2seqSourcePaddingIsHidden) {
  const ModelConfig c = tiny("seq2seq", 2);
  Model<double> m(c, 10);
  testing::randomize(m, 11);
  Batch b = tiny_batch(c);
  const Tensor<double> before = m.forward(b).logits.value();
  b.src[7] = (b.src[7] + 5) % 13;  // example 1's padded source position
  const Tensor<double> after = m.forward(b).logits.value();
  for (int64_t i = 0; i < before.numel(); ++i) EXPECT_NEAR(after[i], before[i], 1e-12);
  b.src[6] = (b.src[6] + 5) % 13;  // a real one does change them
  const Tensor<double> real = m.forward(b).logits.value();
  double diff = 0;
  for (int64_t i = 55; i < 110; ++i) diff += std::abs(real[i] - before[i]);
  EXPECT_GT(diff, 1e-6);
}

TEST(Model, AttentionMapsByModulePathWithRowsSummingToOne) {
  const std::map<std::string, std::vector<std::string>> expected = {
      {"encoder", {"blocks.0.attn", "blocks.1.attn"}},
      {"decoder", {"blocks.0.attn", "blocks.1.attn"}},
      {"seq2seq",
       {"enc.blocks.0.attn", "enc.blocks.1.attn", "dec.blocks.0.attn", "dec.blocks.0.xattn",
        "dec.blocks.1.attn", "dec.blocks.1.xattn"}}};
  for (const auto& [arch, paths] : expected) {
    const ModelConfig c = tiny(arch, 2);
    Model<double> m(c, 12);
    testing::randomize(m, 13);
    const Batch b = tiny_batch(c);
    ForwardResult<double> r = m.forward(b, /*keep_attention=*/true);
    std::vector<std::string> got;
    for (const AttentionMap<double>& a : r.attention) got.push_back(a.path);
    ASSERT_EQ(got, paths) << arch;
    for (size_t i = 0; i < r.attention.size(); ++i) {
      const AttentionMap<double>& a = r.attention[i];
      const std::string& path = a.path;
      const Tensor<double>& P = a.P;
      // Roles are tagged where the model is built; here they are checked against the paths.
      const bool source_side = path.rfind("enc.", 0) == 0;
      const bool cross = path.find("xattn") != std::string::npos;
      EXPECT_EQ(a.role.kind, cross ? AttnKind::kCross : AttnKind::kSelf) << path;
      const bool encoder_stack = source_side || arch == "encoder";
      EXPECT_EQ(a.role.stack, encoder_stack ? AttnStack::kEncoder : AttnStack::kDecoder) << path;
      EXPECT_EQ(a.role.layer, path.find("blocks.1.") != std::string::npos ? 1 : 0) << path;
      const int64_t T = source_side ? 4 : 5, S = source_side || cross ? 4 : 5;
      ASSERT_EQ(P.shape(), (Shape{2, 2, T, S})) << path;
      const BoolTensor& keys = source_side || cross ? b.src_mask : b.mask;
      const bool causal = arch != "encoder" && !source_side && !cross;
      for (int bb = 0; bb < 2; ++bb)
        for (int h = 0; h < 2; ++h)
          for (int t = 0; t < T; ++t) {
            double s = 0;
            for (int k = 0; k < S; ++k) {
              const double p = P[((bb * 2 + h) * T + t) * S + k];
              s += p;
              if (!keys[bb * S + k] || (causal && k > t)) {
                EXPECT_EQ(p, 0.0) << path;
              }
            }
            EXPECT_NEAR(s, 1.0, 1e-12) << path << " b" << bb << " h" << h << " t" << t;
          }
    }
    EXPECT_EQ(&r.attention_map(paths.back()), &r.attention.back().P);
  }
  Model<double> m(tiny("decoder"), 1);
  ForwardResult<double> r = m.forward(tiny_batch(tiny("decoder")), true);
  EXPECT_EQ(error_of([&] { r.attention_map("blocks.7.attn"); }),
            "no attention map 'blocks.7.attn' (known: blocks.0.attn; forward with "
            "keep_attention = true)");
}

TEST(Model, DropoutIsOffInEvalAndResumesExactlyInTraining) {
  ModelConfig c = tiny("decoder", 2);
  c.dropout = 0.3;
  ModelConfig no_drop = c;
  no_drop.dropout = 0;
  Model<double> m(c, 14);
  Model<double> ref(no_drop, 14);
  const Batch b = tiny_batch(c);
  m.eval();
  EXPECT_EQ(m.forward(b).loss.item(), ref.forward(b).loss.item());
  m.train();
  const Rng::State state = m.dropout_rng_state();
  const double first = m.forward(b).loss.item();
  const double second = m.forward(b).loss.item();
  EXPECT_NE(first, second);  // fresh masks
  EXPECT_NE(first, ref.forward(b).loss.item());
  m.set_dropout_rng_state(state);
  EXPECT_EQ(m.forward(b).loss.item(), first);  // the same masks again
  EXPECT_EQ(m.forward(b).loss.item(), second);
}

TEST(Model, OneSGDStepLowersTheLoss) {
  for (const char* arch : {"encoder", "decoder", "seq2seq"}) {
    const ModelConfig c = tiny(arch, 2);
    Model<float> m(c, 15);
    const Batch b = tiny_batch(c);
    ForwardResult<float> r = m.forward(b);
    const float before = r.loss.item();
    m.zero_grad();
    r.loss.backward();
    for (auto& [name, p] : m.named_parameters()) {
      ASSERT_TRUE(p.grad().defined()) << arch << " " << name << " got no gradient";
      p.value().vec() -= 0.1f * p.grad().vec();
    }
    const float after = m.forward(b).loss.item();
    EXPECT_LT(after, before) << arch;
  }
}

}  // namespace
}  // namespace qkv
