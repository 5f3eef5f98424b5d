// Decoding (train/decode.h): temperature 0 and top-k 1 are greedy, draws at temperature T follow
// softmax(logits / T) (a chi-square test that a wrong temperature fails), top-k and top-p never
// leave their cut, the window slides past max_len, <eos> stops it, the same seed gives the same
// tokens; the KV-cache path gives the same tokens as the uncached one, greedy and sampled, past
// max_len, for decoders and seq2seq.
#include "train/decode.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "nn/model.h"
#include "test_files.h"

namespace qkv {
namespace {

using test::error_of;

/// softmax(z / T) in double, written out here independently of next_token_probs().
std::vector<double> softmax_t(const std::vector<float>& z, double T) {
  double m = -INFINITY, sum = 0;
  for (float x : z) m = std::max(m, double(x) / T);
  std::vector<double> p;
  for (float x : z) p.push_back(std::exp(double(x) / T - m));
  for (double x : p) sum += x;
  for (double& x : p) x /= sum;
  return p;
}

/// Pearson's statistic Σ (observed − expected)² / expected over the ids of non-zero expectation.
double chi_square(const std::vector<int64_t>& counts, const std::vector<double>& p, int64_t n) {
  double chi2 = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double e = p[i] * double(n);
    if (e > 0) chi2 += (double(counts[i]) - e) * (double(counts[i]) - e) / e;
  }
  return chi2;
}

std::vector<int64_t> draw_counts(const std::vector<float>& logits, const SamplingOptions& o,
                                 int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int64_t> counts(logits.size(), 0);
  for (int64_t i = 0; i < n; ++i)
    ++counts[size_t(sample_token(logits.data(), int64_t(logits.size()), o, rng))];
  return counts;
}

const std::vector<float> kLogits = {2.0f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, -2.5f, 1.5f};

// ---------------------------------------------------------------------------------------------
// The sampling rule on fixed logits

TEST(Sampling, TemperatureOneIsTheSoftmaxOfTheLogits) {
  SamplingOptions o;
  const std::vector<double> p = next_token_probs(kLogits.data(), int64_t(kLogits.size()), o);
  const std::vector<double> want = softmax_t(kLogits, 1.0);
  ASSERT_EQ(p.size(), want.size());
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(p[i], want[i], 1e-12) << "id " << i;
  o.temperature = 0.5;
  const std::vector<double> sharp = next_token_probs(kLogits.data(), int64_t(kLogits.size()), o);
  const std::vector<double> want_sharp = softmax_t(kLogits, 0.5);
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(sharp[i], want_sharp[i], 1e-12) << "id " << i;
}

TEST(Sampling, ExtremeLogitsGiveFiniteProbabilities) {
  const std::vector<float> z = {1000.0f, -1000.0f, 999.0f, 0.0f};
  for (double T : {0.01, 1.0, 100.0}) {
    SamplingOptions o;
    o.temperature = T;
    const std::vector<double> p = next_token_probs(z.data(), 4, o);
    double sum = 0;
    for (double x : p) {
      EXPECT_TRUE(std::isfinite(x)) << "T = " << T;
      sum += x;
    }
    EXPECT_NEAR(sum, 1.0, 1e-12) << "T = " << T;
  }
}

TEST(Sampling, TemperatureZeroAndTopKOneAreTheArgmax) {
  Rng logits_rng(11);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> z(17);
    for (float& x : z) x = float(logits_rng.normal(0, 3));
    const auto best = int32_t(std::max_element(z.begin(), z.end()) - z.begin());
    SamplingOptions greedy;
    greedy.temperature = 0;
    SamplingOptions top1;
    top1.top_k = 1;
    top1.temperature = 5.0;  // a flat distribution, but only one token survives the cut
    Rng rng(trial);
    const Rng::State before = rng.state();
    EXPECT_EQ(sample_token(z.data(), 17, greedy, rng), best);
    EXPECT_EQ(rng.state(), before) << "greedy decoding must not consume random numbers";
    for (int k = 0; k < 5; ++k) EXPECT_EQ(sample_token(z.data(), 17, top1, rng), best);
  }
}

// 200 000 draws over 8 ids: under the right distribution Pearson's statistic is χ² with 7
// degrees of freedom (99.9 % quantile 24.3). A temperature off by 10 % moves the expected counts
// by hundreds of standard deviations, so the same counts must fail against it.
TEST(Sampling, DrawsFollowSoftmaxAtTheTemperature) {
  const int64_t n = 200000;
  for (double T : {1.0, 0.7, 2.0}) {
    SCOPED_TRACE("T = " + std::to_string(T));
    SamplingOptions o;
    o.temperature = T;
    const std::vector<int64_t> counts = draw_counts(kLogits, o, n, 42);
    EXPECT_EQ(std::accumulate(counts.begin(), counts.end(), int64_t(0)), n);
    EXPECT_LT(chi_square(counts, softmax_t(kLogits, T), n), 24.3);
    EXPECT_GT(chi_square(counts, softmax_t(kLogits, T * 1.1), n), 200.0);
    EXPECT_GT(chi_square(counts, softmax_t(kLogits, T / 1.1), n), 200.0);
  }
}

