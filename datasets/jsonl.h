// JSON Lines: one JSON object per line, blank lines skipped. The one reader of such files
// (WinoGrande data, the classify and seq2seq tasks); its errors name the file and the line:
//   data.jsonl:17: missing field 'label'
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

namespace qkv {

/// One line parsed as a JSON object; anything else throws qkv::Error prefixed with `where`.
nlohmann::json parse_jsonl_line(const std::string& line, const std::string& where);

/// Calls `record(object, where)` for every non-blank line of `path` in order, where is
/// "path:LINE" for messages. `what` names the file's kind in the message for a file that cannot
/// be opened ("cannot open classify data file 'x.jsonl' (does it exist?)"). A line that is not a
/// JSON object throws qkv::Error naming path:line. Returns the number of records.
int64_t read_jsonl(const std::string& path, const std::string& what,
                   const std::function<void(const nlohmann::json&, const std::string&)>& record);

/// The string field `key` of a record; "" when absent or null unless `required` (then it throws
/// "WHERE: missing field 'KEY'"). A field of another type throws naming it.
std::string string_field(const nlohmann::json& record, const char* key, const std::string& where,
                         bool required);

}  // namespace qkv
