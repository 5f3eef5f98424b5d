// Model-level gradchecks: d loss / d every parameter, in float64, with PyTorch's default
// tolerances (eps 1e-6, atol 1e-5, rtol 1e-3), for each architecture over padded batches, each
// norm placement and each activation: gradcheck_model, the check `qkv gradcheck` runs, with its
// parameter scale (randomize_for_gradcheck) and its batch (random_batch).
#include "nn/model.h"
#include "nn_test_util.h"

namespace qkv {
namespace {

using testing::gradcheck_inputs;
using testing::tiny;
using testing::tiny_batch;
using testing::variant;

/// gradcheck_model(config, seed), expecting every parameter checked.
GradcheckReport check(const ModelConfig& config, uint64_t seed) {
  GradcheckReport report = gradcheck_model(config, seed);
  EXPECT_EQ(report.inputs.size(), Model<double>(config, seed).named_parameters().size())
      << "every parameter checked";
  return report;
}

TEST(ModelGradcheck, EncoderPreLNGeluLearned) {
  EXPECT_GRADCHECK(check(variant("encoder", 2, "pre", "gelu", "learned", false), 1));
}

TEST(ModelGradcheck, EncoderPostLNReluSinusoidalTied) {
  EXPECT_GRADCHECK(check(variant("encoder", 2, "post", "relu", "sinusoidal", true), 2));
}

TEST(ModelGradcheck, EncoderNoNormGeluTanh) {
  EXPECT_GRADCHECK(check(variant("encoder", 1, "none", "gelu_tanh", "learned", false), 3));
}

TEST(ModelGradcheck, DecoderPreLNGeluTanhTied) {
  EXPECT_GRADCHECK(check(variant("decoder", 2, "pre", "gelu_tanh", "learned", true), 4));
}

TEST(ModelGradcheck, DecoderPostLNGelu) {
  EXPECT_GRADCHECK(check(variant("decoder", 2, "post", "gelu", "learned", false), 5));
}

TEST(ModelGradcheck, DecoderNoNormReluSinusoidal) {
  EXPECT_GRADCHECK(check(variant("decoder", 1, "none", "relu", "sinusoidal", false), 6));
}

TEST(ModelGradcheck, Seq2seqPreLNGelu) {
  EXPECT_GRADCHECK(check(variant("seq2seq", 2, "pre", "gelu", "learned", false), 7));
}

TEST(ModelGradcheck, Seq2seqPostLNGeluTanhSinusoidalTied) {
  EXPECT_GRADCHECK(check(variant("seq2seq", 1, "post", "gelu_tanh", "sinusoidal", true), 8));
}

// With dropout on, in training mode: resetting the dropout generator at each call makes the
// masks, and so the function, fixed; its gradient must still check.
TEST(ModelGradcheck, DecoderWithDropoutInTraining) {
  ModelConfig c = variant("decoder", 2, "pre", "gelu", "learned", false);
  c.dropout = 0.2;
  Model<double> model(c, 9);
  testing::randomize(model, 109);
  model.train();
  const Batch batch = tiny_batch(c, 209);
  const Rng::State state = model.dropout_rng_state();
  EXPECT_GRADCHECK(gradcheck(
      [&] {
        model.set_dropout_rng_state(state);
        return model.forward(batch).loss;
      },
      gradcheck_inputs(model)));
}

// The route `qkv gradcheck --checkpoint` takes: a float model, converted to float64.
TEST(ModelGradcheck, FloatModelConvertedToDouble) {
  const ModelConfig c = variant("seq2seq", 1, "pre", "relu", "learned", true);
  Model<float> trained(c, 10);
  testing::randomize(trained, 110);
  Model<double> model = convert_model<double>(trained);
  model.eval();
  EXPECT_GRADCHECK(gradcheck_model(model, tiny_batch(c, 210)));
}

// The check is not vacuous at model level: a backward that adds 0.01·W_K to W_K's gradient
// (the finite differences, run under no-grad, never see the extra term) fails it.
TEST(ModelGradcheck, CatchesAWrongGradient) {
  const ModelConfig c = variant("decoder", 1, "pre", "gelu", "learned", false);
  Model<double> model(c, 11);
  testing::randomize(model, 111);
  const Batch batch = tiny_batch(c, 211);
  Var<double> w = model.parameter("blocks.0.attn.W_K.weight");
  auto wrong = [&] {
    Var<double> loss = model.forward(batch).loss;
    if (!grad_enabled()) return loss;  // the numeric side
    Var<double> frozen(w.value().clone());
    return loss + 0.01 * (sum(w * frozen) - sum(frozen * frozen));  // value 0, gradient 0.01·w
  };
  GradcheckReport report = gradcheck(wrong, {{"blocks.0.attn.W_K.weight", w}});
  EXPECT_FALSE(report.ok) << report.table();
}

}  // namespace
}  // namespace qkv
