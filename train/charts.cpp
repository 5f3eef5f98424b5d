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

std::vector<std::string> probe_names(const std::vector<MetricsRecord>& records) {
  std::vector<std::string> names;
  for (const MetricsRecord& r : records) {
    const auto it = r.extra.find("probes");
    if (it == r.extra.end() || !it->is_object()) continue;
    for (auto p = it->begin(); p != it->end(); ++p)
      if (std::find(names.begin(), names.end(), p.key()) == names.end()) names.push_back(p.key());
  }
  return names;
}

std::string probe_chart_svg(const std::vector<MetricsRecord>& records, const std::string& probe,
                            const std::string& title, const std::vector<std::string>& order) {
  std::vector<PlotSeries> series;
  for (const MetricsRecord& r : records) {
    const auto it = r.extra.find("probes");
    if (it == r.extra.end() || !it->is_object() || !it->contains(probe)) continue;
    const nlohmann::json& metrics = (*it)[probe];
    if (!metrics.is_object()) continue;
    for (auto m = metrics.begin(); m != metrics.end(); ++m) {
      if (!m->is_number()) continue;
      auto s = std::find_if(series.begin(), series.end(),
                            [&](const PlotSeries& x) { return x.name == m.key(); });
      if (s == series.end()) s = series.insert(series.end(), PlotSeries{m.key(), {}, {}});
      s->x.push_back(static_cast<double>(r.step));
      s->y.push_back(m->get<double>());
    }
  }
  const auto rank = [&](const PlotSeries& x) {
    return std::find(order.begin(), order.end(), x.name) - order.begin();
  };
  std::stable_sort(series.begin(), series.end(),
                   [&](const PlotSeries& a, const PlotSeries& b) { return rank(a) < rank(b); });
  LineChartOptions o;
  o.title = title;
  o.y_label = "value";
  return line_chart_svg(series, o);
}

}  // namespace qkv
