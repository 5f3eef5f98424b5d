#include "train/charts.h"

#include <gtest/gtest.h>

#include "test_xml.h"

namespace qkv {
namespace {

using test::count_of;
using test::expect_well_formed;

TEST(LineChart, LossAndAccuracyChartsFromMetrics) {
  std::vector<MetricsRecord> recs;
  for (int i = 0; i < 50; ++i) {
    MetricsRecord r;
    r.step = i;
    r.loss = 2.0 / (1 + i);
    if (i % 10 == 9) {
      r.val_loss = 2.2 / (1 + i);
      r.val_accuracy = i / 50.0;
    }
    recs.push_back(r);
  }
  const std::string loss = loss_chart_svg(recs, "pronoun");
  expect_well_formed(loss, "loss chart");
  EXPECT_EQ(count_of(loss, "<polyline"), 2u);
  EXPECT_NE(loss.find(">val loss</text>"), std::string::npos);
  const std::string acc = accuracy_chart_svg(recs, "pronoun");
  expect_well_formed(acc, "accuracy chart");
  EXPECT_EQ(count_of(acc, "<polyline"), 1u);
  // With the trainer's train_accuracy beside val accuracy: two curves, both named.
  for (MetricsRecord& r : recs)
    if (r.val_accuracy) r.extra["train_accuracy"] = 1.0;
  const std::string both = accuracy_chart_svg(recs, "modadd");
  expect_well_formed(both, "accuracy chart with train accuracy");
  EXPECT_EQ(count_of(both, "<polyline"), 2u);
  EXPECT_NE(both.find(">train accuracy</text>"), std::string::npos);
  EXPECT_NE(both.find(">val accuracy</text>"), std::string::npos);
}

TEST(LineChart, AProbesMetricsOverTraining) {
  // Two probes at every evaluation; the chart draws one of them, a curve per metric.
  std::vector<MetricsRecord> recs;
  for (int i = 0; i < 4; ++i) {
    MetricsRecord r;
    r.step = 100 * i;
    r.extra["probes"] = {{"referent_attention",
                          {{"P(referent)", 0.3 + 0.1 * i},
                           {"P(distractor)", 0.3 - 0.05 * i},
                           {"referent > distractor", 0.5 + 0.1 * i}}},
                         {"other", {{"x", 1.0}}}};
    recs.push_back(r);
  }
  MetricsRecord plain;  // a training step without evaluation
  plain.step = 50;
  plain.loss = 1.0;
  recs.insert(recs.begin() + 1, plain);
  EXPECT_EQ(probe_names(recs), (std::vector<std::string>{"other", "referent_attention"}));
  const std::string svg = probe_chart_svg(recs, "referent_attention", "pronoun");
  expect_well_formed(svg, "probe chart");
  EXPECT_EQ(count_of(svg, "<polyline"), 3u);
  for (const char* name :
       {">P(referent)</text>", ">P(distractor)</text>", ">referent &gt; distractor</text>"})
    EXPECT_NE(svg.find(name), std::string::npos) << name;
  EXPECT_EQ(svg.find(">x</text>"), std::string::npos);  // the other probe is not drawn
  // Four points per curve (the record without the probe is skipped): "x,y x,y x,y x,y".
  const size_t p = svg.find("points=\"", svg.find("<polyline")) + 8;
  const std::string points = svg.substr(p, svg.find('"', p) - p);
  EXPECT_EQ(count_of(points, ","), 4u) << points;
  EXPECT_EQ(count_of(points, " "), 3u) << points;

  // The legend follows the probe's own order, not the records' alphabetical one.
  const std::vector<std::string> order{"P(referent)", "P(distractor)", "referent > distractor"};
  const std::string ordered = probe_chart_svg(recs, "referent_attention", "pronoun", order);
  size_t last = 0;
  for (const char* name :
       {">P(referent)</text>", ">P(distractor)</text>", ">referent &gt; distractor</text>"}) {
    const size_t at = ordered.find(name);
    ASSERT_NE(at, std::string::npos) << name;
    EXPECT_GT(at, last) << name << " is out of the probe's order";
    last = at;
  }
  EXPECT_LT(svg.find(">P(distractor)</text>"), svg.find(">P(referent)</text>"))
      << "without an order the records' (alphabetical) order holds";
}

}  // namespace
}  // namespace qkv
