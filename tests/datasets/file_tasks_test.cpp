// The data-file tasks (classify, seq2seq, lm): parsing, splits, vocabularies from the training
// split only, <unk> counting, file:line messages, and the rebuild from a checkpoint's vocabulary
// when the data file has moved.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "datasets/file_classify.h"
#include "datasets/file_data.h"
#include "datasets/file_lm.h"
#include "datasets/file_seq2seq.h"
#include "test_files.h"

namespace qkv {
namespace {

using json = nlohmann::json;
using test::error_of;

/// Writes `text` to a fresh file of the test program's and returns its path.
std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = test::temp_path(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::string jsonl(const std::vector<json>& records) {
  std::string s;
  for (const json& r : records) s += r.dump() + "\n";
  return s;
}

std::vector<int32_t> row(const Batch& b, int64_t r) {
  const int64_t T = b.tokens.shape[1];
  std::vector<int32_t> out;
  for (int64_t i = 0; i < T; ++i)
    if (b.mask[r * T + i]) out.push_back(b.tokens[r * T + i]);
  return out;
}

// ------------------------------------------------------------------------------------------------
// Splits

TEST(FileData, SeededFractionSplitsAreDeterministicAndSized) {
  const std::vector<std::optional<Split>> untagged(100);
  const auto a = assign_splits(untagged, false, false, 0.2, 0.1, 7);
  const auto b = assign_splits(untagged, false, false, 0.2, 0.1, 7);
  const auto c = assign_splits(untagged, false, false, 0.2, 0.1, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(std::count(a.begin(), a.end(), Split::kVal), 20);
  EXPECT_EQ(std::count(a.begin(), a.end(), Split::kTest), 10);
  EXPECT_EQ(std::count(a.begin(), a.end(), Split::kTrain), 70);
}

TEST(FileData, SplitFieldsWinAndAGivenSplitIsNotDrawn) {
  std::vector<std::optional<Split>> tagged(10);
  tagged[3] = Split::kVal;
  tagged[4] = Split::kTrain;
  // val has a tagged record, so only test is drawn (one record: round(9 * 0.1) = 1).
  const auto s = assign_splits(tagged, /*val_given=*/true, false, 0.5, 0.1, 0);
  EXPECT_EQ(s[3], Split::kVal);
  EXPECT_EQ(s[4], Split::kTrain);
  EXPECT_EQ(std::count(s.begin(), s.end(), Split::kVal), 1);
  EXPECT_EQ(std::count(s.begin(), s.end(), Split::kTest), 1);
  // A small positive fraction still draws one record.
  const auto t = assign_splits(std::vector<std::optional<Split>>(5), false, false, 0.01, 0.0, 0);
  EXPECT_EQ(std::count(t.begin(), t.end(), Split::kVal), 1);
  EXPECT_EQ(std::count(t.begin(), t.end(), Split::kTest), 0);
}

// ------------------------------------------------------------------------------------------------
// classify

std::string classify_file() {
  return write_file("cls.jsonl", jsonl({
                                     {{"text", "The food was good."}, {"label", "pos"}},
                                     {{"text", "The food was bad."}, {"label", "neg"}},
                                     {{"text", "Great movie"}, {"label", "pos"}},
                                     {{"text", "Awful movie"}, {"label", "neg"}},
                                     {{"text", "A good zebra"}, {"label", "pos"}, {"split", "val"}},
                                     {{"text", "bad food"}, {"label", "neg"}, {"split", "test"}},
                                 }));
}

TEST(Classify, LabelsSortedClsReadOutAndVocabularyFromTrainOnly) {
  ClassifyTask t(json{{"data", classify_file()}});
  EXPECT_EQ(t.labels(), (std::vector<std::string>{"neg", "pos"}));
  EXPECT_EQ(t.n_out(), 2);
  EXPECT_EQ(t.class_name(1), "pos");
  EXPECT_EQ(t.size(Split::kTrain), 4);
  EXPECT_EQ(t.size(Split::kVal), 1);
  EXPECT_EQ(t.size(Split::kTest), 1);
  // "<pad>", "<unk>", "<cls>", then the sorted training words; "zebra" (val only) is not there.
  EXPECT_EQ(t.vocab().tokens(),
            (std::vector<std::string>{"<pad>", "<unk>", "<cls>", ".", "awful", "bad", "food",
                                      "good", "great", "movie", "the", "was"}));
  const Batch b = t.batch(Split::kTrain, {0, 3});
  EXPECT_EQ(t.vocab().decode(row(b, 0)), "<cls> the food was good.");
  EXPECT_EQ(b.positions[0], 0);
  EXPECT_EQ(b.targets[0], 1);  // pos
  EXPECT_EQ(b.targets[1], 0);  // neg
  EXPECT_EQ(t.max_len(), 6);   // "<cls> the food was good ."
}

TEST(Classify, UnknownWordsReadAsUnkAndAreCounted) {
  ClassifyTask t(json{{"data", classify_file()}});
  EXPECT_EQ(t.unknown_tokens(Split::kTrain), 0);
  EXPECT_EQ(t.unknown_tokens(Split::kVal), 2);  // "a", "zebra"
  EXPECT_EQ(t.total_tokens(Split::kVal), 4);    // <cls> a good zebra
  EXPECT_EQ(t.unknown_tokens(Split::kTest), 0);
  const Batch v = t.batch(Split::kVal, {0});
  EXPECT_EQ(t.vocab().decode(row(v, 0)), "<cls> <unk> good <unk>");
}

TEST(Classify, QueryWordIsTheReadOutAndBracketsMarkItInEncode) {
  const std::string path = write_file(
      "query.jsonl",
      jsonl({{{"text", "The cup fell off the table because it was slippery"},
              {"label", "cup"},
              {"query", "it"}},
             {{"text", "The cup fell off the table because it was wobbly"},
              {"label", "table"},
              {"query", "It"}},
             {{"text", "The table held the cup"}, {"label", "table"}, {"split", "val"}},
             {{"text", "it fell"}, {"label", "cup"}, {"split", "test"}, {"query", "it"}}}));
  ClassifyTask t(json{{"data", path}});
  const Batch b = t.batch(Split::kTrain, {0, 1});
  EXPECT_EQ(b.positions[0], 7);  // the, cup, fell, off, the, table, because, [it]
  EXPECT_EQ(t.vocab().token(b.tokens[7]), "it");
  EXPECT_EQ(t.vocab().token(b.tokens[0]), "the");        // no <cls> in front
  EXPECT_EQ(t.batch(Split::kVal, {0}).positions[0], 0);  // no query: <cls>
  EXPECT_EQ(t.probe(), "the cup fell off the table because [it] was slippery");  // val has <unk>

  const Batch e = t.encode("the cup fell because [it] was slippery");
  EXPECT_EQ(e.positions[0], 4);  // the cup fell because [it]
  EXPECT_EQ(e.targets[0], -1);
  EXPECT_EQ(t.vocab().decode(row(e, 0)), "the cup fell because it was slippery");
  const Batch c = t.encode("the cup fell");
  EXPECT_EQ(c.positions[0], 0);
  EXPECT_EQ(t.vocab().token(c.tokens[0]), "<cls>");
  EXPECT_EQ(error_of([&] { t.encode("the cup [fell off]"); }),
            "classify: the word in brackets must be one word, got \"[fell off]\"");
  EXPECT_NE(error_of([&] { t.encode("the cupp fell"); }).find("did you mean 'cup'"),
            std::string::npos);
}

TEST(Classify, MalformedRecordsNameTheFileAndLine) {
  auto message = [](const std::string& name, const std::string& text) {
    const std::string path = write_file(name, text);
    return error_of([&] { ClassifyTask(json{{"data", path}}); });
  };
  const std::string ok = R"({"text": "a b", "label": "x"})"
                         "\n";
  EXPECT_EQ(message("m1.jsonl", ok + ok + R"({"text": "a b"})" + "\n"),
            test::temp_path("m1.jsonl") + ":3: missing field 'label'");
  EXPECT_EQ(message("m2.jsonl", ok + "\n" + "{\"text\": \n")
                .rfind(test::temp_path("m2.jsonl") + ":3: not valid JSON (", 0),
            0u);
  EXPECT_EQ(message("m3.jsonl", ok + R"({"text": "a b", "label": "y", "query": "c"})" + "\n"),
            test::temp_path("m3.jsonl") + ":2: the query word 'c' is not in the text");
  EXPECT_EQ(
      message("m4.jsonl", ok + R"({"text": "a b", "label": "y", "split": "dev"})" + "\n"),
      test::temp_path("m4.jsonl") + ":2: unknown split 'dev' (known splits: train, val, test)");
  EXPECT_EQ(message("m5.jsonl", ok + R"({"text": "a b", "label": [1]})" + "\n"),
            test::temp_path("m5.jsonl") +
                ":2: field 'label' must be a non-empty string or an integer, got [1]");
  EXPECT_EQ(message("m6.jsonl", ok + R"({"text": 3, "label": "y"})" + "\n"),
            test::temp_path("m6.jsonl") + ":2: field 'text' must be a string, got 3");
  EXPECT_EQ(message("m7.jsonl", ok + ok), "classify: '" + test::temp_path("m7.jsonl") +
                                              "' has 1 label ('x'); a classifier needs at least "
                                              "two classes");
  EXPECT_EQ(error_of([] { ClassifyTask(json::object()); }),
            "classify: no data file given: pass --data FILE (or \"data\" in the config's task)");
  EXPECT_EQ(error_of([] {
              ClassifyTask(json{{"data", "/nonexistent/x.jsonl"}});
            }),
            "cannot open classify data file '/nonexistent/x.jsonl' (does it exist?)");
}

TEST(Classify, GivenLabelsFixTheClassesAndAnUnlistedLabelIsNamed) {
  const std::string path = classify_file();
  ClassifyTask t(json{{"data", path}, {"labels", {"pos", "neg", "meh"}}});
  EXPECT_EQ(t.n_out(), 3);
  EXPECT_EQ(t.batch(Split::kTrain, {0}).targets[0], 0);  // "pos" is class 0 now
  EXPECT_EQ(error_of([&] {
              ClassifyTask(json{{"data", path}, {"labels", {"pos", "meh"}}});
            }),
            path + ":2: label 'neg' is not one of the task's labels (pos, meh)");
}

TEST(Classify, OptionsRebuildTheSameTaskAndAMovedFileKeepsVocabularyAndClassNames) {
  const std::string path = write_file("moved.jsonl", jsonl({
                                                         {{"text", "one two"}, {"label", "b"}},
                                                         {{"text", "two three"}, {"label", "a"}},
                                                         {{"text", "three"}, {"label", "b"}},
                                                         {{"text", "four"}, {"label", "a"}},
                                                     }));
  const auto t =
      make_task("classify", {{"data", path}, {"val_fraction", 0.0}, {"test_fraction", 0.0}});
  const json options = t->options();
  EXPECT_EQ(options["labels"], json({"a", "b"}));
  EXPECT_EQ(options["max_len"], 3);
  const auto same = make_task("classify", options);
  EXPECT_EQ(same->vocab(), t->vocab());
  EXPECT_EQ(same->options(), options);

  const StoredVocab stored{t->vocab().tokens(), {}};
  std::remove(path.c_str());
  EXPECT_NE(error_of([&] { make_task("classify", options); }).find("cannot open"),
            std::string::npos);
  const auto moved = make_task("classify", options, &stored);
  EXPECT_EQ(moved->vocab(), t->vocab());
  EXPECT_EQ(moved->n_out(), 2);
  EXPECT_EQ(moved->class_name(0), "a");
  EXPECT_EQ(moved->max_len(), 3);
  for (Split s : kAllSplits) EXPECT_EQ(moved->size(s), 0);
  EXPECT_EQ(moved->vocab().decode(row(moved->encode("two one"), 0)), "<cls> two one");
  EXPECT_EQ(moved->options(), options);
}

// ------------------------------------------------------------------------------------------------
// seq2seq

std::string pairs_file() {
  return write_file("pairs.jsonl",
                    jsonl({
                        {{"source", "one two"}, {"target", "1 2"}},
                        {{"source", "two one"}, {"target", "2 1"}},
                        {{"source", "two"}, {"target", "2"}},
                        {{"source", "three one"}, {"target", "3 1"}, {"split", "val"}},
                        {{"source", "one"}, {"target", "1"}, {"split", "test"}},
                    }));
}

TEST(Seq2Seq, BatchesAreBosTargetsEosOverTheSource) {
  Seq2SeqTask t(json{{"data", pairs_file()}});
  EXPECT_EQ(t.src_vocab().tokens(), (std::vector<std::string>{"<pad>", "<unk>", "one", "two"}));
  EXPECT_EQ(t.vocab().tokens(),
            (std::vector<std::string>{"<pad>", "<unk>", "<bos>", "<eos>", "1", "2"}));
  EXPECT_EQ(t.max_len(), 3);  // <bos> 1 2
  EXPECT_EQ(t.src_max_len(), 2);
  const Batch b = t.batch(Split::kTrain, {0, 2});
  EXPECT_EQ(b.src.shape, (Shape{2, 2}));
  EXPECT_EQ(t.decode_src({b.src[0], b.src[1]}), "one two");
  EXPECT_EQ(b.tokens.shape, (Shape{2, 3}));
  EXPECT_EQ(t.decode({b.tokens[0], b.tokens[1], b.tokens[2]}), "<bos> 1 2");
  EXPECT_EQ(t.decode({b.targets[0], b.targets[1], b.targets[2]}), "1 2 <eos>");
  EXPECT_EQ(b.targets[5], -1);  // the second row is "2 <eos>" and padding
  // "three" and "3" are val-only: <unk> on both sides, counted.
  EXPECT_EQ(t.unknown_tokens(Split::kVal), 2);
  EXPECT_EQ(t.total_tokens(Split::kVal), 4);
  EXPECT_EQ(t.unknown_tokens(Split::kTest), 0);
  const Batch e = t.encode("two one");
  EXPECT_EQ(t.decode(e.tokens.data), "<bos>");
  EXPECT_EQ(e.targets[0], -1);
  EXPECT_EQ(t.probe(), "one two");  // the val source has <unk>
}

TEST(Seq2Seq, CharacterLevelAndMessages) {
  Seq2SeqTask t(json{{"data", pairs_file()}, {"level", "char"}});
  EXPECT_EQ(t.src_vocab().level(), Level::kChar);
  EXPECT_EQ(t.src_max_len(), 9);  // "three one"
  const std::string bad = write_file("bad_pairs.jsonl", R"({"source": "a"})"
                                                        "\n");
  EXPECT_EQ(error_of([&] {
              Seq2SeqTask(json{{"data", bad}});
            }),
            bad + ":1: missing field 'target'");
  const std::string empty = write_file("empty_pairs.jsonl", R"({"source": "a", "target": " "})"
                                                            "\n");
  EXPECT_EQ(error_of([&] {
              Seq2SeqTask(json{{"data", empty}});
            }),
            empty + ":1: field 'target' is empty");
  EXPECT_EQ(error_of([&] {
              Seq2SeqTask(json{{"data", bad}, {"level", "byte"}});
            }),
            "seq2seq: option 'level' must be \"word\" or \"char\", got \"byte\"");
}

TEST(Seq2Seq, ValAndTestFilesAndAMovedFile) {
  const std::string val =
      write_file("val_pairs.jsonl", jsonl({{{"source", "two"}, {"target", "2"}}}));
  const auto t = make_task("seq2seq", {{"data", pairs_file()}, {"val_data", val}});
  EXPECT_EQ(t->size(Split::kVal), 1 + 1);  // the file's and the record tagged "val"
  EXPECT_EQ(t->size(Split::kTest), 1);
  const StoredVocab stored{t->vocab().tokens(), t->src_vocab().tokens()};
  const json options = t->options();
  std::remove(options["data"].get<std::string>().c_str());
  const auto moved = make_task("seq2seq", options, &stored);
  EXPECT_EQ(moved->size(Split::kTrain), 0);
  EXPECT_EQ(moved->src_vocab(), t->src_vocab());
  EXPECT_EQ(moved->vocab(), t->vocab());
  EXPECT_EQ(moved->max_len(), t->max_len());
  EXPECT_EQ(moved->default_model_config(), t->default_model_config());
  EXPECT_EQ(moved->decode_src(moved->encode("one two").src.data), "one two");
}

// ------------------------------------------------------------------------------------------------
// lm

TEST(LM, CharactersInOneArrayContiguousSplitsAndTrainOnlyVocabulary) {
  // 200 characters: train 180 of "ab", val 10, test 10; 'c' and 'd' appear only after train.
  std::string text;
  for (int i = 0; i < 90; ++i) text += "ab";
  text += "abababcaba";   // val
  text += "dbababab\nb";  // test
  const std::string path = write_file("chars.txt", text);
  LMTask t(json{{"data", path}, {"block_size", 4}});
  EXPECT_EQ(t.vocab().tokens(), (std::vector<std::string>{"<pad>", "<unk>", "a", "b"}));
  EXPECT_EQ(t.total_tokens(Split::kTrain), 180);
  EXPECT_EQ(t.total_tokens(Split::kVal), 10);
  EXPECT_EQ(t.total_tokens(Split::kTest), 10);
  EXPECT_EQ(t.unknown_tokens(Split::kVal), 1);   // c
  EXPECT_EQ(t.unknown_tokens(Split::kTest), 2);  // d, \n
  EXPECT_EQ(t.size(Split::kTrain), 176);
  EXPECT_EQ(t.size(Split::kVal), 2);  // (10 - 1) / 4
  const Batch v = t.batch(Split::kVal, {1});
  EXPECT_EQ(t.decode(v.tokens.data), "ab<unk>a");
  EXPECT_EQ(t.decode(v.targets.data), "b<unk>ab");
  EXPECT_EQ(t.options()["block_size"], 4);
  // The default block_size shrinks to fit the shortest split.
  LMTask d(json{{"data", path}});
  EXPECT_EQ(d.max_len(), 9);
  EXPECT_EQ(d.options()["block_size"], 9);
}

TEST(LM, WordLevelPromptsAndMessages) {
  std::string text;
  for (int i = 0; i < 30; ++i) text += "The cat sat. The dog ran!\n";
  const std::string path = write_file("words.txt", text);
  LMTask t(json{{"data", path}, {"level", "word"}, {"val_fraction", 0.1}, {"test_fraction", 0.1}});
  EXPECT_EQ(t.vocab().tokens(), (std::vector<std::string>{"<pad>", "<unk>", "!", ".", "cat", "dog",
                                                          "ran", "sat", "the"}));
  EXPECT_EQ(
      t.total_tokens(Split::kTrain) + t.total_tokens(Split::kVal) + t.total_tokens(Split::kTest),
      240);
  const Batch p = t.encode("the cat", /*with_answer=*/false);
  EXPECT_EQ(t.decode(p.tokens.data), "the cat");
  EXPECT_EQ(p.targets[0], -1);
  EXPECT_NE(error_of([&] { t.encode("the cow"); }).find("unknown word 'cow'"), std::string::npos);

  const std::string bad = write_file("bad.txt", "fine line\nbad \xff byte\n");
  EXPECT_EQ(error_of([&] {
              LMTask(json{{"data", bad}});
            }).rfind(bad + ":2: not valid UTF-8 text", 0),
            0u);
  const std::string tiny = write_file("tiny.txt", "abc");
  EXPECT_EQ(error_of([&] {
              LMTask(json{{"data", tiny}});
            }).rfind("lm: '" + tiny + "' is too short", 0),
            0u);
}

TEST(LM, AMovedFileKeepsTheVocabularyAndBlockSize) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += "hello world ";
  const std::string path = write_file("moved.txt", text);
  const auto t = make_task("lm", {{"data", path}});
  const StoredVocab stored{t->vocab().tokens(), {}};
  std::remove(path.c_str());
  const auto moved = make_task("lm", t->options(), &stored);
  EXPECT_EQ(moved->vocab(), t->vocab());
  EXPECT_EQ(moved->max_len(), t->max_len());
  EXPECT_EQ(moved->size(Split::kTrain), 0);
  EXPECT_EQ(moved->decode(moved->encode("hello").tokens.data), "hello");
}

}  // namespace
}  // namespace qkv
