#include "train/charts.h"

#include <algorithm>

namespace qkv {

std::string loss_chart_svg(const std::vector<MetricsRecord>& records, const std::string& title,
                           bool log_y) {
  PlotSeries train{"train loss", {}, {}}, val{"val loss", {}, {}};
  for (const MetricsRecord& r : records) {
    const auto step = static_cast<double>(r.step);
    if (r.loss) train.x.push_back(step), train.y.push_back(*r.loss);
    if (r.val_loss) val.x.push_back(step), val.y.push_back(*r.val_loss);
  }
  std::vector<PlotSeries> series{train};
  if (!val.x.empty()) series.push_back(val);
  LineChartOptions o;
  o.title = title;
  o.y_label = "loss";
  o.log_y = log_y;
  return line_chart_svg(series, o);
}

std::string accuracy_chart_svg(const std::vector<MetricsRecord>& records,
                               const std::string& title) {
  PlotSeries train{"train accuracy", {}, {}}, val{"val accuracy", {}, {}};
  for (const MetricsRecord& r : records) {
    const double step = static_cast<double>(r.step);
    if (r.val_accuracy) val.x.push_back(step), val.y.push_back(*r.val_accuracy);
    const auto it = r.extra.find("train_accuracy");
    if (it != r.extra.end() && it->is_number())
      train.x.push_back(step), train.y.push_back(it->get<double>());
  }
  LineChartOptions o;
  o.title = title;
  o.y_label = "accuracy";
  if (train.x.empty()) return line_chart_svg({val}, o);
  return line_chart_svg({train, val}, o);
}

std::string referent_chart_svg(const std::vector<MetricsRecord>& records, const std::string& module,
                               int64_t head, const std::string& title) {
  PlotSeries referent{"P(referent)", {}, {}}, distractor{"P(distractor)", {}, {}},
      wins{"referent > distractor (share of sentences)", {}, {}};
  for (const MetricsRecord& r : records) {
    const nlohmann::json& e = r.extra;
    if (!e.contains("attention_modules") || !e.contains("referent_attention") ||
        !e.contains("distractor_attention") || !e.contains("referent_wins"))
      continue;
    const auto& modules = e["attention_modules"];
    const auto it = std::find(modules.begin(), modules.end(), module);
    if (it == modules.end()) continue;
    const size_t m = static_cast<size_t>(it - modules.begin());
    const size_t h = static_cast<size_t>(head);
    auto value = [&](const char* key) -> const nlohmann::json& { return e[key].at(m).at(h); };
    const double step = static_cast<double>(r.step);
    referent.x.push_back(step), referent.y.push_back(value("referent_attention").get<double>());
    distractor.x.push_back(step),
        distractor.y.push_back(value("distractor_attention").get<double>());
    wins.x.push_back(step), wins.y.push_back(value("referent_wins").get<double>());
  }
  LineChartOptions o;
  o.title = title;
  o.y_label = "share";
  return line_chart_svg({referent, distractor, wins}, o);
}
}  // namespace qkv
