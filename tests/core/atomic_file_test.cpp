// write_file_atomic and replace_file_atomic: the file appears whole or not at all, the .tmp never
// stays behind, and every failure is one qkv::Error naming the file.
#include "core/atomic_file.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "test_files.h"

namespace qkv {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::temp_path;

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

TEST(AtomicFile, WritesAndReplacesWholeFiles) {
  const std::string path = temp_path("whole.txt");
  write_file_atomic(path, "first\n");
  EXPECT_EQ(slurp(path), "first\n");
  std::string big(1 << 20, 'x');  // more than one write() call may take
  big.back() = '\n';
  write_file_atomic(path, big);
  EXPECT_EQ(slurp(path), big);
  write_file_atomic(path, "");
  EXPECT_EQ(slurp(path), "");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(AtomicFile, AMissingFolderIsNamedAndNothingIsLeft) {
  const std::string path = temp_path("no-such-folder/x.svg");
  EXPECT_EQ(
      error_of([&] { write_file_atomic(path, "<svg/>"); }),
      "cannot write " + path + ": its folder " + temp_path("no-such-folder") + " does not exist");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(AtomicFile, AFailedRenameIsAnErrorNotAFilesystemException) {
  // A non-empty folder where the file should go: rename(2) fails with EISDIR or ENOTEMPTY.
  const std::string path = temp_path("taken");
  fs::create_directories(path + "/inside");
  const std::string e = error_of([&] { write_file_atomic(path, "text"); });
  EXPECT_EQ(
      e.rfind("cannot write " + path + ": cannot rename " + path + ".tmp to " + path + " (", 0), 0u)
      << e;
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_TRUE(fs::is_directory(path + "/inside"));
}

TEST(AtomicFile, AReadOnlyFolderLeavesTheOldFile) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes into read-only folders";
  const std::string folder = temp_path("read-only");
  fs::create_directories(folder);
  const std::string path = folder + "/kept.txt";
  write_file_atomic(path, "old");
  fs::permissions(folder, fs::perms::owner_read | fs::perms::owner_exec);
  const std::string e = error_of([&] { write_file_atomic(path, "new"); });
  fs::permissions(folder, fs::perms::owner_all);
  EXPECT_EQ(e.rfind("cannot write " + path + ": cannot create " + path + ".tmp (", 0), 0u) << e;
  EXPECT_EQ(slurp(path), "old");
}

TEST(ReplaceFileAtomic, TheCallbackWritesTheTmpFileAndItsErrorIsTheReason) {
  const std::string path = temp_path("callback.bin");
  std::string seen;
  replace_file_atomic(path, [&](const std::string& tmp) {
    seen = tmp;
    std::ofstream(tmp, std::ios::binary) << "payload";
  });
  EXPECT_EQ(seen, path + ".tmp");
  EXPECT_EQ(slurp(path), "payload");
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  EXPECT_EQ(error_of([&] {
              replace_file_atomic(path, [](const std::string& tmp) {
                std::ofstream(tmp) << "half";
                fail("the HDF5 library refused");
              });
            }),
            "cannot write " + path + ": the HDF5 library refused");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_EQ(slurp(path), "payload");  // the old file stays
  // A callback that creates nothing: the sync names the missing .tmp.
  const std::string e = error_of([&] { replace_file_atomic(path, [](const std::string&) {}); });
  EXPECT_EQ(e.rfind("cannot write " + path + ": cannot open " + path + ".tmp to sync it", 0), 0u)
      << e;
}

}  // namespace
}  // namespace qkv
