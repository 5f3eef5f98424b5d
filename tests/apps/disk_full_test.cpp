// qkv train into a 4 MB disk (room for two checkpoints of 1.6 MB): one message, exit status 2,
// no crash at exit, and the checkpoints saved before the disk filled still load.
#include <algorithm>
#include <filesystem>

#include <gtest/gtest.h>

#include "run_qkv.h"
#include "test_files.h"
#include "train/checkpoint.h"

namespace qkv {
namespace {

namespace fs = std::filesystem;
using qkv::test::run_qkv;
using qkv::test::temp_path;

TEST(DiskFull, TrainingIntoATinyDiskExitsWithOneLineAndKeepsEarlierCheckpoints) {
  const test::Tmpfs disk("tiny_disk", "4m");
  if (!disk.error().empty()) GTEST_SKIP() << disk.error();
  const std::string out = disk.dir() + "/run";
  const qkv::test::RunResult r =
      run_qkv({"train", "--task", "pronoun", "--steps", "40", "--save-every", "5", "--out", out},
              temp_path(""));
  EXPECT_EQ(r.status, 2) << r.err;  // not 139: no crash at exit
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  // Progress goes to stderr too; the error is one line, the last.
  const size_t last = r.err.rfind("qkv: ");
  ASSERT_NE(last, std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("qkv: "), last) << r.err;
  EXPECT_EQ(r.err.find('\n', last), r.err.size() - 1) << r.err;
  int loaded = 0;
  for (const auto& e : fs::directory_iterator(out)) {
    const std::string name = e.path().filename().string();
    EXPECT_EQ(name.find(".tmp"), std::string::npos) << name << " was left behind";
    if (name.size() > 3 && name.compare(name.size() - 3, 3, ".h5") == 0) {
      EXPECT_NO_THROW(load_checkpoint(e.path().string())) << name;
      ++loaded;
    }
  }
  EXPECT_GE(loaded, 1);
}

}  // namespace
}  // namespace qkv
