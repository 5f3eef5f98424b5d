#include "datasets/winogrande.h"

#include <gtest/gtest.h>

#include <functional>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "core/error.h"
#include "datasets/pronoun.h"

namespace qkv {
namespace {

// Files this process wrote, removed when it exits.
struct TempFiles {
  std::vector<std::string> paths;
  ~TempFiles() {
    for (const std::string& p : paths) std::remove(p.c_str());
  }
};
TempFiles temp_files;

// A file name of this process's own, so parallel test runs do not share files.
std::string temp_path(const std::string& name) {
  std::string path = ::testing::TempDir() + "qkv_" + std::to_string(::getpid()) + "_" + name;
  temp_files.paths.push_back(path);
  return path;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(WinoGrande, FormatAndParseOneLine) {
  WinoRecord r{"q1", "The trophy didn't fit in the suitcase because the _ was too big.", "trophy",
               "suitcase", "1"};
  const std::string line = format_winogrande_line(r);
  EXPECT_EQ(line,
            R"({"qID":"q1","sentence":"The trophy didn't fit in the suitcase because the _ was )"
            R"(too big.","option1":"trophy","option2":"suitcase","answer":"1"})");
  EXPECT_EQ(parse_winogrande_line(line, "x"), r);
  // WinoGrande's own field order, extra fields and an integer answer are accepted.
  WinoRecord w = parse_winogrande_line(
      R"({"answer": 2, "option2": "Dennis", "option1": "Ian", "qID": "3QH-2", "extra": [1],)"
      R"( "sentence": "Ian volunteered to eat Dennis's menudo because _ despised eating intestine."})",
      "f:1");
  EXPECT_EQ(w.answer, "2");
  EXPECT_EQ(w.option1, "Ian");
  // A test file has no answer.
  EXPECT_EQ(
      parse_winogrande_line(R"({"sentence":"a _ b","option1":"x","option2":"y"})", "f").answer, "");
}

TEST(WinoGrande, BadLinesNameTheFileAndLine) {
  const std::string path = temp_path("bad.jsonl");
  write_file(path,
             "{\"sentence\":\"a _ b\",\"option1\":\"x\",\"option2\":\"y\",\"answer\":\"1\"}\n"
             "\n"
             "{\"sentence\":\"no blank\",\"option1\":\"x\",\"option2\":\"y\",\"answer\":\"1\"}\n");
  EXPECT_EQ(error_of([&] { read_winogrande(path); }),
            path + ":3: the sentence must have exactly one '_' (where an option goes), it has 0");
  write_file(path, "{\"sentence\":\"a _ b\",\"option1\":\"x\",\"answer\":\"1\"}\n");
  EXPECT_EQ(error_of([&] { read_winogrande(path); }), path + ":1: missing field 'option2'");
  write_file(path,
             "{\"sentence\":\"a _ b\",\"option1\":\"x\",\"option2\":\"y\",\"answer\":\"3\"}\n");
  EXPECT_EQ(error_of([&] { read_winogrande(path); }),
            path + ":1: field 'answer' must be \"1\" or \"2\", got \"3\"");
  write_file(path, "not json\n");
  EXPECT_EQ(error_of([&] { read_winogrande(path); }).rfind(path + ":1: not valid JSON (", 0), 0u);
  EXPECT_EQ(error_of([] { read_winogrande("/nonexistent/dir/w.jsonl"); }),
            "cannot open WinoGrande file '/nonexistent/dir/w.jsonl' (does it exist?)");
}

TEST(WinoGrande, ExportWritesTheLessonPairAsWinoGrande) {
  PronounTask t(nlohmann::json{{"seed", 0}});
  std::vector<WinoRecord> test = t.winogrande(Split::kTest);
  ASSERT_EQ(int64_t(test.size()), t.size(Split::kTest));
  auto has = [&](const WinoRecord& want) {
    return std::any_of(test.begin(), test.end(), [&](const WinoRecord& r) {
      return r.sentence == want.sentence && r.option1 == want.option1 &&
             r.option2 == want.option2 && r.answer == want.answer;
    });
  };
  EXPECT_TRUE(has({"", "The animal didn't cross the street because the _ was too tired.", "animal",
                   "street", "1"}));
  EXPECT_TRUE(has({"", "The animal didn't cross the street because the _ was too wide.", "animal",
                   "street", "2"}));
  EXPECT_TRUE(has({"", "Because the _ was too wide, the animal didn't cross the street.", "animal",
                   "street", "2"}));
  EXPECT_EQ(test[0].qid, "qkv-pronoun-test-0");
}

TEST(WinoGrande, RoundTripThroughAFile) {
  PronounTask t(nlohmann::json{{"seed", 4}});
  // Export every split into one file, import it, export again: the same records come back.
  std::vector<WinoRecord> all;
  for (Split s : kAllSplits)
    for (const WinoRecord& r : t.winogrande(s)) all.push_back(r);
  const std::string path = temp_path("roundtrip.jsonl");
  write_winogrande(path, all);
  EXPECT_EQ(read_winogrande(path), all);

  PronounTask imported(nlohmann::json{{"data", path}, {"seed", 4}});
  EXPECT_EQ(imported.size(Split::kTrain) + imported.size(Split::kVal) + imported.size(Split::kTest),
            int64_t(all.size()));
  std::vector<WinoRecord> back;
  for (Split s : kAllSplits)
    for (const WinoRecord& r : imported.winogrande(s)) back.push_back(r);
  auto key = [](const WinoRecord& r) { return r.qid; };
  auto by_qid = [&](const WinoRecord& a, const WinoRecord& b) { return key(a) < key(b); };
  std::sort(all.begin(), all.end(), by_qid);
  std::sort(back.begin(), back.end(), by_qid);
  EXPECT_EQ(back, all);

  // Re-exporting an imported split writes its lines byte for byte.
  const std::string again = temp_path("again.jsonl");
  imported.export_winogrande(Split::kTest, again);
  std::string expected;
  for (const WinoRecord& r : imported.winogrande(Split::kTest))
    expected += format_winogrande_line(r) + "\n";
  EXPECT_EQ(read_file(again), expected);

  // Imported examples: <blank> at the read-out, the answer's noun as the class, nouns located.
  const Vocab& v = imported.vocab();
  for (Split s : kAllSplits)
    for (const PronounExample& e : imported.examples(s)) {
      ASSERT_TRUE(e.has_source);
      EXPECT_EQ(v.token(e.tokens[size_t(e.position)]), "<blank>");
      const std::string& answer = e.source.answer == "1" ? e.source.option1 : e.source.option2;
      EXPECT_EQ(v.token(e.target), answer);
      EXPECT_EQ(e.tokens[size_t(e.referent_pos)], e.target);
      EXPECT_EQ(v.token(e.tokens[size_t(e.distractor_pos)]),
                e.source.answer == "1" ? e.source.option2 : e.source.option1);
      EXPECT_EQ(v.token(e.tokens[size_t(e.position) - 1]), "the");
      EXPECT_EQ(v.token(e.tokens.back()), ".");
    }
  // Imported splits are made on option pairs too.
  std::set<std::pair<std::string, std::string>> train;
  for (const PronounExample& e : imported.examples(Split::kTrain))
    train.insert(std::minmax(e.option1, e.option2));
  for (const PronounExample& e : imported.examples(Split::kTest))
    EXPECT_EQ(train.count(std::minmax(e.option1, e.option2)), 0u);
  Batch b = imported.batch(Split::kTest, {0});
  EXPECT_EQ(b.positions[0], imported.examples(Split::kTest)[0].position);
}

TEST(WinoGrande, ImportsRealStyleRecords) {
  const std::string path = temp_path("real.jsonl");
  write_file(
      path,
      R"({"qID":"a-1","sentence":"The trophy doesn't fit into the brown suitcase because the _ is too large.","option1":"trophy","option2":"suitcase","answer":"1"})"
      "\n"
      R"({"qID":"a-2","sentence":"The trophy doesn't fit into the brown suitcase because the _ is too small.","option1":"the trophy","option2":"The Suitcase","answer":"2"})"
      "\n"
      R"({"qID":"b-1","sentence":"Ian volunteered to eat Dennis's menudo because _ despised eating intestine.","option1":"Ian","option2":"Dennis"})"
      "\n");
  PronounTask t(nlohmann::json{{"data", path}, {"val_fraction", 0.0}, {"test_fraction", 0.0}});
  ASSERT_EQ(t.size(Split::kTrain), 3);
  const auto& ex = t.examples(Split::kTrain);
  const Vocab& v = t.vocab();
  EXPECT_EQ(v.decode(ex[0].tokens),
            "the trophy doesn't fit into the brown suitcase because the <blank> is too large.");
  EXPECT_EQ(v.token(ex[0].target), "trophy");
  EXPECT_EQ(v.token(ex[1].target), "suitcase");  // options reduced to their head words
  EXPECT_EQ(ex[1].referent_pos, 7);
  EXPECT_EQ(ex[2].target, -1);  // no answer
  EXPECT_EQ(v.token(ex[2].tokens[size_t(ex[2].position)]), "<blank>");
  // "dennis's" is one token, so the option is not found in the sentence.
  EXPECT_TRUE(v.contains("dennis"));
  // encode() of an imported sentence finds its label.
  Batch b = t.encode("The trophy doesn't fit into the brown suitcase because the _ is too small.");
  EXPECT_EQ(t.class_name(b.targets[0]), "suitcase");
  EXPECT_EQ(t.winogrande(Split::kTrain)[1].option1, "the trophy");  // exported as read
}

}  // namespace
}  // namespace qkv