TEST(Sampling, TopKNeverLeavesTheKLargestAndKeepsTheirRatios) {
  const int64_t n = 100000;
  for (int64_t k : {2, 3, 5}) {
    SCOPED_TRACE("k = " + std::to_string(k));
    SamplingOptions o;
    o.top_k = k;
    // The k largest of kLogits, by value.
    std::vector<int32_t> order(kLogits.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [](int32_t a, int32_t b) { return kLogits[a] > kLogits[b]; });
    const std::set<int32_t> top(order.begin(), order.begin() + k);

    const std::vector<int64_t> counts = draw_counts(kLogits, o, n, 7);
    std::vector<double> want(kLogits.size(), 0.0);
    double z = 0;
    for (int32_t i : top) z += (want[size_t(i)] = std::exp(double(kLogits[size_t(i)])));
    for (double& x : want) x /= z;
    for (size_t i = 0; i < counts.size(); ++i) {
      if (top.count(int32_t(i)))
        EXPECT_GT(counts[i], 0) << "id " << i << " is among the top k but never drawn";
      else
        EXPECT_EQ(counts[i], 0) << "id " << i << " is outside the top k";
    }
    EXPECT_LT(chi_square(counts, want, n), 20.0);  // χ² with ≤ 4 dof, 99.9 % quantile 18.5
  }
}

TEST(Sampling, TopPKeepsTheSmallestNucleusReachingP) {
  // softmax of log(0.5, 0.3, 0.15, 0.05) = those probabilities.
  const std::vector<float> z = {std::log(0.15f), std::log(0.5f), std::log(0.05f), std::log(0.3f)};
  SamplingOptions o;
  o.top_p = 0.7;  // 0.5 < 0.7 ≤ 0.5 + 0.3: ids 1 and 3
  std::vector<double> p = next_token_probs(z.data(), 4, o);
  EXPECT_NEAR(p[1], 0.5 / 0.8, 1e-6);
  EXPECT_NEAR(p[3], 0.3 / 0.8, 1e-6);
  EXPECT_EQ(p[0], 0.0);
  EXPECT_EQ(p[2], 0.0);
  o.top_p = 0.01;  // never fewer than one token
  p = next_token_probs(z.data(), 4, o);
  EXPECT_EQ(p, (std::vector<double>{0, 1, 0, 0}));
  o.top_p = 1.0;
  p = next_token_probs(z.data(), 4, o);
  EXPECT_NEAR(p[2], 0.05, 1e-6);
}

TEST(Sampling, CategoricalNeverDrawsAZeroProbability) {
  const std::vector<double> p = {0, 0.25, 0, 0.75, 0};
  Rng rng(3);
  int64_t ones = 0;
  for (int i = 0; i < 10000; ++i) {
    const int32_t id = sample_categorical(p, rng);
    ASSERT_TRUE(id == 1 || id == 3) << id;
    ones += id == 1;
  }
  EXPECT_NEAR(double(ones) / 10000, 0.25, 0.02);
}

TEST(Sampling, BadOptionsNameTheFlag) {
  SamplingOptions o;
  o.temperature = -0.5;
  EXPECT_EQ(error_of([&] { check_sampling_options(o); }),
            "--temperature -0.5: must be >= 0 (0 = greedy, 1 = the model's distribution)");
  o = SamplingOptions();
  o.top_k = -1;
  EXPECT_EQ(error_of([&] { check_sampling_options(o); }),
            "--top-k -1: must be >= 0 (0 = keep every token)");
  o = SamplingOptions();
  o.top_p = 0;
  EXPECT_EQ(error_of([&] { check_sampling_options(o); }),
            "--top-p 0: must be in (0, 1] (1 = keep every token)");
  o.top_p = 1.5;
  EXPECT_NE(error_of([&] { check_sampling_options(o); }), "(no error)");
}

// ---------------------------------------------------------------------------------------------
// Generation with a model

class GenerateModel : public ::testing::Test {
 protected:
  static constexpr int64_t kMaxLen = 12;
  static constexpr int64_t kVocab = 20;

