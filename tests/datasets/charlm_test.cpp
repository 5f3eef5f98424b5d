#include "datasets/charlm.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <functional>

#include <unistd.h>

#include "core/error.h"

namespace qkv {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Files this process wrote, removed when it exits.
struct TempFiles {
  std::vector<std::string> paths;
  ~TempFiles() {
    for (const std::string& p : paths) std::remove(p.c_str());
  }
};
TempFiles temp_files;

std::string temp_file(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "qkv_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream(path, std::ios::binary) << text;
  temp_files.paths.push_back(path);
  return path;
}

TEST(CharLM, DefaultCorpusWindowsAndTargets) {
  CharLMTask t(nlohmann::json{{"seed", 0}, {"block_size", 32}});
  EXPECT_EQ(t.vocab().level(), Level::kChar);
  EXPECT_GT(t.chunk_length(Split::kTrain), 100000);
  const int64_t n =
      t.chunk_length(Split::kTrain) + t.chunk_length(Split::kVal) + t.chunk_length(Split::kTest);
  EXPECT_EQ(t.chunk_length(Split::kVal), n * 95 / 100 - n * 90 / 100);
  EXPECT_EQ(t.size(Split::kTrain), t.chunk_length(Split::kTrain) - 32);
  EXPECT_EQ(t.size(Split::kVal), (t.chunk_length(Split::kVal) - 1) / 32);

  Batch b = t.batch(Split::kTrain, {0, 1, t.size(Split::kTrain) - 1});
  EXPECT_EQ(b.tokens.shape, (Shape{3, 32}));
  EXPECT_EQ(b.targets.shape, (Shape{3, 32}));
  for (int64_t i = 0; i < 96; ++i) EXPECT_EQ(b.mask[i], 1);
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t i = 0; i + 1 < 32; ++i) EXPECT_EQ(b.targets[r * 32 + i], b.tokens[r * 32 + i + 1]);
  // Windows slide by one character in train ...
  for (int64_t i = 0; i + 1 < 32; ++i) EXPECT_EQ(b.tokens[32 + i], b.tokens[i + 1]);
  // ... and tile val without overlap.
  Batch v = t.batch(Split::kVal, {0, 1});
  EXPECT_EQ(v.tokens[32], v.targets[31]);
  EXPECT_EQ(t.decode(std::vector<int32_t>(t.encode(t.probe()).tokens.data)), t.probe());
  EXPECT_EQ(t.probe(), "ss the street because it was too");  // the default probe's last 32
  EXPECT_EQ(CharLMTask().probe(), "The animal didn't cross the street because it was too");

  CharLMTask same(t.options());
  EXPECT_EQ(same.batch(Split::kTest, {2}).tokens.data, t.batch(Split::kTest, {2}).tokens.data);
  nlohmann::json m = t.default_model_config();
  EXPECT_EQ(m["vocab_size"], t.vocab().size());
  EXPECT_EQ(m["max_len"], 32);
}

TEST(CharLM, UserFileSplitsIntoContiguousChunks) {
  std::string text;
  for (int i = 0; i < 200; ++i)
    text += "h\xC3\xA9llo w\xC3\xB6rld " + std::to_string(i % 10) + "\n";
  const std::string path = temp_file("text.txt", text);
  CharLMTask t(nlohmann::json{{"data", path}, {"block_size", 16}});
  // <pad> + distinct characters in code-point order.
  EXPECT_EQ(t.vocab().tokens()[1], "\n");
  EXPECT_EQ(t.vocab().tokens().back(), "\xC3\xB6");
  EXPECT_EQ(t.vocab().size(), 21);  // <pad> \n space 0-9 d h l o r w é ö
  const int64_t n = int64_t(char_tokenize(text).size());
  EXPECT_EQ(t.chunk_length(Split::kTrain), n * 90 / 100);
  // Train windows concatenated give the start of the text.
  Batch b = t.batch(Split::kTrain, {0});
  EXPECT_EQ(t.decode(b.tokens.data), "h\xC3\xA9llo w\xC3\xB6rld 0\nh\xC3\xA9");
  EXPECT_EQ(error_of([&] { t.encode("h\xC3\xA9llo!"); }),
            "unknown character '!' (U+0021): not in the vocabulary of 21 tokens");
  Batch p = t.encode("w\xC3\xB6rld", false);
  EXPECT_EQ(p.tokens.shape, (Shape{1, 5}));
  EXPECT_EQ(p.targets.data, std::vector<int32_t>(5, -1));
}

