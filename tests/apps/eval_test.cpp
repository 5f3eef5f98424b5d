// `qkv eval --min-accuracy` on a language model compares its per-token accuracy (an exact
// 64-character window is never right), and says which accuracy it compares.
#include <string>

#include <gtest/gtest.h>

#include "run_qkv.h"
#include "test_files.h"
#include "trained_charlm.h"

namespace qkv {
namespace {

using test::charlm_checkpoint;
using test::run_qkv;
using test::temp_folder;

TEST(EvalLanguageModel, MinAccuracyComparesTheTokenAccuracy) {
  // A few steps learn the commonest characters: some tokens right, no whole window.
  test::RunResult r = run_qkv(
      {"eval", "--checkpoint", charlm_checkpoint(), "--split", "val", "--min-accuracy", "0.01"},
      temp_folder());
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("--min-accuracy 1.00% compares the token accuracy"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("accuracy 0.00%"), std::string::npos) << "no exact window: " << r.out;

  r = run_qkv(
      {"eval", "--checkpoint", charlm_checkpoint(), "--split", "val", "--min-accuracy", "0.99"},
      temp_folder());
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("qkv: val token accuracy "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("is below --min-accuracy 99.00%"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace qkv
