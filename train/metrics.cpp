#include "train/metrics.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_reader.h"

namespace qkv {
namespace {

using json = nlohmann::json;

struct Field {
  const char* key;
  std::optional<double> MetricsRecord::*member;
};

constexpr Field kFields[] = {
    {"loss", &MetricsRecord::loss},
    {"val_loss", &MetricsRecord::val_loss},
    {"val_accuracy", &MetricsRecord::val_accuracy},
    {"lr", &MetricsRecord::lr},
    {"grad_norm", &MetricsRecord::grad_norm},
    {"tokens_per_s", &MetricsRecord::tokens_per_s},
};

bool is_standard(const std::string& key) {
  if (key == "step") return true;
  for (const Field& f : kFields)
    if (key == f.key) return true;
  return false;
}

/// A number in its shortest round-trip form (nlohmann's Grisu2), or null when not finite.
std::string number(double x) {
  return std::isfinite(x) ? json(x).dump() : "null";
}

}  // namespace

std::string format_metrics(const MetricsRecord& r) {
  QKV_CHECK(r.extra.is_object() || r.extra.is_null(),
            "metrics: extra fields must be a JSON object, got {}", r.extra.dump());
  std::string s = "{\"step\":" + std::to_string(r.step);
  for (const Field& f : kFields) {
    const std::optional<double>& v = r.*(f.member);
    if (v) s += fmt::format(",\"{}\":{}", f.key, number(*v));
  }
  if (r.extra.is_object()) {
    for (auto it = r.extra.begin(); it != r.extra.end(); ++it) {  // std::map: sorted keys
      QKV_CHECK(!is_standard(it.key()),
                "metrics: extra field '{}' clashes with a standard field of the same name",
                it.key());
      s += "," + json(it.key()).dump() + ":" + it->dump();  // non-finite floats dump as null
    }
  }
  return s + "}";
}

MetricsRecord parse_metrics(const std::string& line) {
  json j;
  try {
    j = json::parse(line);
  } catch (const json::exception& e) {
    fail("not a JSON object: {}", e.what());
  }
  QKV_CHECK(j.is_object(), "not a JSON object: {}", line);
  auto step = j.find("step");
  const std::optional<int64_t> step_value = step != j.end() ? json_integer(*step) : std::nullopt;
  QKV_CHECK(step_value.has_value(), "no integer 'step' field in {}", line);
  MetricsRecord r;
  r.step = *step_value;
  for (const Field& f : kFields) {
    auto it = j.find(f.key);
    if (it == j.end()) continue;
    if (it->is_null()) {
      r.*(f.member) = std::numeric_limits<double>::quiet_NaN();
    } else {
      QKV_CHECK(it->is_number(), "field '{}' is not a number: {}", f.key, it->dump());
      r.*(f.member) = it->get<double>();
    }
  }
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!is_standard(it.key())) r.extra[it.key()] = *it;
  return r;
}

MetricsWriter::MetricsWriter(const std::string& path, bool append)
    : path_(path), out_(path, append ? std::ios::app : std::ios::trunc) {
  QKV_CHECK(out_.is_open(), "cannot open metrics file '{}' for writing: {}", path,
            std::strerror(errno));
}

void MetricsWriter::write(const MetricsRecord& record) {
  out_ << format_metrics(record) << '\n';
  out_.flush();
  QKV_CHECK(out_.good(), "writing metrics file '{}' failed (disk full?)", path_);
}

namespace {

/// Calls f(line, record) for every record line of a metrics file (see read_metrics).
template <typename F>
void scan_metrics(const std::string& path, F&& f) {
  std::ifstream in(path, std::ios::binary);
  QKV_CHECK(in.is_open(), "cannot open metrics file '{}': {}", path, std::strerror(errno));
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    ++line_no;
    size_t end = text.find('\n', pos);
    const bool complete = end != std::string::npos;
    if (!complete) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    MetricsRecord r;
    try {
      r = parse_metrics(line);
    } catch (const Error& e) {
      if (!complete) break;  // a line cut short by a crash
      fail("metrics file '{}', line {}: {}", path, line_no, e.what());
    }
    f(line, r);
  }
}

}  // namespace

std::vector<MetricsRecord> read_metrics(const std::string& path) {
  std::vector<MetricsRecord> records;
  scan_metrics(path,
               [&](const std::string&, MetricsRecord& r) { records.push_back(std::move(r)); });
  return records;
}

void truncate_metrics(const std::string& path, int64_t last_step) {
  {
    std::ifstream probe(path);
    if (!probe.is_open()) return;
  }
  std::string kept;
  scan_metrics(path, [&](const std::string& line, const MetricsRecord& r) {
    if (r.step <= last_step) kept += line + "\n";  // verbatim, not re-formatted
  });
  write_file_atomic(path, kept);
}

}  // namespace qkv
