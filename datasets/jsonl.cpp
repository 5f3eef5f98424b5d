#include "datasets/jsonl.h"

#include <fstream>

#include "core/error.h"

namespace qkv {

nlohmann::json parse_jsonl_line(const std::string& line, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    fail("{}: not valid JSON ({})", where, e.what());
  }
  QKV_CHECK(j.is_object(), "{}: expected a JSON object, got {}", where, j.type_name());
  return j;
}

int64_t read_jsonl(const std::string& path, const std::string& what,
                   const std::function<void(const nlohmann::json&, const std::string&)>& record) {
  std::ifstream in(path, std::ios::binary);
  QKV_CHECK(in.good(), "cannot open {} file '{}' (does it exist?)", what, path);
  std::string line;
  int64_t n = 0, records = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", path, n);
    record(parse_jsonl_line(line, where), where);
    ++records;
  }
  QKV_CHECK(!in.bad(), "error reading '{}'", path);
  return records;
}

std::string string_field(const nlohmann::json& j, const char* key, const std::string& where,
                         bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    QKV_CHECK(!required, "{}: missing field '{}'", where, key);
    return "";
  }
  QKV_CHECK(it->is_string(), "{}: field '{}' must be a string, got {}", where, key, it->dump());
  return it->get<std::string>();
}

}  // namespace qkv
