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

/// The pronoun task's referent attention over training, for one head (`module`, `head`), from the
/// records' extras written by the trainer: "P(referent)" and "P(distractor)" (the mean share of
/// the pronoun's attention on each noun) and "referent > distractor" (the share of sentences where
/// the referent gets more). Records without those extras are skipped.
std::string referent_chart_svg(const std::vector<MetricsRecord>& records, const std::string& module,
                               int64_t head, const std::string& title);

}  // namespace qkv