  void SetUp() override {
    ModelConfig c = ModelConfig::from_json({{"arch", "decoder"},
                                            {"vocab_size", kVocab},
                                            {"max_len", kMaxLen},
                                            {"d_model", 16},
                                            {"n_heads", 2},
                                            {"n_layers", 2},
                                            {"d_ff", 32},
                                            {"tie_embeddings", false},
                                            {"n_out", kVocab}});
    model_ = std::make_unique<Model<float>>(c, 5);
    // Logits of an untrained model are close together; spread them so that greedy and sampled
    // continuations differ, and keep <pad> (never sampled by generate()) far from the argmax.
    auto params = model_->export_parameters();
    for (auto& [name, t] : params) {
      if (name == "head.weight")
        for (int64_t i = 0; i < t.numel(); ++i) t[i] *= 40.0f;
      if (name == "head.bias") t[0] = -1e4f;
    }
    model_->load_parameters(params);
    model_->eval();
  }

  /// Argmax of the last position's logits for exactly these tokens (at most kMaxLen).
  int32_t argmax_next(const std::vector<int32_t>& tokens) {
    Batch b;
    const auto n = int64_t(tokens.size());
    b.tokens = IndexTensor({1, n}, tokens);
    b.mask = BoolTensor({1, n}, 1);
    const Tensor<float> logits = model_->forward(b).logits.value();
    const float* last = logits.data() + (n - 1) * kVocab;
    return int32_t(std::max_element(last, last + kVocab) - last);
  }

  std::unique_ptr<Model<float>> model_;
  const std::vector<int32_t> prompt_ = {3, 7, 1};
};

TEST_F(GenerateModel, TemperatureZeroAndTopKOneEqualGreedyDecode) {
  Batch b;
  b.tokens = IndexTensor({1, 3}, prompt_);
  b.mask = BoolTensor({1, 3}, 1);
  const std::vector<int32_t> greedy = greedy_decode(*model_, b, /*eos_id=*/-1);
  ASSERT_EQ(int64_t(greedy.size()), kMaxLen - 3);

  SamplingOptions t0;
  t0.temperature = 0;
  SamplingOptions k1;
  k1.top_k = 1;
  Rng rng(1);
  EXPECT_EQ(generate(*model_, prompt_, kMaxLen - 3, -1, t0, rng), greedy);
  EXPECT_EQ(generate(*model_, prompt_, kMaxLen - 3, -1, k1, rng), greedy);
  // Sampling at T = 1 is not greedy (so the equality above is not vacuous).
  SamplingOptions t1;
  bool differs = false;
  for (uint64_t seed = 0; seed < 5 && !differs; ++seed) {
    Rng r(seed);
    differs = generate(*model_, prompt_, kMaxLen - 3, -1, t1, r) != greedy;
  }
  EXPECT_TRUE(differs);
}

TEST_F(GenerateModel, SlidesTheWindowPastMaxLen) {
  SamplingOptions t0;
  t0.temperature = 0;
  Rng rng(1);
  const std::vector<int32_t> out = generate(*model_, prompt_, 3 * kMaxLen, -1, t0, rng);
  ASSERT_EQ(int64_t(out.size()), 3 * kMaxLen);
  std::vector<int32_t> all = prompt_;
  all.insert(all.end(), out.begin(), out.end());
  // Every token is the argmax given the kMaxLen tokens before it (fewer at the start).
  for (size_t i = prompt_.size(); i < all.size(); ++i) {
    const size_t start = i > size_t(kMaxLen) ? i - size_t(kMaxLen) : 0;
    EXPECT_EQ(all[i],
              argmax_next({all.begin() + std::ptrdiff_t(start), all.begin() + std::ptrdiff_t(i)}))
        << "token " << i;
  }
}

TEST_F(GenerateModel, StopsAfterEos) {
  SamplingOptions t0;
  t0.temperature = 0;
  Rng rng(1);
  const std::vector<int32_t> free = generate(*model_, prompt_, 8, -1, t0, rng);
  ASSERT_EQ(free.size(), 8u);
  const int32_t eos = free[2];
  const auto first = size_t(std::find(free.begin(), free.end(), eos) - free.begin());
  const std::vector<int32_t> stopped = generate(*model_, prompt_, 8, eos, t0, rng);
  EXPECT_EQ(stopped, std::vector<int32_t>(free.begin(), free.begin() + std::ptrdiff_t(first) + 1));
  std::vector<int32_t> none;
  EXPECT_EQ(generate(*model_, prompt_, 0, -1, t0, rng), none);
}

TEST_F(GenerateModel, SameSeedSameTokensOtherSeedOthers) {
  SamplingOptions o;
  o.temperature = 1.5;
  auto run = [&](uint64_t seed) {
    Rng rng(seed);
    return generate(*model_, prompt_, 40, -1, o, rng);
  };
  const std::vector<int32_t> a = run(1), b = run(1), c = run(2);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (int32_t id : a) EXPECT_NE(id, 0) << "<pad> was sampled";
}

