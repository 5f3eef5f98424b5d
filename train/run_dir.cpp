#include "train/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"

namespace qkv {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kLockName = ".lock";

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

std::string step_checkpoint_name(int64_t step) {
  return fmt::format("step-{:06d}.h5", step);
}

int64_t parse_step_name(const std::string& name) {
  if (name.size() < 11 || name.compare(0, 5, "step-") != 0 || !ends_with(name, ".h5")) return -1;
  const std::string digits = name.substr(5, name.size() - 8);
  if (digits.empty() || digits.size() > 15 ||
      digits.find_first_not_of("0123456789") != std::string::npos)
    return -1;
  return std::stoll(digits);
}

bool is_run_file(const std::string& file) {
  std::string name = file;
  if (ends_with(name, ".tmp")) name.resize(name.size() - 4);
  static const char* const kFiles[] = {"metrics.jsonl", "probe_attention.jsonl", "best.h5",
                                       "last.h5", "attend"};
  for (const char* f : kFiles)
    if (name == f) return true;
  return ends_with(name, ".svg") || parse_step_name(name) >= 0;
}

std::vector<std::string> folder_entries(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return names;
  for (const auto& e : fs::directory_iterator(dir, ec)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

std::string newest_checkpoint(const std::string& dir) {
  int64_t best = -1;
  std::string newest;
  for (const std::string& name : folder_entries(dir)) {
    if (name == "last.h5") return (fs::path(dir) / name).string();
    const int64_t s = parse_step_name(name);
    if (s > best) best = s, newest = (fs::path(dir) / name).string();
  }
  return newest;
}

void check_out_dir(const std::string& dir, bool force) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    fail("output folder '{}' is a file; choose another --out", dir);
  std::vector<std::string> names = folder_entries(dir);
  names.erase(std::remove(names.begin(), names.end(), kLockName), names.end());
  if (names.empty() || force) return;
  const std::string newest = newest_checkpoint(dir);
  fail(
      "output folder '{}' is not empty ({} entries, e.g. '{}'); choose another --out, {}or pass "
      "--force to replace it",
      dir, names.size(), names.front(),
      newest.empty() ? "" : fmt::format("continue that run with --resume {}, ", newest));
}

int remove_stale_temporaries(const std::string& dir) {
  int n = 0;
  for (const std::string& name : folder_entries(dir)) {
    if (!ends_with(name, ".tmp")) continue;
    std::error_code ec;
    if (fs::remove(fs::path(dir) / name, ec)) ++n;
  }
  return n;
}

void truncate_jsonl(const std::string& path, int64_t last_step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      const json j = json::parse(line);
      if (j.is_object() && j.contains("step") && j["step"].is_number_integer() &&
          j["step"].get<int64_t>() <= last_step)
        kept += line + "\n";
    } catch (const json::exception&) {  // a line cut by a crash
    }
  }
  in.close();
  write_file_atomic(path, kept);
}

RunDirLock::RunDirLock(const std::string& dir) {
  const std::string file = (fs::path(dir) / kLockName).string();
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  QKV_CHECK(fd_ >= 0, "cannot create the lock file '{}': {}", file, std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      fail(
          "output folder '{}' is in use by another qkv run (it holds {}); wait for it to finish "
          "or choose another --out",
          dir, file);
    fail("cannot lock '{}': {}", file, std::strerror(err));
  }
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing drops the flock
}

RunDirLock& RunDirLock::operator=(RunDirLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

}  // namespace qkv
