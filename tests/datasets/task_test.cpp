#include "datasets/task.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "core/error.h"
#include "test_files.h"

namespace qkv {
namespace {

/// A small data file for the data-file tasks: `line(i)` for i in [0, n).
template <typename F>
std::string data_file(const std::string& name, int n, F line) {
  const std::string path = test::temp_path(name);
  std::ofstream out(path);
  for (int i = 0; i < n; ++i) out << line(i) << '\n';
  return path;
}

// Small versions of every task, so the whole-split checks stay fast.
nlohmann::json small_options(const std::string& name) {
  const char* words[] = {"red", "green", "blue"};
  if (name == "classify")
    return {{"data", data_file("c.jsonl", 30, [&](int i) {
               return nlohmann::json{{"text", std::string("the ") + words[i % 3] + " one"},
                                     {"label", words[i % 3]}}
                   .dump();
             })}};
  if (name == "seq2seq")
    return {{"data", data_file("s.jsonl", 30, [&](int i) {
               return nlohmann::json{{"source", words[i % 3]}, {"target", std::to_string(i % 3)}}
                   .dump();
             })}};
  if (name == "lm")
    return {{"data", data_file("l.txt", 40, [&](int i) { return words[i % 3]; })},
            {"block_size", 4}};
  if (name == "copy" || name == "reverse" || name == "sort")
    return {{"seed", 1}, {"n_train", 400}, {"n_val", 50}, {"n_test", 50}};
  if (name == "modadd") return {{"seed", 1}, {"p", 23}};
  if (name == "numbers") return {{"seed", 1}, {"max_number", 999}};
  if (name == "charlm") return {{"seed", 1}, {"block_size", 16}};
  return {{"seed", 1}, {"combos_per_template", 8}};
}

TEST(Factory, KnowsEveryTaskAndNamesThemWhenAskedForAnother) {
  EXPECT_EQ(known_tasks(),
            (std::vector<std::string>{"charlm", "classify", "copy", "lm", "modadd", "numbers",
                                      "pronoun", "reverse", "seq2seq", "sort"}));
  try {
    make_task("translate");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "unknown task 'translate' (known tasks: charlm, classify, copy, lm, modadd, numbers, "
              "pronoun, reverse, seq2seq, sort)");
  }
  try {
    make_task("copy", {{"data", "x.txt"}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "copy: unknown option 'data' (known options: max_digits, min_digits, n_test, "
              "n_train, n_val, seed)");
  }
  try {
    make_task("modadd", {{"p", 1}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "modadd: option 'p' = 1 is out of range [2, 1000]");
  }
  try {
    make_task("modadd", {{"p", "seven"}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "modadd: option 'p' must be an integer, got \"seven\"");
  }
  // core/json_reader.h's rule, as the model and train configs read it too.
  EXPECT_EQ(make_task("modadd", {{"p", 97.0}})->options()["p"], 97);
  EXPECT_EQ(make_task("copy", {{"n_train", 1000.0}})->options()["n_train"], 1000);
  EXPECT_EQ(test::error_of([] {
              make_task("modadd", {{"p", 97.5}});
            }),
            "modadd: option 'p' must be an integer, got 97.5");
  EXPECT_THROW(make_task("copy", nlohmann::json::array()), Error);
  // Null options count as absent.
  EXPECT_EQ(make_task("modadd", {{"p", nullptr}, {"seed", 2}})->options()["p"], 97);
}

TEST(Factory, EveryTaskHasConsistentBatchesConfigsAndText) {
  const std::vector<std::string> model_keys = {
      "activation", "arch",     "d_ff",  "d_model", "dropout", "ln_eps",         "max_len",
      "n_heads",    "n_layers", "n_out", "norm",    "pos",     "tie_embeddings", "vocab_size"};
  const std::set<std::string> train_keys = {"batch_size", "clip",      "eval_every",
                                            "lr",         "optimizer", "schedule",
                                            "steps",      "warmup",    "weight_decay"};
  for (const std::string& name : known_tasks()) {
    SCOPED_TRACE(name);
    std::unique_ptr<Task> t = make_task(name, small_options(name));
    EXPECT_EQ(t->name(), name);
    const std::string arch = arch_name(t->arch());
    ASSERT_TRUE(arch == "encoder" || arch == "decoder" || arch == "seq2seq");

    // Configs: exactly docs/model.md's keys, sized for the task.
    nlohmann::json m = t->default_model_config();
    std::set<std::string> keys, want(model_keys.begin(), model_keys.end());
    for (auto it = m.begin(); it != m.end(); ++it) keys.insert(it.key());
    if (arch == "seq2seq") want.insert({"src_vocab_size", "src_max_len"});
    EXPECT_EQ(keys, want);
    EXPECT_EQ(m["arch"], arch);
    EXPECT_EQ(m["vocab_size"], t->vocab().size());
    EXPECT_EQ(m["n_out"], t->n_out());
    EXPECT_GE(m["max_len"].get<int64_t>(), t->max_len());
    EXPECT_EQ(m["d_model"].get<int64_t>() % m["n_heads"].get<int64_t>(), 0);
    if (arch == "seq2seq") {
      EXPECT_EQ(m["src_vocab_size"], t->src_vocab().size());
      EXPECT_GE(m["src_max_len"].get<int64_t>(), t->src_max_len());
    }
    if (arch != "encoder") {
      EXPECT_EQ(t->n_out(), t->vocab().size());
    }
    nlohmann::json tc = t->default_train_config();
    std::set<std::string> tkeys;
    for (auto it = tc.begin(); it != tc.end(); ++it) tkeys.insert(it.key());
    EXPECT_EQ(tkeys, train_keys);

    // Whole splits, in batches: shapes, masks, ignored targets, id ranges.
    for (Split s : kAllSplits) {
      ASSERT_GT(t->size(s), 0) << split_name(s);
      for (int64_t start = 0; start < t->size(s); start += 256) {
        Batch b = t->batch_range(s, start, 256);
        const int64_t B = b.batch_size(), T = b.seq_len();
        ASSERT_EQ(b.mask.shape, b.tokens.shape);
        EXPECT_LE(T, t->max_len());
        for (int64_t i = 0; i < B * T; ++i) {
          EXPECT_TRUE(b.tokens[i] >= 0 && b.tokens[i] < t->vocab().size());
          EXPECT_EQ(b.mask[i] == 0, b.tokens[i] == 0) << "pad <=> mask 0";
        }
        if (arch == "encoder") {
          ASSERT_EQ(b.targets.shape, Shape{B});
          ASSERT_EQ(b.positions.shape, Shape{B});
          for (int64_t r = 0; r < B; ++r) {
            EXPECT_TRUE(b.targets[r] >= 0 && b.targets[r] < t->n_out());
            EXPECT_EQ(b.mask[r * T + b.positions[r]], 1);
          }
        } else {
          ASSERT_EQ(b.targets.shape, b.tokens.shape);
          EXPECT_TRUE(b.positions.empty());
          int64_t targeted = 0;
          for (int64_t i = 0; i < B * T; ++i) {
            if (b.mask[i] == 0) {
              EXPECT_EQ(b.targets[i], -1);
            }
            EXPECT_TRUE(b.targets[i] >= -1 && b.targets[i] < t->vocab().size());
            targeted += b.targets[i] >= 0;
          }
          EXPECT_GE(targeted, B);  // every example has something to predict
        }
        if (arch == "seq2seq") {
          ASSERT_EQ(b.src.shape[0], B);
          ASSERT_EQ(b.src_mask.shape, b.src.shape);
          EXPECT_LE(b.src.shape[1], t->src_max_len());
        } else {
          EXPECT_TRUE(b.src.empty());
        }
      }
    }

    // The probe encodes, and rebuilding from options() gives the same batches.
    Batch probe = t->encode(t->probe());
    EXPECT_EQ(probe.batch_size(), 1);
    std::unique_ptr<Task> again = make_task(name, t->options());
    Batch x = t->batch(Split::kTest, {0}), y = again->batch(Split::kTest, {0});
    EXPECT_EQ(x.tokens.data, y.tokens.data);
    EXPECT_EQ(x.targets.data, y.targets.data);
    EXPECT_FALSE(t->decode(x.tokens.data).empty());
  }
}

TEST(Score, EncoderAccuracy) {
  Batch b;
  b.targets = IndexTensor(Shape{4}, {3, 5, -1, 2});
  Score s = score_predictions(b, IndexTensor(Shape{4}, {3, 1, 7, 2}));
  EXPECT_EQ(s.examples, 3);
  EXPECT_EQ(s.correct_examples, 2);
  EXPECT_DOUBLE_EQ(s.accuracy(), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(s.token_accuracy(), 2.0 / 3.0);
}

TEST(Score, DecoderExactSequenceAndTokenAccuracy) {
  Batch b;
  // Row 0: all right; row 1: one of two wrong; row 2: nothing to predict.
  b.targets = IndexTensor(Shape{3, 3}, {-1, 4, 5, 6, -1, 7, -1, -1, -1});
  Score s = score_predictions(b, IndexTensor(Shape{3, 3}, {9, 4, 5, 6, 0, 1, 2, 3, 4}));
  EXPECT_EQ(s.examples, 2);
  EXPECT_EQ(s.correct_examples, 1);
  EXPECT_EQ(s.tokens, 4);
  EXPECT_EQ(s.correct_tokens, 3);
  EXPECT_DOUBLE_EQ(s.accuracy(), 0.5);
  EXPECT_DOUBLE_EQ(s.token_accuracy(), 0.75);
  Score total = s;
  total += s;
  EXPECT_EQ(total.tokens, 8);
  EXPECT_EQ(Score().accuracy(), 0.0);
  EXPECT_THROW(score_predictions(b, IndexTensor(Shape{3}, {1, 2, 3})), Error);
}

TEST(Splits, NamesParse) {
  for (Split s : kAllSplits) EXPECT_EQ(parse_split(split_name(s)), s);
  EXPECT_EQ(parse_split("validation"), Split::kVal);
  try {
    parse_split("dev");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "unknown split 'dev' (known splits: train, val, test)");
  }
}

}  // namespace
}  // namespace qkv
