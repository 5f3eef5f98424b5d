// qkv train into a 4 MB disk (room for two checkpoints of 1.6 MB): one message, exit status 2,
// no crash at exit, and the checkpoints saved before the disk filled still load.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
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
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
  const std::string dir = temp_path("tiny_disk");
  fs::create_directories(dir);
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=4m") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno) << ")";
  struct Unmount {
    std::string dir;
    ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmount{dir};
  const std::string out = dir + "/run";
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
