// Shared by the fuzz targets: the input as a file the loaders can open, and the one outcome a
// loader may have besides success, a qkv::Error whose message is one valid UTF-8 line.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "core/h5.h"

namespace qkv::fuzz {

/// Writes the input to a file of this process's own and returns its path.
inline const std::string& input_file(const uint8_t* data, size_t size, const char* suffix) {
  static const std::string path =
      "/tmp/qkv-fuzz-" + std::to_string(::getpid()) + std::string(suffix);
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

/// Gives the child check of unchecked files 3 s instead of 10 (once per process).
inline void quick_child_check() {
  static const bool done = [] {
    h5::ProbeLimits l;
    l.seconds = 3;
    h5::set_probe_limits(l);
    return true;
  }();
  (void)done;
}

/// Aborts (a finding) unless the message names `path` and is one valid UTF-8 line.
inline void check_message(const Error& e, const std::string& path) {
  const std::string m = e.what();
  if (!path.empty() && m.find(path) == std::string::npos) std::abort();
  if (escape_bytes(m) != m) std::abort();  // a newline, another control character, bad UTF-8
}

}  // namespace qkv::fuzz
