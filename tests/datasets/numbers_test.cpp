#include "datasets/numbers.h"

#include <gtest/gtest.h>

#include <set>

#include "core/error.h"

namespace qkv {
namespace {

TEST(NumberWords, HandWrittenCases) {
  const std::vector<std::pair<int64_t, std::string>> cases = {
      {0, "zero"},
      {7, "seven"},
      {10, "ten"},
      {13, "thirteen"},
      {19, "nineteen"},
      {20, "twenty"},
      {21, "twenty one"},
      {40, "forty"},
      {99, "ninety nine"},
      {100, "one hundred"},
      {101, "one hundred one"},
      {110, "one hundred ten"},
      {115, "one hundred fifteen"},
      {312, "three hundred twelve"},
      {999, "nine hundred ninety nine"},
      {1000, "one thousand"},
      {1005, "one thousand five"},
      {1010, "one thousand ten"},
      {1100, "one thousand one hundred"},
      {2019, "two thousand nineteen"},
      {7080, "seven thousand eighty"},
      {9999, "nine thousand nine hundred ninety nine"},
      {12345, "twelve thousand three hundred forty five"},
      {700001, "seven hundred thousand one"},
  };
  for (const auto& [n, words] : cases) {
    EXPECT_EQ(number_to_words(n), words) << n;
    EXPECT_EQ(words_to_number(words), n) << words;
  }
  EXPECT_EQ(words_to_number("Twenty-One"), 21);
  EXPECT_THROW(number_to_words(-1), Error);
  EXPECT_THROW(number_to_words(1000000), Error);
}

TEST(NumberWords, InverseOverTheWholeRangeAndErrors) {
  for (int64_t n = 0; n <= 9999; ++n) ASSERT_EQ(words_to_number(number_to_words(n)), n);
  try {
    words_to_number("three hundred and twelve");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "not a number in words: \"three hundred and twelve\" ('and' is not a number word)");
  }
  try {
    words_to_number("twelve hundred");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "not a number in words: \"twelve hundred\" (did you mean \"one thousand two "
              "hundred\"?)");
  }
}

TEST(Numbers, Seq2seqBatchLayout) {
  NumbersTask t(nlohmann::json{{"seed", 1}});
  EXPECT_EQ(t.arch(), Arch::kSeq2seq);
  EXPECT_EQ(t.vocab().size(), 13);      // <pad> <bos> <eos> 0..9
  EXPECT_EQ(t.src_vocab().size(), 31);  // <pad>, 20 units, 8 tens, hundred, thousand
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < 64; ++i) idx.push_back(i);
  Batch b = t.batch(Split::kTest, idx);
  const int64_t B = b.batch_size(), T = b.seq_len(), S = b.src.shape[1];
  EXPECT_EQ(B, 64);
  EXPECT_EQ(b.src.shape[0], 64);
  EXPECT_EQ(b.src_mask.shape, b.src.shape);
  EXPECT_EQ(b.targets.shape, b.tokens.shape);
  EXPECT_LE(T, t.max_len());
  EXPECT_LE(S, t.src_max_len());
  for (int64_t r = 0; r < B; ++r) {
    const int64_t n = t.number(Split::kTest, r);
    const std::string digits = std::to_string(n);
    std::vector<int32_t> src(b.src.data.begin() + r * S, b.src.data.begin() + (r + 1) * S);
    EXPECT_EQ(t.decode_src(src), number_to_words(n));
    int64_t src_len = 0;
    for (int64_t i = 0; i < S; ++i) src_len += b.src_mask[r * S + i];
    EXPECT_EQ(src_len, int64_t(word_tokenize(number_to_words(n)).size()));
    EXPECT_EQ(b.tokens[r * T], t.vocab().bos_id());
    const auto k = int64_t(digits.size());
    for (int64_t i = 0; i < T; ++i) {
      EXPECT_EQ(b.mask[r * T + i], i <= k ? 1 : 0);
      if (i < k) {
        EXPECT_EQ(t.vocab().token(b.targets[r * T + i]), std::string(1, digits[size_t(i)]));
        EXPECT_EQ(b.tokens[r * T + i + 1], b.targets[r * T + i]);
      } else if (i == k) {
        EXPECT_EQ(b.targets[r * T + i], t.vocab().eos_id());
      } else {
        EXPECT_EQ(b.targets[r * T + i], -1);
        EXPECT_EQ(b.tokens[r * T + i], 0);
      }
    }
  }
  Batch e = t.encode("three hundred twelve");
  EXPECT_EQ(t.decode(e.tokens.data), "<bos> 3 1 2");
  EXPECT_EQ(t.decode(e.targets.data), "3 1 2 <eos>");
  Batch p = t.encode("three hundred twelve", /*with_answer=*/false);
  EXPECT_EQ(p.tokens.data, std::vector<int32_t>{t.vocab().bos_id()});
  EXPECT_EQ(t.decode_src(p.src.data), "three hundred twelve");
  try {
    t.encode("three hundrd twelve");
    FAIL();
  } catch (const Error& err) {
    EXPECT_EQ(std::string(err.what()),
              "unknown word 'hundrd': not in the vocabulary of 31 tokens; did you mean 'hundred'?");
  }
}

TEST(Numbers, HeldOutNumbersAndDeterminism) {
  NumbersTask t(nlohmann::json{{"seed", 2}}), same(nlohmann::json{{"seed", 2}});
  EXPECT_EQ(t.size(Split::kTrain) + t.size(Split::kVal) + t.size(Split::kTest), 10000);
  EXPECT_EQ(t.size(Split::kTest), 1000);
  EXPECT_EQ(t.size(Split::kVal), 1000);
  std::set<int64_t> train;
  for (int64_t i = 0; i < t.size(Split::kTrain); ++i) train.insert(t.number(Split::kTrain, i));
  for (Split s : {Split::kVal, Split::kTest})
    for (int64_t i = 0; i < t.size(s); ++i) EXPECT_EQ(train.count(t.number(s, i)), 0u);
  for (int64_t n : {0, 13, 20, 30, 90, 100, 1000}) EXPECT_EQ(train.count(n), 1u) << n;
  for (Split s : kAllSplits)
    for (int64_t i = 0; i < t.size(s); i += 97) EXPECT_EQ(t.number(s, i), same.number(s, i));
}

}  // namespace
}  // namespace qkv
