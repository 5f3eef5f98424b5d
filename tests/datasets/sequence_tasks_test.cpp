#include "datasets/sequence_tasks.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/error.h"

namespace qkv {
namespace {

std::vector<int64_t> all_indices(const Task& t, Split s) {
  std::vector<int64_t> idx(static_cast<size_t>(t.size(s)));
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = int64_t(i);
  return idx;
}

TEST(DigitTasks, LayoutOfOneExample) {
  DigitTask t("reverse", nlohmann::json{{"seed", 1}});
  Batch b = t.encode("3 1 4");
  const Vocab& v = t.vocab();
  EXPECT_EQ(v.tokens(), (std::vector<std::string>{"<pad>", "<bos>", "<sep>", "<eos>", "0", "1", "2",
                                                  "3", "4", "5", "6", "7", "8", "9"}));
  EXPECT_EQ(t.decode(b.tokens.data), "<bos> 3 1 4 <sep> 4 1 3");
  const std::vector<int32_t> want = {-1, -1, -1, -1, v.id("4"), v.id("1"), v.id("3"), v.eos_id()};
  EXPECT_EQ(b.targets.data, want);
  EXPECT_EQ(b.tokens.shape, (Shape{1, 8}));
  // The prompt alone, for generation.
  Batch p = t.encode("314", /*with_answer=*/false);
  EXPECT_EQ(t.decode(p.tokens.data), "<bos> 3 1 4 <sep>");
  EXPECT_EQ(p.targets.data, std::vector<int32_t>(5, -1));
  EXPECT_THROW(t.encode("3 x 4"), Error);
  EXPECT_THROW(t.encode("123456789"), Error);  // more than max_digits
  EXPECT_EQ(DigitTask("sort").answer({3, 1, 4, 1}), (std::vector<int32_t>{1, 1, 3, 4}));
  EXPECT_EQ(DigitTask("copy").answer({3, 1, 4, 1}), (std::vector<int32_t>{3, 1, 4, 1}));
}

TEST(DigitTasks, BatchesArePaddedMaskedAndOnlyTheAnswerIsTargeted) {
  for (const char* name : {"copy", "reverse", "sort"}) {
    DigitTask t(name, nlohmann::json{{"seed", 2}, {"n_train", 300}, {"n_val", 40}, {"n_test", 40}});
    const Vocab& v = t.vocab();
    Batch b = t.batch(Split::kTrain, all_indices(t, Split::kTrain));
    const int64_t B = b.batch_size(), T = b.seq_len();
    ASSERT_EQ(B, 300);
    EXPECT_LE(T, t.max_len());
    EXPECT_EQ(b.targets.shape, b.tokens.shape);
    EXPECT_EQ(b.mask.shape, b.tokens.shape);
    EXPECT_TRUE(b.positions.empty());
    for (int64_t r = 0; r < B; ++r) {
      const std::vector<int32_t>& d = t.digits(Split::kTrain, r);
      const auto n = int64_t(d.size());
      const std::vector<int32_t> ans = t.answer(d);
      for (int64_t i = 0; i < T; ++i) {
        const int32_t tok = b.tokens[r * T + i], tgt = b.targets[r * T + i];
        EXPECT_EQ(b.mask[r * T + i], i < 2 * n + 2 ? 1 : 0);
        if (i == 0) {
          EXPECT_EQ(tok, v.bos_id());
        }
        if (i >= 1 && i <= n) {
          EXPECT_EQ(tok, v.id("0") + d[size_t(i - 1)]);
        }
        if (i == n + 1) {
          EXPECT_EQ(tok, v.sep_id());
        }
        if (i <= n) {
          EXPECT_EQ(tgt, -1) << "prompt targets are ignored";
        }
        if (i > n && i < 2 * n + 1) {
          EXPECT_EQ(tgt, v.id("0") + ans[size_t(i - n - 1)]);
        }
        if (i == 2 * n + 1) {
          EXPECT_EQ(tgt, v.eos_id());
        }
        if (i >= 2 * n + 2) {
          EXPECT_EQ(tok, 0);
          EXPECT_EQ(tgt, -1);
        }
        // Next-token layout: every non-ignored target is the following token, or <eos>.
        if (tgt >= 0 && i + 1 < 2 * n + 2) {
          EXPECT_EQ(tgt, b.tokens[r * T + i + 1]);
        }
      }
    }
  }
}

TEST(DigitTasks, DeterministicDistinctAndSplitDisjoint) {
  DigitTask a("copy", nlohmann::json{{"seed", 9}}), b("copy", nlohmann::json{{"seed", 9}});
  DigitTask c("copy", nlohmann::json{{"seed", 10}});
  EXPECT_EQ(a.size(Split::kTrain), 10000);
  EXPECT_EQ(a.size(Split::kVal), 500);
  EXPECT_EQ(a.size(Split::kTest), 500);
  std::vector<int64_t> idx = {0, 5, 17, 4999};
  EXPECT_EQ(a.batch(Split::kTrain, idx).tokens.data, b.batch(Split::kTrain, idx).tokens.data);
  EXPECT_NE(a.batch(Split::kTrain, idx).tokens.data, c.batch(Split::kTrain, idx).tokens.data);
  std::set<std::vector<int32_t>> seen;
  size_t total = 0;
  std::set<size_t> lengths;
  for (Split s : kAllSplits)
    for (int64_t i = 0; i < a.size(s); ++i) {
      seen.insert(a.digits(s, i));
      lengths.insert(a.digits(s, i).size());
      ++total;
    }
  EXPECT_EQ(seen.size(), total);  // no input twice, so none of val / test is in train
  EXPECT_EQ(lengths, (std::set<size_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_THROW(DigitTask("copy", nlohmann::json{{"max_digits", 2}}), Error);  // 110 sequences
}

TEST(ModAdd, LayoutSplitsAndDisjointness) {
  ModAddTask t(nlohmann::json{{"seed", 3}});
  const int64_t p = 97;
  EXPECT_EQ(t.vocab().size(), p + 3);
  EXPECT_EQ(t.size(Split::kTrain) + t.size(Split::kVal) + t.size(Split::kTest), p * p);
  EXPECT_EQ(t.size(Split::kTrain), (p * p + 1) / 2);
  EXPECT_LE(std::abs(t.size(Split::kVal) - t.size(Split::kTest)), 1);
  std::set<std::pair<int32_t, int32_t>> train, held;
  for (int64_t i = 0; i < t.size(Split::kTrain); ++i) train.insert(t.pair(Split::kTrain, i));
  for (Split s : {Split::kVal, Split::kTest})
    for (int64_t i = 0; i < t.size(s); ++i) held.insert(t.pair(s, i));
  EXPECT_EQ(train.size() + held.size(), size_t(p * p));
  for (const auto& ab : held) EXPECT_EQ(train.count(ab), 0u);

  Batch b = t.batch(Split::kVal, {0, 1});
  EXPECT_EQ(b.tokens.shape, (Shape{2, 4}));
  for (int64_t r = 0; r < 2; ++r) {
    auto [x, y] = t.pair(Split::kVal, r);
    EXPECT_EQ(t.decode({b.tokens.data.begin() + r * 4, b.tokens.data.begin() + r * 4 + 4}),
              fmt::format("{} + {} =", x, y));
    EXPECT_EQ(b.targets[r * 4 + 0], -1);
    EXPECT_EQ(b.targets[r * 4 + 1], -1);
    EXPECT_EQ(b.targets[r * 4 + 2], -1);
    EXPECT_EQ(t.vocab().token(b.targets[r * 4 + 3]), std::to_string((x + y) % p));
    for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(b.mask[r * 4 + i], 1);
  }
  Batch e = t.encode("90 + 10 =");
  EXPECT_EQ(t.vocab().token(e.targets[3]), "3");
  EXPECT_EQ(t.encode("90+10", false).targets[3], -1);
  EXPECT_THROW(t.encode("97 + 1"), Error);
  EXPECT_THROW(t.encode("1 - 1"), Error);

  ModAddTask small(nlohmann::json{{"p", 7}, {"train_fraction", 0.3}, {"seed", 1}});
  EXPECT_EQ(small.size(Split::kTrain), 15);
  EXPECT_EQ(small.size(Split::kVal) + small.size(Split::kTest), 34);
  ModAddTask same(small.options());
  EXPECT_EQ(small.pair(Split::kTest, 3), same.pair(Split::kTest, 3));
}

}  // namespace
}  // namespace qkv