// ---------------------------------------------------------------------------------------------
// With and without the KV cache: the same tokens

/// A decoder (or seq2seq) with `pos` positions whose next token depends on the whole context:
/// GPT-2's initial values with every attention weight 25 times larger (std 0.5: the attention
/// decides), and the head's 40 times (spread logits, as GenerateModel's). A wrong cached K or V
/// row then changes the tokens.
std::unique_ptr<Model<float>> context_model(const std::string& arch, const std::string& pos) {
  ModelConfig c = ModelConfig::from_json({{"arch", arch},
                                          {"vocab_size", 20},
                                          {"max_len", 12},
                                          {"d_model", 16},
                                          {"n_heads", 2},
                                          {"n_layers", 2},
                                          {"d_ff", 32},
                                          {"pos", pos},
                                          {"tie_embeddings", false},
                                          {"n_out", 20}});
  auto model = std::make_unique<Model<float>>(c, 9);
  auto params = model->export_parameters();
  for (auto& [name, t] : params) {
    const bool attn =
        name.find("attn.W_") != std::string::npos && name.find("weight") != std::string::npos;
    const float scale = attn ? 25.0f : name.find("head.weight") != std::string::npos ? 40.0f : 1.0f;
    for (int64_t i = 0; i < t.numel(); ++i) t[i] *= scale;
  }
  model->load_parameters(params);
  model->eval();
  return model;
}

/// How many distinct ids `v` holds (a continuation that repeats one id would test little).
size_t distinct(const std::vector<int32_t>& v) {
  return std::set<int32_t>(v.begin(), v.end()).size();
}

TEST(DecodeCache, GreedyAndSampledTokensAreTheSameWithAndWithoutTheCache) {
  const std::vector<int32_t> prompt = {3, 17, 8, 12};
  for (const std::string pos : {"learned", "sinusoidal"}) {
    auto model = context_model("decoder", pos);
    SamplingOptions greedy;
    greedy.temperature = 0;
    SamplingOptions sampled;
    sampled.temperature = 1.5;
    sampled.top_k = 8;
    sampled.top_p = 0.95;
    for (const SamplingOptions& o : {greedy, sampled}) {
      // 40 tokens: 7 cached steps fill the window of 8, then it slides for 33.
      auto run = [&](DecodePath path) {
        Rng rng(4);
        return generate(*model, prompt, 40, -1, o, rng, {}, path);
      };
      const std::vector<int32_t> cached = run(DecodePath::kCached);
      EXPECT_EQ(cached.size(), 40u);
      EXPECT_GE(distinct(cached), 2u) << ::testing::PrintToString(cached);
      EXPECT_EQ(cached, run(DecodePath::kUncached)) << pos << " T = " << o.temperature;
    }
  }
}

TEST(DecodeCache, APromptLongerThanTheWindowIsTheSameWithAndWithoutTheCache) {
  auto model = context_model("decoder", "learned");
  const std::vector<int32_t> prompt = {3, 7, 1, 4, 4, 9, 2, 6, 5, 11, 12};  // 11 > max_len 8
  SamplingOptions greedy;
  greedy.temperature = 0;
  Rng a(1), b(1);
  EXPECT_EQ(generate(*model, prompt, 5, -1, greedy, a, {}, DecodePath::kCached),
            generate(*model, prompt, 5, -1, greedy, b, {}, DecodePath::kUncached));
}

TEST(DecodeCache, Seq2seqTokensAreTheSameWithAndWithoutTheCache) {
  auto model = context_model("seq2seq", "sinusoidal");
  Batch batch;
  batch.src = IndexTensor({1, 5}, {4, 9, 2, 2, 0});
  batch.src_mask = BoolTensor({1, 5}, std::vector<uint8_t>{1, 1, 1, 1, 0});
  batch.tokens = IndexTensor({1, 1}, {1});
  Batch other = batch;
  const std::vector<int32_t> cached = greedy_decode(*model, batch, -1, DecodePath::kCached);
  EXPECT_EQ(cached.size(), 11u);  // up to max_len 12
  EXPECT_GE(distinct(cached), 2u) << ::testing::PrintToString(cached);
  EXPECT_EQ(cached, greedy_decode(*model, other, -1, DecodePath::kUncached));
  EXPECT_EQ(batch.tokens.data, other.tokens.data);
  // Past max_len, sampled: the window slides while the encoder's K, V stay.
  SamplingOptions o;
  o.temperature = 2;
  Rng r1(3), r2(3);
  EXPECT_EQ(decode(*model, batch, 20, -1, o, r1, {}, DecodePath::kCached),
            decode(*model, other, 20, -1, o, r2, {}, DecodePath::kUncached));
}

}  // namespace
}  // namespace qkv
