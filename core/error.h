// qkv errors: one exception type whose message reads like prose and names the culprit.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace qkv {

/// Thrown on bad input: wrong shapes, invalid files, bad configs. The message names the op or file
/// and what to do; the command line prints it and exits with status 2.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// Throws qkv::Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace qkv

/// QKV_CHECK(cond, "fmt", args...): throws qkv::Error with the message when cond is false.
#define QKV_CHECK(cond, ...)               \
  do {                                     \
    if (!(cond)) ::qkv::fail(__VA_ARGS__); \
  } while (0)