TEST(CharLM, VocabulariesAboveTheLimitAreRefusedWithTheirCost) {
  // 60 distinct characters (Cyrillic and ASCII), 40 copies each: long enough for block_size 4.
  std::string text;
  for (int copy = 0; copy < 40; ++copy)
    for (int i = 0; i < 30; ++i) text += std::string("\xD0") + static_cast<char>(0x90 + i) + "a";
  for (int i = 0; i < 29; ++i) text += static_cast<char>('b' + i % 25);
  const std::string path = temp_file("wide.txt", text);
  CharLMTask ok(nlohmann::json{{"data", path}, {"block_size", 4}});
  EXPECT_EQ(ok.vocab().size(), 1 + 30 + 26);  // <pad>, Cyrillic, a-z
  EXPECT_EQ(ok.options()["max_vocab"], kCharLMMaxVocab);
  const std::string msg = error_of([&] {
    CharLMTask(nlohmann::json{{"data", path}, {"block_size", 4}, {"max_vocab", 40}});
  });
  EXPECT_EQ(msg.rfind("charlm: '" + path +
                          "' has 56 distinct characters, more than max_vocab = 40; at the default "
                          "model that vocabulary costs 0.5 MB of logits per training batch",
                      0),
            0u)
      << msg;
  EXPECT_NE(msg.find("pass the task option max_vocab"), std::string::npos) << msg;
}

TEST(CharLM, IdsFollowCodePointOrderWithoutAStringPerCharacter) {
  const std::string path = temp_file("order.txt", std::string(2000, 'z') + "é€a😀");
  CharLMTask t(nlohmann::json{{"data", path}, {"block_size", 8}});
  EXPECT_EQ(t.vocab().tokens(), (std::vector<std::string>{"<pad>", "a", "z", "é", "€", "😀"}));
  EXPECT_EQ(
      t.chunk_length(Split::kTrain) + t.chunk_length(Split::kVal) + t.chunk_length(Split::kTest),
      2004);
}

TEST(CharLM, ADataPathThatIsNotARegularFileIsRefused) {
  EXPECT_EQ(error_of([] {
              CharLMTask(nlohmann::json{{"data", "/dev/zero"}});
            }),
            "charlm: '/dev/zero' is not a regular file; --data takes a UTF-8 text file");
}

TEST(CharLM, BadFilesNameThePath) {
  EXPECT_EQ(error_of([] {
              CharLMTask(nlohmann::json{{"data", "/nonexistent/corpus.txt"}});
            }),
            "charlm: cannot open text file '/nonexistent/corpus.txt' (does it exist?)");
  const std::string empty = temp_file("empty.txt", "");
  EXPECT_EQ(error_of([&] {
              CharLMTask(nlohmann::json{{"data", empty}});
            }),
            "charlm: text file '" + empty + "' is empty");
  const std::string bad = temp_file("bad.txt", std::string(2000, 'a') + "\xFF");
  EXPECT_EQ(
      error_of([&] {
        CharLMTask(nlohmann::json{{"data", bad}});
      }),
      "charlm: '" + bad + "' is not valid UTF-8 text: invalid UTF-8 at byte 2000 (byte 0xFF)");
  const std::string tiny = temp_file("tiny.txt", "hello world\n");
  EXPECT_EQ(error_of([&] {
              CharLMTask(nlohmann::json{{"data", tiny}});
            }),
            "charlm: '" + tiny +
                "' has 12 characters; with block_size 64 each of the val and test chunks (5% of "
                "the text) needs at least 65 characters, so the text needs about 1300 (use a "
                "longer text or a smaller block_size)");
}

}  // namespace
}  // namespace qkv
