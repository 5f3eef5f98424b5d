// The charts of a training run drawn from its metrics records: each turns records into
// plot/plot.h's named series and draws them with line_chart_svg.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "plot/plot.h"
#include "train/metrics.h"

namespace qkv {

/// The loss curve of a run: "train loss" (records with loss) and "val loss" (with val_loss).
std::string loss_chart_svg(const std::vector<MetricsRecord>& records, const std::string& title,
                           bool log_y = false);
/// The accuracy curve of a run: "val accuracy" (records with val_accuracy), and "train accuracy"
/// beside it when records carry the extra field train_accuracy.
std::string accuracy_chart_svg(const std::vector<MetricsRecord>& records, const std::string& title);

/// Names of the probes in the records ("probes": {NAME: {metric: value}}), in first-seen order.
std::vector<std::string> probe_names(const std::vector<MetricsRecord>& records);
/// A probe's metrics over training: one series per metric, a point per record that has it.
/// Records without the probe are skipped. The series follow `order` (the probe's own display
/// order, ProbeReport::metrics); metrics it does not name follow in the records' (alphabetical)
/// order.
std::string probe_chart_svg(const std::vector<MetricsRecord>& records, const std::string& probe,
                            const std::string& title, const std::vector<std::string>& order = {});

}  // namespace qkv
