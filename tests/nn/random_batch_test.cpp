// random_batch, the one random-batch builder (tests, qkv gradcheck, qkv graph, qkv bench): shapes,
// ids inside each vocabulary, padding with ignored targets, next-token targets, read-out
// positions on real tokens, and a message naming the option that does not fit.
#include "nn/random_batch.h"

#include <gtest/gtest.h>

#include "nn_test_util.h"

namespace qkv {
namespace {

using testing::tiny;

void expect_ids_below(const IndexTensor& t, int64_t n, const char* what) {
  for (int32_t x : t.data) EXPECT_TRUE(x >= 0 && x < n) << what << " id " << x;
}

TEST(RandomBatch, DefaultsArePaddedWithIgnoredTargets) {
  for (const char* arch : {"encoder", "decoder", "seq2seq"}) {
    SCOPED_TRACE(arch);
    const ModelConfig c = tiny(arch).resolved();
    Rng rng(1);
    const Batch b = random_batch(c, rng);
    ASSERT_EQ(b.tokens.shape, Shape({2, 5}));
    expect_ids_below(b.tokens, c.vocab_size, "token");
    EXPECT_EQ(b.mask.data, (std::vector<uint8_t>{1, 1, 1, 1, 1, 1, 1, 1, 0, 0}));
    if (c.arch == Arch::kEncoder) {
      ASSERT_EQ(b.targets.shape, Shape({2}));
      expect_ids_below(b.targets, c.n_out, "class");
      EXPECT_EQ(b.positions.data, (std::vector<int32_t>{4, 2}));  // the last real tokens
      continue;
    }
    ASSERT_EQ(b.targets.shape, Shape({2, 5}));
    for (int64_t i = 0; i < 10; ++i) {
      const bool ignored = i == 1 || !b.mask[i];
      EXPECT_EQ(b.targets[i] == -1, ignored) << "target " << i;
      if (!ignored) {
        EXPECT_LT(b.targets[i], c.n_out);
      }
    }
    if (c.arch == Arch::kSeq2seq) {
      ASSERT_EQ(b.src.shape, Shape({2, 4}));
      expect_ids_below(b.src, c.src_vocab_size, "source");
      EXPECT_EQ(b.src_mask.data, (std::vector<uint8_t>{1, 1, 1, 1, 1, 1, 1, 0}));
    }
  }
}

TEST(RandomBatch, NextTokenTargetsContinueOneStream) {
  const ModelConfig c = tiny("decoder").resolved();
  RandomBatchOptions o;
  o.batch_size = 3;
  o.seq_len = 6;
  o.padded = false;
  o.next_token = true;
  Rng rng(2);
  const Batch b = random_batch(c, rng, o);
  EXPECT_TRUE(b.mask.empty());
  for (int64_t i = 0; i + 1 < b.tokens.numel(); ++i) EXPECT_EQ(b.targets[i], b.tokens[i + 1]);
  Rng same(2), other(3);
  EXPECT_EQ(random_batch(c, same, o).tokens.data, b.tokens.data);
  EXPECT_NE(random_batch(c, other, o).tokens.data, b.tokens.data);
}

TEST(RandomBatch, OptionsThatDoNotFitAreNamed) {
  const ModelConfig c = tiny("seq2seq");  // max_len 6, src_max_len 5
  Rng rng(1);
  RandomBatchOptions o;
  o.seq_len = 7;
  EXPECT_EQ(testing::error_of([&] { random_batch(c, rng, o); }),
            "random_batch: seq_len 7 must be in [1, max_len = 6]");
  o = RandomBatchOptions();
  o.src_len = 6;
  EXPECT_EQ(testing::error_of([&] { random_batch(c, rng, o); }),
            "random_batch: src_len 6 must be in [1, src_max_len = 5]");
}

}  // namespace
}  // namespace qkv
