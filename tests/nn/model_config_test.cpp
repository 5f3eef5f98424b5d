// ModelConfig: JSON keys and defaults, validation messages, and the canonical parameter table.
#include <chrono>

#include "nn/config.h"
#include "nn/model.h"
#include "nn_test_util.h"

namespace qkv {
namespace {

using nlohmann::json;
using testing::error_of;
using testing::tiny;

std::string config_error(const std::string& text) {
  return error_of([&] { ModelConfig::parse(text); });
}

TEST(ModelConfig, DefaultsAndDerivedKeys) {
  const ModelConfig c = ModelConfig::parse(R"({"d_model": 32, "vocab_size": 20})");
  EXPECT_EQ(c.arch, Arch::kDecoder);
  EXPECT_EQ(c.d_model, 32);
  EXPECT_EQ(c.d_ff, 128);  // 4·d_model
  EXPECT_EQ(c.n_out, 20);  // vocab_size
  EXPECT_EQ(c.src_vocab_size, 20);
  EXPECT_EQ(c.src_max_len, c.max_len);
  EXPECT_EQ(c.activation, "gelu");
  EXPECT_EQ(c.norm, "pre");
  EXPECT_EQ(c.pos, "learned");
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_EQ(c.dropout, 0.0);
  EXPECT_EQ(c.ln_eps, 1e-5);
}

// core/json_reader.h's rule, as the train config and task options read it too.
TEST(ModelConfig, IntegralFloatsAreIntegersAndBooleansAreTrueOrFalse) {
  const ModelConfig c =
      ModelConfig::parse(R"({"d_model": 64.0, "vocab_size": 1000.0, "tie_embeddings": true})");
  EXPECT_EQ(c.d_model, 64);
  EXPECT_EQ(c.vocab_size, 1000);
  EXPECT_EQ(config_error(R"({"d_ff": 1e300})"),
            "model config: 'd_ff' must be an integer, got 1e+300");
  EXPECT_EQ(config_error(R"({"tie_embeddings": 0})"),
            "model config: 'tie_embeddings' must be true or false, got 0");
}

TEST(ModelConfig, JsonRoundTripHasExactlyTheDesignKeys) {
  ModelConfig c = tiny("seq2seq", 2);
  c.activation = "gelu_tanh";
  c.norm = "post";
  c.pos = "sinusoidal";
  c.tie_embeddings = true;
  c.dropout = 0.25;
  c.ln_eps = 1e-6;
  const json j = c.to_json();
  std::vector<std::string> keys;
  for (const auto& item : j.items()) keys.push_back(item.key());
  std::vector<std::string> expected = ModelConfig::keys();
  std::sort(expected.begin(), expected.end());
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, expected);
  EXPECT_EQ(ModelConfig::keys().size(), 16u);
  const ModelConfig back = ModelConfig::from_json(j);
  EXPECT_EQ(back, c);
  EXPECT_EQ(back.src_vocab_size, 13);
  EXPECT_EQ(back.src_max_len, 5);
  EXPECT_EQ(back.to_json(), j);
}

TEST(ModelConfig, ValidationMessagesNameTheKey) {
  EXPECT_EQ(config_error(R"({"d_model": 10, "n_heads": 3})"),
            "model config: d_model (10) must be divisible by n_heads (3)");
  EXPECT_EQ(config_error(R"({"activation": "swish"})"),
            "model config: activation 'swish' is not one of gelu, relu, gelu_tanh");
  EXPECT_EQ(config_error(R"({"norm": "rms"})"),
            "model config: norm 'rms' is not one of pre, post, none");
  EXPECT_EQ(config_error(R"({"pos": "rotary"})"),
            "model config: pos 'rotary' is not one of learned, sinusoidal");
  EXPECT_EQ(config_error(R"({"arch": "gpt"})"),
            "model config: arch 'gpt' is not one of encoder, decoder, seq2seq");
  EXPECT_EQ(config_error(R"({"d_model": 0})"),
            "model config: d_model must be a positive integer, got 0");
  EXPECT_EQ(config_error(R"({"n_layers": -2})"),
            "model config: n_layers must be a positive integer, got -2");
  EXPECT_EQ(config_error(R"({"d_ff": 0})"), "model config: d_ff must be a positive integer, got 0");
  EXPECT_EQ(config_error(R"({"dropout": 1.0})"), "model config: dropout must be in [0, 1), got 1");
  EXPECT_EQ(config_error(R"({"dropout": -0.1})"),
            "model config: dropout must be in [0, 1), got -0.1");
  EXPECT_EQ(config_error(R"({"ln_eps": 0})"), "model config: ln_eps must be positive, got 0");
  EXPECT_EQ(config_error(R"({"d_model": "8"})"),
            "model config: 'd_model' must be an integer, got \"8\"");
  EXPECT_EQ(config_error(R"({"n_heads": 2.5})"),
            "model config: 'n_heads' must be an integer, got 2.5");
  EXPECT_EQ(config_error(R"({"tie_embeddings": 1})"),
            "model config: 'tie_embeddings' must be true or false, got 1");
  EXPECT_EQ(config_error(R"({"arch": "encoder", "vocab_size": 11, "n_out": 3,
                             "tie_embeddings": true})"),
            "model config: tie_embeddings needs n_out = vocab_size (the head reuses "
            "tok_emb.weight), got n_out 3 and vocab_size 11");
  EXPECT_EQ(config_error(R"({"arch": "decoder", "vocab_size": 11, "n_out": 3})"),
            "model config: vocab_size is 11 but n_out is 3; arch 'decoder' predicts its own "
            "tokens, so they must be equal (leave both out to take the task's)");
  EXPECT_EQ(config_error(R"([1, 2])"), "model config: expected a JSON object, got array");
  EXPECT_EQ(config_error(R"({"vocab_size": 3000000000})"),
            "model config: vocab_size must be at most 2147483647, got 3000000000");
}

