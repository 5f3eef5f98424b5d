#include "train/plot.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"
#include "test_xml.h"

namespace qkv {
namespace {

using test::xml_problem;

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

/// Also runs xmllint when it is installed.
void expect_well_formed(const std::string& svg, const std::string& what) {
  EXPECT_EQ(xml_problem(svg), "") << what;
  if (std::system("command -v xmllint >/dev/null 2>&1") != 0) return;
  const std::string path = ::testing::TempDir() + "qkv_plot_" + std::to_string(getpid()) + ".svg";
  write_svg(path, svg);
  EXPECT_EQ(std::system(("xmllint --noout " + path).c_str()), 0) << what;
  std::remove(path.c_str());
}

TEST(XmlChecker, CatchesBrokenDocuments) {
  EXPECT_EQ(xml_problem("<a><b/></a>"), "");
  EXPECT_NE(xml_problem("<a><b></a>"), "");
  EXPECT_NE(xml_problem("<a>x & y</a>"), "");
  EXPECT_NE(xml_problem("<a t=\"<\"/>"), "");
  EXPECT_NE(xml_problem("<a/><b/>"), "");
}

TEST(XmlEscape, EscapesSpecialsControlsAndInvalidUtf8) {
  EXPECT_EQ(xml_escape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
  EXPECT_EQ(xml_escape("line\nnext\x01"), "line\\nnext\\x01");
  EXPECT_EQ(xml_escape("caf\xC3\xA9 \xE2\x86\x92"), "caf\xC3\xA9 \xE2\x86\x92");  // valid UTF-8
  EXPECT_EQ(xml_escape("bad\xFF\xC3"), "bad\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(xml_escape("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
}

TEST(LineChart, OnePolylinePerSeriesAndWellFormed) {
  PlotSeries train{"train <loss> & co", {}, {}}, val{"val loss", {}, {}}, flat{"flat", {}, {}};
  for (int s = 0; s <= 1000; s += 10) {
    train.x.push_back(s);
    train.y.push_back(3.0 * std::exp(-s / 300.0) + 0.1);
  }
  for (int s = 0; s <= 1000; s += 100) {
    val.x.push_back(s);
    val.y.push_back(3.2 * std::exp(-s / 300.0) + 0.15);
  }
  flat.x = {0, 1000};
  flat.y = {1, 1};
  LineChartOptions o;
  o.title = "Loss \"pronoun\" <task>";
  o.y_label = "loss";
  const std::string svg = line_chart_svg({train, val, flat}, o);
  expect_well_formed(svg, "linear chart");
  EXPECT_EQ(count(svg, "<polyline"), 3u);
  EXPECT_NE(svg.find("train &lt;loss&gt; &amp; co"), std::string::npos);
  EXPECT_NE(svg.find("Loss &quot;pronoun&quot; &lt;task&gt;"), std::string::npos);
  EXPECT_NE(svg.find(">step</text>"), std::string::npos);
  EXPECT_NE(svg.find(">1000</text>"), std::string::npos);  // an x tick label
  EXPECT_EQ(count(svg, "points=\""), 3u);
  EXPECT_EQ(line_chart_svg({train, val, flat}, o), svg);  // deterministic

  o.log_y = true;
  const std::string log_svg = line_chart_svg({train, val}, o);
  expect_well_formed(log_svg, "log chart");
  EXPECT_EQ(count(log_svg, "<polyline"), 2u);
  EXPECT_NE(log_svg.find(">0.1</text>"), std::string::npos);  // decade ticks
  EXPECT_NE(log_svg.find(">10</text>"), std::string::npos);
}

TEST(LineChart, SkipsNonFinitePointsAndHandlesDegenerateInput) {
  PlotSeries s{"s", {0, 1, 2, 3}, {1, std::nan(""), 2, std::numeric_limits<double>::infinity()}};
  const std::string svg = line_chart_svg({s}, {});
  expect_well_formed(svg, "nan series");
  EXPECT_EQ(count(svg, "<polyline"), 1u);
  EXPECT_EQ(count(svg, "nan"), 0u);
  EXPECT_EQ(count(svg, "inf"), 0u);
  PlotSeries one{"one", {5}, {0.5}};
  const std::string one_svg = line_chart_svg({one}, {});
  expect_well_formed(one_svg, "one point");
  EXPECT_EQ(count(one_svg, "<circle"), 1u);
  expect_well_formed(line_chart_svg({}, {}), "no series");
  PlotSeries bad{"bad", {1, 2}, {1}};
  EXPECT_THROW(line_chart_svg({bad}, {}), Error);
}

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
  EXPECT_EQ(count(loss, "<polyline"), 2u);
  EXPECT_NE(loss.find(">val loss</text>"), std::string::npos);
  const std::string acc = accuracy_chart_svg(recs, "pronoun");
  expect_well_formed(acc, "accuracy chart");
  EXPECT_EQ(count(acc, "<polyline"), 1u);
  // With the trainer's train_accuracy beside val accuracy: two curves, both named.
  for (MetricsRecord& r : recs)
    if (r.val_accuracy) r.extra["train_accuracy"] = 1.0;
  const std::string both = accuracy_chart_svg(recs, "modadd");
  expect_well_formed(both, "accuracy chart with train accuracy");
  EXPECT_EQ(count(both, "<polyline"), 2u);
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
  EXPECT_EQ(count(svg, "<polyline"), 3u);
  for (const char* name : {">P(referent)</text>", ">P(distractor)</text>",
                           ">referent &gt; distractor (share of sentences)</text>"})
    EXPECT_NE(svg.find(name), std::string::npos) << name;
  // Four points per curve (the record without extras is skipped): "x,y x,y x,y x,y".
  const size_t p = svg.find("points=\"", svg.find("<polyline")) + 8;
  const std::string points = svg.substr(p, svg.find('"', p) - p);
  EXPECT_EQ(count(points, ","), 4u) << points;
  EXPECT_EQ(count(points, " "), 3u) << points;
}

TEST(Heatmap, OneRectPerCellPlusBackgroundAndColourBar) {
  const int64_t rows = 3, cols = 5;
  std::vector<double> v;
  for (int64_t i = 0; i < rows * cols; ++i) v.push_back(static_cast<double>(i) / 14.0);
  v[7] = std::nan("");
  HeatmapOptions o;
  o.title = "attention <layer 0, head 1>";
  o.row_labels = {"the", "cat's", "<pad>"};
  o.col_labels = {"a&b", "\"q\"", "\n", "caf\xC3\xA9", "\xFF"};
  o.x_label = "key";
  o.y_label = "query";
  o.annotate = true;
  o.cell = 30;
  const std::string svg = heatmap_svg(v, rows, cols, o);
  expect_well_formed(svg, "heatmap");
  EXPECT_EQ(count(svg, "<rect"), static_cast<size_t>(rows * cols + 2));
  EXPECT_EQ(count(svg, "<title>"), static_cast<size_t>(rows * cols));
  EXPECT_NE(svg.find("&lt;pad&gt;"), std::string::npos);
  EXPECT_NE(svg.find("a&amp;b"), std::string::npos);
  EXPECT_NE(svg.find("fill=\"#440154\""), std::string::npos);  // value 0
  EXPECT_NE(svg.find("fill=\"#fde725\""), std::string::npos);  // value 1
  EXPECT_NE(svg.find("fill=\"#cccccc\""), std::string::npos);  // NaN
  EXPECT_NE(svg.find("linearGradient"), std::string::npos);
}

TEST(Heatmap, AttentionOverTrainingManyRows) {
  const int64_t rows = 200, cols = 12;  // rows = training steps
  std::vector<double> v(static_cast<size_t>(rows * cols), 1.0 / cols);
  HeatmapOptions o;
  o.title = "attention over training";
  for (int64_t i = 0; i < rows; ++i) o.row_labels.push_back(std::to_string(i * 50));
  o.y_label = "step";
  const std::string svg = heatmap_svg(v, rows, cols, o);
  expect_well_formed(svg, "big heatmap");
  EXPECT_EQ(count(svg, "<rect"), static_cast<size_t>(rows * cols + 2));
}

TEST(Heatmap, RejectsMismatchedSizes) {
  EXPECT_THROW(heatmap_svg({0.1, 0.2}, 2, 2, {}), Error);
  HeatmapOptions o;
  o.row_labels = {"only one"};
  EXPECT_THROW(heatmap_svg({0.1, 0.2, 0.3, 0.4}, 2, 2, o), Error);
}

TEST(WriteSvg, WritesTheFileAndFailsClearly) {
  const std::string path = ::testing::TempDir() + "qkv_write_" + std::to_string(getpid()) + ".svg";
  write_svg(path, "<svg/>\n");
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  EXPECT_EQ(s.str(), "<svg/>\n");
  std::remove(path.c_str());
  EXPECT_THROW(write_svg("/nonexistent-dir/x.svg", "<svg/>"), Error);
}

}  // namespace
}  // namespace qkv
