// qkv errors: one exception type whose message reads like prose and names the culprit.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace qkv {

/// The length (1–4) of the valid UTF-8 sequence at s[i], or 0 when none starts there (RFC 3629:
/// no overlong forms, surrogates or code points above U+10FFFF).
size_t utf8_sequence_length(std::string_view s, size_t i);

/// Bytes from a file, made fit for a one-line message: valid UTF-8 passes unchanged; every byte
/// of an invalid sequence, and every control character (newline, tab, NUL, DEL), becomes \xNN.
/// Use it wherever a file's text goes into a message: "unknown task 'a\xFFb'".
std::string escape_bytes(std::string_view bytes);

/// Thrown on bad input: wrong shapes, invalid files, bad configs. The message names the op or file
/// and what to do; the command line prints it and exits with status 2. The message is always one
/// line of valid UTF-8: whatever text from a file or config reached it, any invalid byte and any
/// control character (a newline in a JSON string, say) is escaped as \xNN (escape_bytes).
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(escape_bytes(what)) {}
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
