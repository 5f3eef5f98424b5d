// metrics.jsonl: one JSON object per line, appended and flushed as training goes, read back for
// plots and comparisons between runs.
//
// Fields in a fixed order: step, loss, val_loss, val_accuracy, lr, grad_norm, tokens_per_s (each
// written only when set), then any extra fields sorted by key. Numbers are written in the
// shortest form that reads back to the same double, so a float32 loss keeps every bit and two
// runs can be compared exactly; NaN and ±inf (not JSON) are written as null and read back as NaN.
#pragma once

#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qkv {

struct MetricsRecord {
  int64_t step = 0;
  std::optional<double> loss;
  std::optional<double> val_loss;
  std::optional<double> val_accuracy;
  std::optional<double> lr;
  std::optional<double> grad_norm;
  std::optional<double> tokens_per_s;
  /// Any other fields (an object); keys must differ from the fields above.
  nlohmann::json extra = nlohmann::json::object();
};

/// One record as a single line of JSON (no trailing newline).
std::string format_metrics(const MetricsRecord& record);
/// Parses one line written by format_metrics (or any JSON object with an integer "step");
/// throws qkv::Error on anything else.
MetricsRecord parse_metrics(const std::string& line);

class MetricsWriter {
 public:
  /// Opens `path` for appending (append) or empties it first; throws qkv::Error when it cannot.
  explicit MetricsWriter(const std::string& path, bool append = true);
  /// Appends one line and flushes it, so a crash loses at most the line being written.
  void write(const MetricsRecord& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

/// Every record of a metrics file, in file order. Blank lines are skipped; a last line without
/// its newline that does not parse (a run killed mid-write) is ignored; any other bad line throws
/// qkv::Error naming the file and line number.
std::vector<MetricsRecord> read_metrics(const std::string& path);

/// Rewrites `path` keeping only records with step <= last_step (resuming from a checkpoint taken
/// at last_step) with write_file_atomic. A missing file is left missing.
void truncate_metrics(const std::string& path, int64_t last_step);

}  // namespace qkv
