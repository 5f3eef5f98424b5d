// Probe: a task's own diagnostic, computed at every evaluation from the batches and the model's
// attention maps. The trainer, its charts and `qkv eval` show whatever a probe reports without
// knowing the task: a task adds a diagnostic by returning a Probe from Task::probes().
//
//   for each evaluation:  probe.reset();  probe.add(view) per batch;  probe.report()
//
// What happens to a report:
//   metrics   metrics.jsonl: "probes": {NAME: {metric: value}} at every evaluation step;
//             NAME.svg in the run folder: each metric over the steps; `qkv eval` prints them
//   summary   the progress line of each evaluation and `qkv eval`
//   detail    metrics.jsonl: NAME: detail (any JSON, e.g. per-head tables)
//   table     `qkv eval`, below the split's loss and accuracy
//   focus     the head whose attention on the task's probe sentence the trainer pictures over
//             training (probe_attention.svg)
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/attention_map.h"
#include "core/batch.h"

namespace qkv {

enum class Split;

/// One evaluation batch as a probe sees it: the examples at `indices` of `split`, the batch the
/// task built for them, and every attention module's P in forward order (empty unless the probe
/// needs_attention()).
struct ProbeView {
  Split split;
  const std::vector<int64_t>& indices;
  const Batch& batch;
  const std::vector<AttentionMap<float>>& attention;
};

/// An attention head: the module's path and the head's index.
struct HeadRef {
  std::string module;  // "" = none
  int64_t head = 0;
  bool empty() const { return module.empty(); }
};

struct ProbeReport {
  std::vector<std::pair<std::string, double>> metrics;  // in display order
  std::string summary;                                  // one line; may be empty
  nlohmann::json detail;                                // may be null
  std::string table;                                    // lines of text; may be empty
  HeadRef focus;                                        // may be empty
  bool empty() const { return metrics.empty() && summary.empty(); }
};

class Probe {
 public:
  virtual ~Probe() = default;
  /// A name that is a file name and a JSON key ("referent_attention").
  virtual std::string name() const = 0;
  /// Whether add() reads attention maps; the model keeps them only when some probe does.
  virtual bool needs_attention() const { return true; }
  /// Forgets every batch added: a new evaluation starts.
  virtual void reset() = 0;
  /// Adds one evaluation batch.
  virtual void add(const ProbeView& view) = 0;
  /// The result over every batch added since reset(); empty when nothing was measured.
  virtual ProbeReport report() const = 0;
};

}  // namespace qkv
