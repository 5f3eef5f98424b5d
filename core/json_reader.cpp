#include "core/json_reader.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace qkv {

nlohmann::json parse_json(const std::string& text, const std::string& where) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    // "[json.exception.parse_error.101] parse error at …" → "parse error at …", on one line
    std::string why = e.what();
    const size_t close = why.find("] ");
    if (why.rfind("[json.exception.", 0) == 0 && close != std::string::npos)
      why = why.substr(close + 2);
    std::replace(why.begin(), why.end(), '\n', ' ');
    fail("{}: not valid JSON ({})", where, why);
  }
}

nlohmann::json read_json_file(const std::string& path, const std::string& where) {
  std::ifstream in(path, std::ios::binary);
  QKV_CHECK(in.good(), "{}: cannot read the file", where);
  std::stringstream text;
  text << in.rdbuf();
  QKV_CHECK(!in.bad(), "{}: cannot read the file", where);
  return parse_json(text.str(), where);
}

std::optional<int64_t> json_integer(const nlohmann::json& v) {
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(v.get<uint64_t>());
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    // Below 2^53 every integer is a double exactly, so 1000.0 means 1000 and nothing else.
    const double d = v.get<double>();
    if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < 9007199254740992.0)
      return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

JsonReader::JsonReader(std::string what, const nlohmann::json& j, std::string key_noun)
    : what_(std::move(what)), j_(j), key_noun_(key_noun.empty() ? "" : key_noun + " ") {}

const nlohmann::json* JsonReader::find(const std::string& key) const {
  if (!j_.is_object()) return nullptr;
  const auto it = j_.find(key);
  return it == j_.end() || it->is_null() ? nullptr : &*it;
}

void JsonReader::bad(const std::string& key, const std::string& message) const {
  const nlohmann::json* v = find(key);
  fail("{}: {}'{}' {}, got {}", what_, key_noun_, key, message, v ? v->dump() : "nothing");
}

void JsonReader::integer(const std::string& key, int64_t& out) const {
  const nlohmann::json* v = find(key);
  if (!v) return;
  const std::optional<int64_t> i = json_integer(*v);
  if (!i) bad(key, "must be an integer");
  out = *i;
}

void JsonReader::number(const std::string& key, double& out) const {
  const nlohmann::json* v = find(key);
  if (!v) return;
  if (!v->is_number()) bad(key, "must be a number");
  out = v->get<double>();
}

void JsonReader::string(const std::string& key, std::string& out) const {
  const nlohmann::json* v = find(key);
  if (!v) return;
  if (!v->is_string()) bad(key, "must be a string");
  out = v->get<std::string>();
}

void JsonReader::boolean(const std::string& key, bool& out) const {
  const nlohmann::json* v = find(key);
  if (!v) return;
  if (!v->is_boolean()) bad(key, "must be true or false");
  out = v->get<bool>();
}

}  // namespace qkv
