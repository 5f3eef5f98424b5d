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

TEST(LineChart, ReferentAttentionOfOneHeadOverTraining) {
  // Two modules × two heads; the chart follows blocks.1.attn head 0 only.
  std::vector<MetricsRecord> recs;
  for (int i = 0; i < 4; ++i) {
    MetricsRecord r;
    r.step = 100 * i;
    r.extra["attention_modules"] = {"blocks.0.attn", "blocks.1.attn"};
    r.extra["referent_attention"] = {{0.1, 0.2}, {0.3 + 0.1 * i, 0.4}};
    r.extra["distractor_attention"] = {{0.5, 0.5}, {0.3 - 0.05 * i, 0.2}};
    r.extra["referent_wins"] = {{0.5, 0.5}, {0.5 + 0.1 * i, 0.6}};
    recs.push_back(r);
  }
  MetricsRecord plain;  // a training step without evaluation
  plain.step = 50;
  plain.loss = 1.0;
  recs.insert(recs.begin() + 1, plain);
  const std::string svg = referent_chart_svg(recs, "blocks.1.attn", 0, "pronoun");
  expect_well_formed(svg, "referent chart");
  EXPECT_EQ(count_of(svg, "<polyline"), 3u);
  for (const char* name : {">P(referent)</text>", ">P(distractor)</text>",
                           ">referent &gt; distractor (share of sentences)</text>"})
    EXPECT_NE(svg.find(name), std::string::npos) << name;
  // Four points per curve (the record without extras is skipped): "x,y x,y x,y x,y".
  const size_t p = svg.find("points=\"", svg.find("<polyline")) + 8;
  const std::string points = svg.substr(p, svg.find('"', p) - p);
  EXPECT_EQ(count_of(points, ","), 4u) << points;
  EXPECT_EQ(count_of(points, " "), 3u) << points;
}

}  // namespace
}  // namespace qkv
