// A tiny charlm checkpoint (2 layers × 2 heads, d_model 16, 4 steps), trained once per test
// program by running `qkv train` as a user does.
#pragma once

#include <string>

#include <gtest/gtest.h>

#include "run_qkv.h"
#include "test_files.h"

namespace qkv::test {

inline const std::string& charlm_checkpoint() {
  static const std::string path = [] {
    const std::string out = temp_path("charlm");
    const RunResult r =
        run_qkv({"train", "--task",       "charlm", "--out",           out, "--steps",
                 "4",     "--d-model",    "16",     "--n-heads",       "2", "--n-layers",
                 "2",     "--eval-every", "4",      "--eval-examples", "8", "--batch-size",
                 "4",     "--progress",   "quiet"},
                temp_folder());
    EXPECT_EQ(r.status, 0) << r.err;
    return out + "/last.h5";
  }();
  return path;
}

}  // namespace qkv::test
