// Incremental decoding (nn/kv_cache.h, Model::begin_decode and Model::forward_cached): every
// position's logits and attention equal those of forward() over the whole sequence so far, for
// decoders and seq2seq, both position encodings, every norm placement, tied or not, with padding;
// a cache holding one wrong K, V row is caught by the same comparison; misuse is refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "nn_test_util.h"

namespace qkv {
namespace {

using testing::tiny;
using testing::variant;

/// The first `m` positions of batch's decoder tokens and mask (src untouched, no targets).
Batch prefix(const Batch& batch, int64_t m) {
  const int64_t B = batch.batch_size(), T = batch.seq_len();
  Batch p = batch;
  p.targets = IndexTensor();
  p.tokens = IndexTensor({B, m});
  p.mask = BoolTensor({B, m}, 1);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < m; ++t) {
      p.tokens[b * m + t] = batch.tokens[b * T + t];
      if (!batch.mask.empty()) p.mask[b * m + t] = batch.mask[b * T + t];
    }
  return p;
}

/// Columns [from, to) of a [B, T] id or mask tensor.
template <typename I>
IntegralTensor<I> columns(const IntegralTensor<I>& x, int64_t from, int64_t to) {
  const int64_t B = x.shape[0], T = x.shape[1];
  IntegralTensor<I> out({B, to - from});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = from; t < to; ++t) out[b * (to - from) + t - from] = x[b * T + t];
  return out;
}

/// max |a − b| between cached logits [B, T_new, V] and positions [n, n + T_new) of full [B, m, V],
/// relative to the largest logit (at least 1).
template <typename T>
double logit_gap(const Tensor<T>& cached, const Tensor<T>& full, int64_t n) {
  const int64_t B = cached.size(0), Tn = cached.size(1), V = cached.size(2), m = full.size(1);
  double gap = 0, scale = 1;
  for (int64_t i = 0; i < full.numel(); ++i) scale = std::max(scale, std::abs(double(full[i])));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < Tn; ++t)
      for (int64_t v = 0; v < V; ++v)
        gap = std::max(gap, std::abs(double(cached[(b * Tn + t) * V + v]) -
                                     double(full[(b * m + n + t) * V + v])));
  return gap / scale;
}

/// A batch of B = 2 over the whole max_len (6): example 1 starts with one pad and ends with two;
/// seq2seq's second source ends in padding (random_batch's).
Batch padded_batch(const ModelConfig& c, uint64_t seed) {
  Rng rng(seed);
  RandomBatchOptions o;
  o.seq_len = c.max_len;
  Batch b = random_batch(c, rng, o);
  b.mask[c.max_len] = 0;  // example 1, position 0: a query that sees no key at all
  return b;
}

/// Runs `batch` through a cache in chunks of 2, 2, 1, 1 … positions and checks every chunk's
/// logits against forward() over the prefix it completes; returns the largest gap.
template <typename T>
double chunked_gap(Model<T>& model, const Batch& batch) {
  KVCache<T> cache = model.begin_decode(batch);
  const int64_t L = batch.seq_len();
  double worst = 0;
  for (int64_t n = 0; n < L;) {
    const int64_t step = n < 4 ? 2 : 1;
    CachedForwardOptions o;
    o.mask = columns(batch.mask, n, n + step);
    const Tensor<T> cached =
        model.forward_cached(cache, columns(batch.tokens, n, n + step), o).logits.value();
    EXPECT_EQ(cache.length(), n + step);
    const Tensor<T> full = model.forward(prefix(batch, n + step)).logits.value();
    worst = std::max(worst, logit_gap(cached, full, n));
    n += step;
  }
  return worst;
}

template <typename T>
Model<T> random_model(const ModelConfig& c, uint64_t seed) {
  Model<T> model(c, seed);
  testing::randomize(model, seed + 1);  // every weight large enough to matter
  model.eval();
  return model;
}

TEST(KVCache, EveryChunkMatchesTheFullForwardPassInFloat64) {
  for (const std::string arch : {"decoder", "seq2seq"})
    for (const std::string norm : {"pre", "post", "none"})
      for (const std::string pos : {"learned", "sinusoidal"})
        for (bool tied : {false, true}) {
          const ModelConfig c = variant(arch, 2, norm, "gelu", pos, tied);
          Model<double> model = random_model<double>(c, 11);
          EXPECT_LT(chunked_gap(model, padded_batch(c, 5)), 1e-12)
              << arch << " " << norm << " " << pos << (tied ? " tied" : "");
        }
}

TEST(KVCache, EveryChunkMatchesTheFullForwardPassInFloat32) {
  for (const std::string arch : {"decoder", "seq2seq"})
    for (const std::string norm : {"pre", "post"})
      for (const std::string pos : {"learned", "sinusoidal"}) {
        const ModelConfig c = variant(arch, 2, norm, "gelu_tanh", pos, false);
        Model<float> model = random_model<float>(c, 12);
        EXPECT_LT(chunked_gap(model, padded_batch(c, 6)), 2e-5)
            << arch << " " << norm << " " << pos;
      }
}

