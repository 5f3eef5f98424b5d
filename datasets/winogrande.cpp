#include "datasets/winogrande.h"

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_reader.h"
#include "datasets/jsonl.h"

namespace qkv {

WinoRecord parse_winogrande_line(const std::string& line, const std::string& where) {
  return winogrande_record(parse_jsonl_line(line, where), where);
}

WinoRecord winogrande_record(const nlohmann::json& j, const std::string& where) {
  WinoRecord r;
  r.qid = string_field(j, "qID", where, false);
  r.sentence = string_field(j, "sentence", where, true);
  r.option1 = string_field(j, "option1", where, true);
  r.option2 = string_field(j, "option2", where, true);
  auto a = j.find("answer");
  if (a != j.end() && json_integer(*a)) {
    r.answer = std::to_string(*json_integer(*a));
  } else {
    r.answer = string_field(j, "answer", where, false);
  }
  QKV_CHECK(r.answer.empty() || r.answer == "1" || r.answer == "2",
            "{}: field 'answer' must be \"1\" or \"2\", got \"{}\"", where, r.answer);
  const auto blanks = std::count(r.sentence.begin(), r.sentence.end(), '_');
  QKV_CHECK(blanks == 1,
            "{}: the sentence must have exactly one '_' (where an option goes), it has {}", where,
            blanks);
  QKV_CHECK(!r.option1.empty() && !r.option2.empty(), "{}: option1 and option2 must not be empty",
            where);
  return r;
}

std::string format_winogrande_line(const WinoRecord& r) {
  nlohmann::ordered_json j;
  if (!r.qid.empty()) j["qID"] = r.qid;
  j["sentence"] = r.sentence;
  j["option1"] = r.option1;
  j["option2"] = r.option2;
  if (!r.answer.empty()) j["answer"] = r.answer;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<WinoRecord> read_winogrande(const std::string& path) {
  std::vector<WinoRecord> out;
  read_jsonl(path, "WinoGrande", [&](const nlohmann::json& j, const std::string& where) {
    out.push_back(winogrande_record(j, where));
  });
  QKV_CHECK(!out.empty(), "WinoGrande file '{}' has no records", path);
  return out;
}

void write_winogrande(const std::string& path, const std::vector<WinoRecord>& records) {
  std::string text;
  for (const WinoRecord& r : records) text += format_winogrande_line(r) + '\n';
  write_file_atomic(path, text);
}

}  // namespace qkv
