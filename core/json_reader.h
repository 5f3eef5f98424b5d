// Typed values from a JSON object (model, train and task configs, --vectors files), with one rule
// for every reader:
//   - integer: a JSON integer, or a number with an exact integral value below 2^53 in magnitude
//     (64.0 and 1e3 are integers; 64.5, 1e300 and "64" are not);
//   - number: any JSON number;
//   - boolean: true or false only (never 0, 1 or "true");
//   - string: a JSON string;
//   - a key that is absent or null leaves the value as it was.
// Every message names the key: "train config: 'steps' must be an integer, got 1.5".
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace qkv {

/// `text` parsed as JSON; a syntax error is one qkv::Error on one line:
/// "WHERE: not valid JSON (parse error at line 1, column 9: …)".
nlohmann::json parse_json(const std::string& text, const std::string& where);

/// The file at `path` parsed as JSON; qkv::Error "WHERE: cannot read the file" when it cannot be
/// read, or parse_json's message.
nlohmann::json read_json_file(const std::string& path, const std::string& where);

/// `v` as an integer under the rule above, or nothing.
std::optional<int64_t> json_integer(const nlohmann::json& v);

/// Reads typed keys of one JSON object; `what` starts every message ("model config"), and
/// `key_noun`, when given, names what a key is ("option" reads "pronoun: option 'seed' …").
class JsonReader {
 public:
  /// `j` is usually an object; anything else reads as if every key were absent. `j` must
  /// outlive the reader.
  JsonReader(std::string what, const nlohmann::json& j, std::string key_noun = "");

  /// The value at `key`, or nullptr when it is absent or null.
  const nlohmann::json* find(const std::string& key) const;

  void integer(const std::string& key, int64_t& out) const;
  void number(const std::string& key, double& out) const;
  void string(const std::string& key, std::string& out) const;
  void boolean(const std::string& key, bool& out) const;

  /// Throws qkv::Error "WHAT: [KEY_NOUN ]'KEY' MESSAGE, got VALUE" for the value at `key`.
  [[noreturn]] void bad(const std::string& key, const std::string& message) const;

 private:
  std::string what_;
  const nlohmann::json& j_;
  std::string key_noun_;
};

}  // namespace qkv