// A string value or key from the file is quoted on the message's one line, its control characters
// escaped (fuzz_config found "arch": "\ncoder" giving a two-line message).
TEST(ModelConfig, QuotedValuesAndKeysStayOnOneLine) {
  EXPECT_EQ(config_error(R"({"arch": "\ncoder"})"),
            "model config: arch '\\x0Acoder' is not one of encoder, decoder, seq2seq");
  EXPECT_EQ(config_error(R"({"norm": "pre\tpost"})"),
            "model config: norm 'pre\\x09post' is not one of pre, post, none");
  const std::string key = "model config: unknown key 'a\\x0Ab' (known keys: ";
  EXPECT_EQ(config_error(R"({"d_model": 8, "a\nb": 2})").substr(0, key.size()), key);
}

TEST(ModelConfig, UnknownKeysAreRefused) {
  EXPECT_EQ(config_error(R"({"d_model": 8, "n_head": 2})"),
            "model config: unknown key 'n_head' (known keys: arch, vocab_size, max_len, d_model, "
            "n_heads, n_layers, d_ff, activation, norm, pos, tie_embeddings, n_out, dropout, "
            "ln_eps, src_vocab_size, src_max_len)");
}

TEST(ModelConfig, ModelsTooBigForMemoryAreRefusedBeforeAllocating) {
  const auto start = std::chrono::steady_clock::now();
  const std::string huge =
      config_error(R"({"vocab_size": 2000000000, "d_model": 65536, "n_heads": 1, "n_layers": 1})");
  EXPECT_NE(huge.find("model config: "), std::string::npos) << huge;
  EXPECT_NE(huge.find("GiB of physical memory; reduce vocab_size, max_len, d_model, d_ff or "
                      "n_layers"),
            std::string::npos)
      << huge;
  // Sizes whose count overflows int64 saturate instead of wrapping into something small.
  const std::string overflow = config_error(
      R"({"d_model": 4294967296, "n_heads": 1, "d_ff": 4294967296, "n_layers": 4294967296})");
  EXPECT_NE(overflow.find("more than 9.2e18 parameters"), std::string::npos) << overflow;
  // The model constructor validates before building anything.
  ModelConfig c;
  c.d_model = 1 << 20;
  c.n_heads = 1;
  c.vocab_size = 1 << 20;
  EXPECT_THROW(Model<float>(c, 0), Error);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

// docs/model.md's table, written out by hand for one small encoder.
TEST(ParamShapes, EncoderByHand) {
  ModelConfig c = tiny("encoder");
  const std::vector<std::pair<std::string, Shape>> expected = {
      {"tok_emb.weight", {11, 8}},
      {"pos_emb.weight", {6, 8}},
      {"blocks.0.ln1.weight", {8}},
      {"blocks.0.ln1.bias", {8}},
      {"blocks.0.attn.W_Q.weight", {8, 8}},
      {"blocks.0.attn.W_Q.bias", {8}},
      {"blocks.0.attn.W_K.weight", {8, 8}},
      {"blocks.0.attn.W_K.bias", {8}},
      {"blocks.0.attn.W_V.weight", {8, 8}},
      {"blocks.0.attn.W_V.bias", {8}},
      {"blocks.0.attn.W_O.weight", {8, 8}},
      {"blocks.0.attn.W_O.bias", {8}},
      {"blocks.0.ln2.weight", {8}},
      {"blocks.0.ln2.bias", {8}},
      {"blocks.0.ff.fc1.weight", {16, 8}},
      {"blocks.0.ff.fc1.bias", {16}},
      {"blocks.0.ff.fc2.weight", {8, 16}},
      {"blocks.0.ff.fc2.bias", {8}},
      {"ln_f.weight", {8}},
      {"ln_f.bias", {8}},
      {"head.weight", {3, 8}},
      {"head.bias", {3}},
  };
  EXPECT_EQ(param_shapes(c), expected);
}

// Seq2seq, tied, sinusoidal, post-LN: no pos_emb, no ln_f, no head; ln_x and xattn per decoder
// block.
TEST(ParamShapes, Seq2seqTiedSinusoidalPostLNByHand) {
  ModelConfig c = tiny("seq2seq");
  c.tie_embeddings = true;
  c.pos = "sinusoidal";
  c.norm = "post";
  std::vector<std::pair<std::string, Shape>> expected = {{"enc.tok_emb.weight", {13, 8}}};
  auto block = [&](const std::string& b, bool cross) {
    auto lin = [&](const std::string& n, int64_t o, int64_t i) {
      expected.push_back({b + n + ".weight", {o, i}});
      expected.push_back({b + n + ".bias", {o}});
    };
    auto ln = [&](const std::string& n) {
      expected.push_back({b + n + ".weight", {8}});
      expected.push_back({b + n + ".bias", {8}});
    };
    ln("ln1");
    for (const char* w : {"attn.W_Q", "attn.W_K", "attn.W_V", "attn.W_O"}) lin(w, 8, 8);
    if (cross) {
      ln("ln_x");
      for (const char* w : {"xattn.W_Q", "xattn.W_K", "xattn.W_V", "xattn.W_O"}) lin(w, 8, 8);
    }
    ln("ln2");
    lin("ff.fc1", 16, 8);
    lin("ff.fc2", 8, 16);
  };
  block("enc.blocks.0.", false);
  expected.push_back({"dec.tok_emb.weight", {11, 8}});
  block("dec.blocks.0.", true);
  EXPECT_EQ(param_shapes(c), expected);
}

TEST(ParamShapes, CountMatchesTheListForEveryVariant) {
  testing::for_each_variant([](const ModelConfig& c, const std::string& arch,
                               const std::string& norm, const std::string& pos, bool tied) {
    int64_t n = 0;
    for (const auto& [name, shape] : param_shapes(c)) n += shape.numel();
    EXPECT_EQ(param_count(c), n) << arch << " " << norm << " " << pos << " " << tied;
  });
}

}  // namespace
}  // namespace qkv
