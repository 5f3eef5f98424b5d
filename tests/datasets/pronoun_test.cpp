#include "datasets/pronoun.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/error.h"

namespace qkv {
namespace {

using Pair = std::pair<std::string, std::string>;

Pair unordered_pair(const PronounExample& e) {
  return e.option1 < e.option2 ? Pair{e.option1, e.option2} : Pair{e.option2, e.option1};
}

const PronounTask& task() {
  static const PronounTask t(nlohmann::json{{"seed", 0}});
  return t;
}

// The example whose tokens spell `sentence`, and the split it is in (nullptr when absent).
const PronounExample* find_sentence(const PronounTask& t, const std::string& sentence,
                                    Split* where) {
  const std::vector<int32_t> ids = t.vocab().encode(sentence);
  for (Split s : kAllSplits)
    for (const PronounExample& e : t.examples(s))
      if (e.tokens == ids) {
        *where = s;
        return &e;
      }
  return nullptr;
}

TEST(PronounLexicon, EnoughTemplatesNounsAndTriggers) {
  EXPECT_GE(pronoun_templates().size(), 10u);
  EXPECT_GE(pronoun_nouns().size(), 40u);
  EXPECT_GE(pronoun_triggers().size(), 30u);
  std::set<std::string> pronouns;
  for (const NounClass& c : pronoun_noun_classes()) pronouns.insert(c.pronoun);
  EXPECT_EQ(pronouns, (std::set<std::string>{"he", "it", "she", "they"}));
  // A noun in several classes has one pronoun.
  std::map<std::string, std::string> pronoun_of;
  for (const NounClass& c : pronoun_noun_classes())
    for (const std::string& n : c.nouns) {
      auto [it, fresh] = pronoun_of.emplace(n, c.pronoun);
      EXPECT_EQ(it->second, c.pronoun) << n;
    }
  for (const PronounTemplate& t : pronoun_templates()) {
    EXPECT_EQ(t.a_triggers.size(), t.b_triggers.size()) << t.name;
    EXPECT_FALSE(t.a_triggers.empty()) << t.name;
  }
}

TEST(Pronoun, SizesAreAFewThousandAndAFewHundred) {
  EXPECT_GE(task().size(Split::kTrain), 2000);
  EXPECT_LE(task().size(Split::kTrain), 10000);
  for (Split s : {Split::kVal, Split::kTest}) {
    EXPECT_GE(task().size(s), 200) << split_name(s);
    EXPECT_LE(task().size(s), 1500) << split_name(s);
  }
  EXPECT_EQ(task().n_out(), task().vocab().size());
  EXPECT_EQ(task().arch(), Arch::kEncoder);
}

TEST(Pronoun, SameSeedSameBatchesOtherSeedOtherData) {
  PronounTask a(nlohmann::json{{"seed", 7}}), b(nlohmann::json{{"seed", 7}});
  PronounTask c(nlohmann::json{{"seed", 8}});
  EXPECT_EQ(a.vocab(), b.vocab());
  EXPECT_EQ(a.vocab(), c.vocab());  // the vocabulary does not depend on the seed
  for (Split s : kAllSplits) {
    ASSERT_EQ(a.size(s), b.size(s));
    std::vector<int64_t> idx;
    for (int64_t i = 0; i < a.size(s); i += 7) idx.push_back(i);
    Batch x = a.batch(s, idx), y = b.batch(s, idx);
    EXPECT_EQ(x.tokens.data, y.tokens.data);
    EXPECT_EQ(x.targets.data, y.targets.data);
    EXPECT_EQ(x.positions.data, y.positions.data);
    EXPECT_EQ(x.mask.data, y.mask.data);
  }
  std::set<Pair> test_a, test_c;
  for (const auto& e : a.examples(Split::kTest)) test_a.insert(unordered_pair(e));
  for (const auto& e : c.examples(Split::kTest)) test_c.insert(unordered_pair(e));
  EXPECT_NE(test_a, test_c);
}

TEST(Pronoun, TestNounPairsAndCombinationsAreNeverInTraining) {
  for (uint64_t seed : {0, 1, 2}) {
    PronounTask t(nlohmann::json{{"seed", seed}});
    std::set<Pair> pairs[3];
    std::set<std::tuple<int, std::string, std::string>> combos[3];
    for (Split s : kAllSplits)
      for (const PronounExample& e : t.examples(s)) {
        pairs[int(s)].insert(unordered_pair(e));
        combos[int(s)].emplace(e.template_id, e.option1, e.option2);
      }
    for (int held : {1, 2}) {
      for (const Pair& p : pairs[held])
        EXPECT_EQ(pairs[0].count(p), 0u) << p.first << "/" << p.second << " seed " << seed;
      for (const auto& c : combos[held]) EXPECT_EQ(combos[0].count(c), 0u);
    }
    for (const Pair& p : pairs[1]) EXPECT_EQ(pairs[2].count(p), 0u);
    // Every noun of a held-out pair is a class seen in training.
    std::set<std::string> train_nouns;
    for (const Pair& p : pairs[0]) train_nouns.insert({p.first, p.second});
    for (int held : {1, 2})
      for (const Pair& p : pairs[held]) {
        EXPECT_TRUE(train_nouns.count(p.first)) << p.first;
        EXPECT_TRUE(train_nouns.count(p.second)) << p.second;
      }
  }
}

TEST(Pronoun, LessonSentencesAreInTheTestSplitWithTheirLabels) {
  const std::vector<std::pair<std::string, std::string>> lessons = {
      {"the animal didn't cross the street because it was too tired", "animal"},
      {"the animal didn't cross the street because it was too wide", "street"},
      {"the trophy didn't fit in the suitcase because it was too big", "trophy"},
      {"the trophy didn't fit in the suitcase because it was too small", "suitcase"},
      {"the suitcase couldn't hold the trophy because it was too small", "suitcase"},
      {"the suitcase couldn't hold the trophy because it was too big", "trophy"}};
  for (uint64_t seed : {0, 5}) {
    PronounTask t(nlohmann::json{{"seed", seed}});
    for (const auto& [sentence, referent] : lessons) {
      Split where = Split::kTrain;
      const PronounExample* e = find_sentence(t, sentence, &where);
      ASSERT_NE(e, nullptr) << sentence;
      EXPECT_EQ(where, Split::kTest) << sentence;
      EXPECT_EQ(t.vocab().token(e->target), referent) << sentence;
      EXPECT_EQ(t.vocab().token(e->tokens[size_t(e->position)]), "it");
      // encode() finds the labels too, with or without a final period.
      for (const std::string& typed : {sentence, sentence + "."}) {
        Batch b = t.encode(typed);
        EXPECT_EQ(t.class_name(b.targets[0]), referent) << typed;
        EXPECT_EQ(b.positions[0], e->position);
      }
    }
  }
  EXPECT_EQ(task().probe(), lessons[0].first);
}

TEST(Pronoun, LabelsAreBalancedPerTemplateTriggerPositionAndNoun) {
  std::map<int, std::array<int, 2>> per_slot;
  std::map<int, std::map<std::string, int>> per_trigger;
  std::map<std::string, int> referent, distractor;
  for (Split s : kAllSplits)
    for (const PronounExample& e : task().examples(s)) {
      per_slot[e.template_id][size_t(e.referent_slot)]++;
      per_trigger[e.template_id][e.trigger]++;
      const std::string& r = e.referent_slot == 0 ? e.option1 : e.option2;
      referent[r]++;
      distractor[r == e.option1 ? e.option2 : e.option1]++;
    }
  EXPECT_EQ(per_slot.size(), pronoun_templates().size());
  for (const auto& [t, counts] : per_slot) EXPECT_EQ(counts[0], counts[1]) << t;
  for (const auto& [t, triggers] : per_trigger) {
    const PronounTemplate& tp = pronoun_templates()[size_t(t)];
    EXPECT_EQ(triggers.size(), tp.a_triggers.size() + tp.b_triggers.size());
    for (const auto& [trigger, n] : triggers) EXPECT_EQ(n, triggers.begin()->second) << trigger;
  }
  EXPECT_EQ(referent, distractor);
  // Within the training split alone, first- and second-noun referents are close to 50/50.
  int64_t first = 0;
  for (const PronounExample& e : task().examples(Split::kTrain)) first += e.referent_slot == 0;
  EXPECT_EQ(2 * first, task().size(Split::kTrain));
}

TEST(Pronoun, PositionsPointAtThePronounAndTheTwoNouns) {
  const Vocab& v = task().vocab();
  const std::set<std::string> pronouns = {"it", "he", "she", "they"};
  std::set<std::string> seen_pronouns;
  bool pronoun_first = false;
  for (Split s : kAllSplits)
    for (const PronounExample& e : task().examples(s)) {
      const std::string& p = v.token(e.tokens[size_t(e.position)]);
      ASSERT_TRUE(pronouns.count(p)) << v.decode(e.tokens);
      seen_pronouns.insert(p);
      EXPECT_EQ(e.tokens[size_t(e.referent_pos)], e.target);
      const std::string& d = v.token(e.tokens[size_t(e.distractor_pos)]);
      EXPECT_EQ(d, e.target == v.id(e.option1) ? e.option2 : e.option1);
      EXPECT_NE(e.referent_pos, e.distractor_pos);
      pronoun_first |= e.position < std::min(e.referent_pos, e.distractor_pos);
      // The pronoun appears once, so it alone cannot tell the nouns apart.
      EXPECT_EQ(std::count(e.tokens.begin(), e.tokens.end(), e.tokens[size_t(e.position)]), 1);
    }
  EXPECT_EQ(seen_pronouns, pronouns);
  EXPECT_TRUE(pronoun_first);  // word order varies: some sentences put the pronoun first
}

TEST(Pronoun, BatchIsPaddedWithMaskAndLabels) {
  const int64_t n = task().size(Split::kVal);
  std::vector<int64_t> idx = {0, n - 1, n / 2, 0};
  Batch b = task().batch(Split::kVal, idx);
  size_t longest = 0;
  for (int64_t i : idx)
    longest = std::max(longest, task().examples(Split::kVal)[size_t(i)].tokens.size());
  ASSERT_EQ(b.tokens.shape, (Shape{4, int64_t(longest)}));
  EXPECT_EQ(b.mask.shape, b.tokens.shape);
  EXPECT_EQ(b.targets.shape, Shape{4});
  EXPECT_EQ(b.positions.shape, Shape{4});
  EXPECT_TRUE(b.src.empty());
  for (int64_t r = 0; r < 4; ++r) {
    const PronounExample& e = task().examples(Split::kVal)[size_t(idx[size_t(r)])];
    for (int64_t t = 0; t < int64_t(longest); ++t) {
      const bool real = t < int64_t(e.tokens.size());
      EXPECT_EQ(b.mask[r * int64_t(longest) + t], real ? 1 : 0);
      EXPECT_EQ(b.tokens[r * int64_t(longest) + t], real ? e.tokens[size_t(t)] : 0);
    }
    EXPECT_EQ(b.targets[r], e.target);
    EXPECT_EQ(b.positions[r], e.position);
    EXPECT_LT(b.positions[r], int32_t(e.tokens.size()));
  }
  EXPECT_LE(int64_t(longest), task().max_len());
  EXPECT_THROW(task().batch(Split::kVal, {n}), Error);
  EXPECT_THROW(task().batch(Split::kVal, {}), Error);
}

TEST(Pronoun, EncodeUnknownWordsAndMissingPronoun) {
  try {
    task().encode("the animal didn't cross the stret because it was too tired");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown word 'stret'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'street'"), std::string::npos) << e.what();
  }
  try {
    task().encode("the animal didn't cross the street");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "pronoun: no pronoun (it, he, she, they) or '_' in \"the animal didn't cross the "
              "street\"");
  }
  // A sentence the task did not generate: read-out at the pronoun, answer unknown.
  Batch b = task().encode("because it was too tired the dog didn't cross the road.");
  EXPECT_EQ(b.positions[0], 1);
  EXPECT_EQ(b.targets[0], -1);
  // "_" reads as the <blank> token.
  Batch blank = task().encode("the trophy didn't fit in the suitcase because the _ was too big");
  EXPECT_EQ(task().vocab().token(blank.tokens[blank.positions[0]]), "<blank>");
}

TEST(Pronoun, OptionsRebuildTheSameTaskAndBadOptionsThrow) {
  PronounTask t(nlohmann::json{{"seed", 3}, {"combos_per_template", 10}});
  PronounTask again(t.options());
  EXPECT_EQ(t.options()["combos_per_template"], 10);
  for (Split s : kAllSplits) {
    ASSERT_EQ(t.size(s), again.size(s));
    for (int64_t i = 0; i < t.size(s); ++i)
      EXPECT_EQ(t.examples(s)[size_t(i)].tokens, again.examples(s)[size_t(i)].tokens);
  }
  EXPECT_LT(t.size(Split::kTrain), task().size(Split::kTrain));
  try {
    PronounTask bad(nlohmann::json{{"seeds", 3}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "pronoun: unknown option 'seeds' (known options: combos_per_template, data, seed, "
              "test_fraction, val_fraction)");
  }
  EXPECT_THROW(PronounTask(nlohmann::json{{"seed", "x"}}), Error);
  EXPECT_THROW(PronounTask(nlohmann::json{{"val_fraction", 0.9}}), Error);
}

TEST(Pronoun, DefaultConfigsFitTheData) {
  nlohmann::json m = task().default_model_config();
  EXPECT_EQ(m["arch"], "encoder");
  EXPECT_EQ(m["vocab_size"], task().vocab().size());
  EXPECT_EQ(m["n_out"], task().vocab().size());
  EXPECT_GE(m["max_len"].get<int64_t>(), task().max_len());
  EXPECT_EQ(m["d_model"].get<int64_t>() % m["n_heads"].get<int64_t>(), 0);
}

}  // namespace
}  // namespace qkv
