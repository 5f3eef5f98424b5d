// `qkv attend` on a seq2seq checkpoint (the numbers task): the decoder's greedy answer, then the
// cross-attention alignment of each output token over the source words, and heatmaps whose axes
// are the right sequences (encoder: source × source, cross: target × source, decoder: target ×
// target).
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "run_qkv.h"
#include "test_files.h"
#include "trained_charlm.h"

namespace qkv {
namespace {

namespace fs = std::filesystem;
using test::charlm_checkpoint;
using test::count_of;
using test::run_qkv;
using test::slurp;
using test::temp_path;

/// A seq2seq checkpoint trained for a few steps (once per test program).
const std::string& numbers_checkpoint() {
  static const std::string path = [] {
    const std::string out = temp_path("numbers");
    const test::RunResult r =
        run_qkv({"train", "--task", "numbers", "--out", out, "--steps", "40", "--d-model", "16",
                 "--n-heads", "2", "--n-layers", "1", "--eval-every", "40", "--progress", "quiet"},
                temp_path(""));
    EXPECT_EQ(r.status, 0) << r.err;
    return out + "/last.h5";
  }();
  return path;
}

TEST(AttendSeq2Seq, PrintsTheAnswerAndTheCrossAttentionAlignment) {
  const std::string out = temp_path("attend");
  const test::RunResult r = run_qkv(
      {"attend", "--checkpoint", numbers_checkpoint(), "three hundred twelve", "--out-dir", out},
      temp_path(""));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("input:      three hundred twelve"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("prediction: "), std::string::npos) << r.out;
  // One alignment block per cross-attention head (1 layer, 2 heads), one line per output query.
  EXPECT_EQ(count_of(r.out, "cross-attention: each output token's query over the source"), 2u)
      << r.out;
  EXPECT_EQ(count_of(r.out, "<bos> → "), 2u) << r.out;

  // Encoder self-attention: source words on both axes, and no digit labels.
  const std::string enc = slurp(out + "/enc.blocks.0.attn.h0.svg");
  EXPECT_EQ(count_of(enc, ">twelve</text>"), 2u) << "a row and a column label";
  EXPECT_EQ(count_of(enc, "&lt;bos&gt;</text>"), 0u);
  // Cross-attention: target queries (rows start at <bos>) over source keys.
  const std::string cross = slurp(out + "/dec.blocks.0.xattn.h0.svg");
  EXPECT_EQ(count_of(cross, ">twelve</text>"), 1u);
  EXPECT_EQ(count_of(cross, "&lt;bos&gt;</text>"), 1u);
  // Decoder self-attention: target on both axes.
  const std::string dec = slurp(out + "/dec.blocks.0.attn.h0.svg");
  EXPECT_EQ(count_of(dec, ">twelve</text>"), 0u);
  EXPECT_EQ(count_of(dec, "&lt;bos&gt;</text>"), 2u);
  EXPECT_TRUE(fs::exists(out + "/attention.html"));
}

TEST(AttendSeq2Seq, AnUnknownWordIsNamedWithASuggestion) {
  const test::RunResult r = run_qkv(
      {"attend", "--checkpoint", numbers_checkpoint(), "three hundred twelv"}, temp_path(""));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("'twelv'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'twelve'"), std::string::npos) << r.err;
}

TEST(AttendSeq2Seq, TheHtmlPageHasAnIndexOfLayersAndKinds) {
  const std::string out = temp_path("attend-index");
  const test::RunResult r = run_qkv(
      {"attend", "--checkpoint", numbers_checkpoint(), "three hundred twelve", "--out-dir", out},
      temp_path(""));
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string html = slurp(out + "/attention.html");
  // 1 layer × 3 kinds × 2 heads: one figure each, one section per kind, one index link per head.
  ASSERT_NE(html.find("<table class=\"index\">"), std::string::npos) << html;
  for (const char* kind : {"encoder self-attention", "decoder self-attention", "cross-attention"}) {
    EXPECT_EQ(count_of(html, std::string("<th>") + kind + "</th>"), 1u) << kind;
    EXPECT_EQ(count_of(html, std::string("<h2>layer 0: ") + kind + "</h2>"), 1u) << kind;
  }
  EXPECT_EQ(count_of(html, "<figure id="), 6u);
  for (const char* id : {"enc.blocks.0.attn.h1", "dec.blocks.0.attn.h0", "dec.blocks.0.xattn.h1"}) {
    EXPECT_EQ(count_of(html, std::string("<figure id=\"") + id + "\">"), 1u) << id;
    EXPECT_EQ(count_of(html, std::string("<a href=\"#") + id + "\">"), 1u) << id;
  }
  EXPECT_EQ(count_of(html, "<a href=\"#"), 6u);
}

size_t lines(const std::string& text) {
  return count_of(text, "\n");
}

TEST(AttendLanguageModel, ShowsTheLastPromptTokenWithoutGeneratingInAboutSixtyLines) {
  const std::string prompt = "The cat sat on the mat and";  // 26 characters
  const test::RunResult r = run_qkv(
      {"attend", "--checkpoint", charlm_checkpoint(), prompt, "--out-dir", temp_path("attend-lm")},
      temp_path(""));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("input:      " + prompt + "\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("prediction:"), std::string::npos) << "nothing is generated";
  EXPECT_NE(r.out.find("next token: '"), std::string::npos) << r.out;
  // 2 layers × 2 heads, each the row of the last prompt character ('d', query 25).
  EXPECT_EQ(count_of(r.out, "— attention of 'd' (query 25) over the sentence:"), 4u) << r.out;
  EXPECT_LE(lines(r.out), 62u) << r.out;
  EXPECT_EQ(count_of(r.out, "more keys with"), 4u) << r.out;
  EXPECT_LT(count_of(r.out, "%"), 4u * 26u + 4u);
  // --keys 0: every key of every head.
  const test::RunResult all = run_qkv({"attend", "--checkpoint", charlm_checkpoint(), prompt,
                                       "--out-dir", temp_path("attend-lm"), "--keys", "0"},
                                      temp_path(""));
  ASSERT_EQ(all.status, 0) << all.err;
  EXPECT_EQ(count_of(all.out, "more keys with"), 0u);
  EXPECT_EQ(count_of(all.out, "%"), 4u * 26u) << "one bar per key per head";
}

/// A one-layer, two-head pronoun encoder trained for two steps (once per test program).
const std::string& pronoun_checkpoint() {
  static const std::string path = [] {
    const std::string out = temp_path("pronoun");
    const test::RunResult r =
        run_qkv({"train", "--task",       "pronoun", "--out",           out, "--steps",
                 "2",     "--d-model",    "16",      "--n-heads",       "2", "--n-layers",
                 "1",     "--eval-every", "2",       "--eval-examples", "8", "--batch-size",
                 "4",     "--progress",   "quiet"},
                temp_path(""));
    EXPECT_EQ(r.status, 0) << r.err;
    return out + "/last.h5";
  }();
  return path;
}

TEST(AttendEncoder, ShowsEveryKeyUnlessKeysLimitsThem) {
  test::RunResult r = run_qkv(
      {"attend", "--checkpoint", pronoun_checkpoint(), "--out-dir", temp_path("attend-pronoun")},
      temp_path(""));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(count_of(r.out, "more keys with"), 0u) << r.out;
  r = run_qkv({"attend", "--checkpoint", pronoun_checkpoint(), "--out-dir",
               temp_path("attend-pronoun"), "--keys", "2"},
              temp_path(""));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(count_of(r.out, "more keys with"), 2u) << "one per head: " << r.out;
}

TEST(AttendEncoder, AnOverLongSentenceIsTheModelsLimitInWords) {
  const std::string out = pronoun_checkpoint();
  std::string sentence;
  for (int i = 0; i < 3; ++i) sentence += "the animal didn't cross the street because ";
  sentence += "it was too tired";
  const test::RunResult r = run_qkv({"attend", "--checkpoint", out, sentence}, temp_path(""));
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("qkv: the model reads at most "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" tokens; this sentence has "), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("LearnedPositional"), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1u) << r.err;
}

}  // namespace
}  // namespace qkv
