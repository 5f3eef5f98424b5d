// Running the qkv program (QKV_BIN) from a test as a user runs it: arguments shell-quoted,
// stdout and stderr captured through files in a folder of the test's, the exit status decoded.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#ifndef QKV_BIN
#error "QKV_BIN (the path of the qkv program) must be defined by tests/CMakeLists.txt"
#endif

namespace qkv::test {

struct RunResult {
  int status = -1;  // the exit status; -1 when killed by a signal
  std::string out, err;
};

/// The whole file ("" when it cannot be read).
inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// `s` as one POSIX shell word.
inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

/// Runs `qkv ARGS`; the captured output goes through `dir`/stdout.txt and stderr.txt.
inline RunResult run_qkv(const std::vector<std::string>& args, const std::string& dir) {
  std::string cmd = quote(QKV_BIN);
  for (const std::string& a : args) cmd += " " + quote(a);
  const std::string out = (std::filesystem::path(dir) / "stdout.txt").string();
  const std::string err = (std::filesystem::path(dir) / "stderr.txt").string();
  cmd += " >" + quote(out) + " 2>" + quote(err);
  const int raw = std::system(cmd.c_str());
  RunResult r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

}  // namespace qkv::test
