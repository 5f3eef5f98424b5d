// WinoGrande JSONL: one JSON object per line,
//   {"qID": "...", "sentence": "The trophy doesn't fit into the suitcase because the _ is too
//   big.",
//    "option1": "trophy", "option2": "suitcase", "answer": "1"}
// `_` stands where the referring expression was; filling it with option1 or option2 (the answer)
// gives the intended reading. Extra fields are ignored; "answer" may be missing (a test file).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qkv {

struct WinoRecord {
  std::string qid;       // "qID"; may be empty
  std::string sentence;  // exactly one '_'
  std::string option1;
  std::string option2;
  std::string answer;  // "1", "2", or "" when unknown

  bool operator==(const WinoRecord& o) const {
    return qid == o.qid && sentence == o.sentence && option1 == o.option1 && option2 == o.option2 &&
           answer == o.answer;
  }
};

/// Parses one JSONL line; `where` ("file.jsonl:12") prefixes error messages.
WinoRecord parse_winogrande_line(const std::string& line, const std::string& where);
/// The record of one parsed JSON object (read_jsonl's); throws as parse_winogrande_line.
WinoRecord winogrande_record(const nlohmann::json& j, const std::string& where);
/// One line of JSON (no newline) with the keys in the order qID, sentence, option1, option2,
/// answer (qID and answer left out when empty).
std::string format_winogrande_line(const WinoRecord& r);
/// Every record of a file (blank lines skipped). A missing file or a bad line throws qkv::Error
/// naming the path and line.
std::vector<WinoRecord> read_winogrande(const std::string& path);
/// Writes records, one per line; throws qkv::Error naming the path when it cannot.
void write_winogrande(const std::string& path, const std::vector<WinoRecord>& records);

}  // namespace qkv
