// Test helpers shared by the test programs: a private temp folder per program (and fresh folders
// in it), a small tmpfs, the text of a thrown qkv::Error, and counting occurrences in a text.
#pragma once

#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"

namespace qkv::test {

/// A folder of this test program's own (named after the program and its pid), created on first
/// use and removed when the tests end. Ends with '/'.
inline const std::string& temp_folder() {
  static const std::string folder = [] {
    const std::string program =
        std::filesystem::path(::testing::internal::GetArgvs().at(0)).filename().string();
    std::string f = ::testing::TempDir() + "qkv_" + program + "_" + std::to_string(::getpid());
    std::filesystem::create_directories(f);
    struct Remove : ::testing::Environment {
      explicit Remove(std::string p) : path(std::move(p)) {}
      void TearDown() override {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
      }
      std::string path;
    };
    ::testing::AddGlobalTestEnvironment(new Remove(f));
    return f + "/";
  }();
  return folder;
}

/// `name` inside temp_folder().
inline std::string temp_path(const std::string& name) {
  return temp_folder() + name;
}

/// A fresh, empty folder `name` in temp_folder(), removed with the object.
class TempDir {
 public:
  explicit TempDir(const std::string& name) : path_(temp_path(name)) {
    std::filesystem::remove_all(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  /// `name` inside the folder.
  std::string operator/(const std::string& name) const {
    return (std::filesystem::path(path_) / name).string();
  }

 private:
  std::string path_;
};

/// A small tmpfs (a disk that fills up) mounted at a new folder `name` in temp_folder() for the
/// life of the object. error() says why it could not be mounted (not root, no permission), ""
/// when it is: a test skips with GTEST_SKIP() << mount.error().
class Tmpfs {
 public:
  Tmpfs(const std::string& name, const std::string& size) : dir_(temp_path(name)) {
    if (::geteuid() != 0) {
      error_ = "mounting a small tmpfs needs root";
      return;
    }
    std::filesystem::create_directories(dir_);
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, ("size=" + size).c_str()) != 0)
      error_ = std::string("cannot mount a tmpfs here (") + std::strerror(errno) + ")";
  }
  ~Tmpfs() {
    if (error_.empty()) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  Tmpfs(const Tmpfs&) = delete;
  Tmpfs& operator=(const Tmpfs&) = delete;
  const std::string& dir() const { return dir_; }
  const std::string& error() const { return error_; }

 private:
  std::string dir_, error_;
};

/// Runs f and returns the qkv::Error text it throws, or "(no error)".
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

/// How many times `what` occurs in `s` (overlapping occurrences counted).
inline size_t count_of(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

}  // namespace qkv::test