TEST(KVCache, AWrongRowInTheCacheIsCaught) {
  // The comparison above is not vacuous: a cache whose K, V at one past position belong to
  // another token (a missed or misplaced update) gives logits far outside its tolerance.
  for (const std::string arch : {"decoder", "seq2seq"}) {
    const ModelConfig c = tiny(arch, 2);
    Model<double> model = random_model<double>(c, 13);
    const Batch batch = padded_batch(c, 7);
    const Tensor<double> full = model.forward(prefix(batch, 4)).logits.value();
    auto gap = [&](bool corrupt) {
      KVCache<double> cache = model.begin_decode(batch);
      CachedForwardOptions o;
      o.mask = columns(batch.mask, 0, 3);
      IndexTensor ids = columns(batch.tokens, 0, 3);
      if (corrupt)
        for (int64_t b = 0; b < 2; ++b)
          ids[b * 3 + 1] = (ids[b * 3 + 1] + 1) % int32_t(c.vocab_size);
      model.forward_cached(cache, ids, o);
      o.mask = columns(batch.mask, 3, 4);
      return logit_gap(model.forward_cached(cache, columns(batch.tokens, 3, 4), o).logits.value(),
                       full, 3);
    };
    EXPECT_LT(gap(false), 1e-12) << arch;
    EXPECT_GT(gap(true), 1e-3) << arch;
  }
}

TEST(KVCache, LastOnlyGivesTheLastRow) {
  const ModelConfig c = tiny("decoder", 2);
  Model<double> model = random_model<double>(c, 14);
  const Batch batch = padded_batch(c, 8);
  KVCache<double> all = model.begin_decode(batch), last = model.begin_decode(batch);
  const Tensor<double> every = model.forward_cached(all, batch.tokens).logits.value();
  CachedForwardOptions o;
  o.last_only = true;
  const Tensor<double> one = model.forward_cached(last, batch.tokens, o).logits.value();
  ASSERT_EQ(one.shape(), Shape({2, 1, c.vocab_size}));
  EXPECT_LT(logit_gap(one, every, c.max_len - 1), 1e-14);
}

TEST(KVCache, AStepsAttentionIsTheLastRowOfTheFullPass) {
  const ModelConfig c = tiny("seq2seq", 2);
  Model<double> model = random_model<double>(c, 15);
  const Batch batch = padded_batch(c, 9);
  KVCache<double> cache = model.begin_decode(batch);
  CachedForwardOptions o;
  o.mask = columns(batch.mask, 0, 4);
  model.forward_cached(cache, columns(batch.tokens, 0, 4), o);
  o.mask = columns(batch.mask, 4, 5);
  o.keep_attention = true;
  const ForwardResult<double> step = model.forward_cached(cache, columns(batch.tokens, 4, 5), o);
  const ForwardResult<double> full = model.forward(prefix(batch, 5), /*keep_attention=*/true);
  ASSERT_EQ(step.attention.size(), 4u);  // dec.blocks.{0,1}.{attn,xattn}
  for (const AttentionMap<double>& a : step.attention) {
    const Tensor<double>& P = full.attention_map(a.path);  // [B, H, 5, S]
    const int64_t rows = P.size(0) * P.size(1), S = P.size(3);
    ASSERT_EQ(a.P.shape(), Shape({P.size(0), P.size(1), 1, S})) << a.path;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t s = 0; s < S; ++s)
        EXPECT_NEAR(a.P[r * S + s], P[(r * 5 + 4) * S + s], 1e-12) << a.path;
  }
}

TEST(KVCache, ClearStartsAgainAndKeepsTheEncoder) {
  const ModelConfig c = tiny("seq2seq", 1);
  Model<double> model = random_model<double>(c, 16);
  const Batch batch = padded_batch(c, 10);
  KVCache<double> cache = model.begin_decode(batch);
  const Tensor<double> first = model.forward_cached(cache, batch.tokens).logits.value();
  EXPECT_TRUE(cache.full());
  EXPECT_GT(cache.bytes(), 0);
  cache.clear();
  EXPECT_EQ(cache.length(), 0);
  const Tensor<double> again = model.forward_cached(cache, batch.tokens).logits.value();
  EXPECT_LT(logit_gap(again, first, 0), 1e-14);
}

TEST(KVCache, MisuseIsRefusedWithAMessage) {
  const ModelConfig c = tiny("decoder", 1);
  Model<float> model(c, 1);
  const Batch batch = padded_batch(c, 11);
  KVCache<float> cache = model.begin_decode(batch);
  model.forward_cached(cache, batch.tokens);
  EXPECT_EQ(test::error_of([&] { model.forward_cached(cache, columns(batch.tokens, 0, 1)); }),
            "Model: 1 new positions do not fit the cache (6 of max_len 6 used); clear it and run "
            "the last max_len tokens again");
  cache.clear();
  EXPECT_EQ(test::error_of([&] {
              model.forward_cached(cache, IndexTensor({3, 1}));
            }),
            "Model: 3 examples given to a cache of 2");
  Model<float> encoder(tiny("encoder"), 1);
  EXPECT_EQ(test::error_of([&] { encoder.begin_decode(batch); }),
            "Model: begin_decode needs a decoder or a seq2seq model; an encoder predicts no next "
            "token");
}

}  // namespace
}  // namespace qkv
