// `qkv attend` on a seq2seq checkpoint (the numbers task): the decoder's greedy answer, then the
// cross-attention alignment of each output token over the source words, and heatmaps whose axes
// are the right sequences (encoder: source × source, cross: target × source, decoder: target ×
// target).
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "run_qkv.h"
#include "test_files.h"

namespace qkv {
namespace {

namespace fs = std::filesystem;
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

}  // namespace
}  // namespace qkv
