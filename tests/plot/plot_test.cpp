#include "plot/plot.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "test_xml.h"

namespace qkv {
namespace {

using test::count_of;
using test::expect_well_formed;
using test::xml_problem;

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
  EXPECT_EQ(count_of(svg, "<polyline"), 3u);
  EXPECT_NE(svg.find("train &lt;loss&gt; &amp; co"), std::string::npos);
  EXPECT_NE(svg.find("Loss &quot;pronoun&quot; &lt;task&gt;"), std::string::npos);
  EXPECT_NE(svg.find(">step</text>"), std::string::npos);
  EXPECT_NE(svg.find(">1000</text>"), std::string::npos);  // an x tick label
  EXPECT_EQ(count_of(svg, "points=\""), 3u);
  EXPECT_EQ(line_chart_svg({train, val, flat}, o), svg);  // deterministic

  o.log_y = true;
  const std::string log_svg = line_chart_svg({train, val}, o);
  expect_well_formed(log_svg, "log chart");
  EXPECT_EQ(count_of(log_svg, "<polyline"), 2u);
  EXPECT_NE(log_svg.find(">0.1</text>"), std::string::npos);  // decade ticks
  EXPECT_NE(log_svg.find(">10</text>"), std::string::npos);
}

TEST(LineChart, SkipsNonFinitePointsAndHandlesDegenerateInput) {
  PlotSeries s{"s", {0, 1, 2, 3}, {1, std::nan(""), 2, std::numeric_limits<double>::infinity()}};
  const std::string svg = line_chart_svg({s}, {});
  expect_well_formed(svg, "nan series");
  EXPECT_EQ(count_of(svg, "<polyline"), 1u);
  EXPECT_EQ(count_of(svg, "nan"), 0u);
  EXPECT_EQ(count_of(svg, "inf"), 0u);
  PlotSeries one{"one", {5}, {0.5}};
  const std::string one_svg = line_chart_svg({one}, {});
  expect_well_formed(one_svg, "one point");
  EXPECT_EQ(count_of(one_svg, "<circle"), 1u);
  expect_well_formed(line_chart_svg({}, {}), "no series");
  PlotSeries bad{"bad", {1, 2}, {1}};
  EXPECT_THROW(line_chart_svg({bad}, {}), Error);
}


/// The number in attribute `name` of the first element at or after `from` that has it.
double attr(const std::string& svg, size_t from, const std::string& name) {
  const size_t p = svg.find(" " + name + "=\"", from) + name.size() + 3;
  return std::stod(svg.substr(p, svg.find('"', p) - p));
}

/// Every polyline's points, in pixels.
std::vector<std::vector<std::pair<double, double>>> polylines(const std::string& svg) {
  std::vector<std::vector<std::pair<double, double>>> out;
  for (size_t p = svg.find("points=\""); p != std::string::npos; p = svg.find("points=\"", p + 1)) {
    std::istringstream in(svg.substr(p + 8, svg.find('"', p + 8) - p - 8));
    out.emplace_back();
    double x = 0, y = 0;
    char comma = 0;
    while (in >> x >> comma >> y) out.back().emplace_back(x, y);
  }
  return out;
}

/// Fails when a point of any polyline, or of the straight line between two, is inside the legend.
void expect_legend_covers_no_curve(const std::string& svg, const std::string& what) {
  const size_t at = svg.find("<rect class=\"legend\"");
  ASSERT_NE(at, std::string::npos) << what;
  const double x = attr(svg, at, "x"), y = attr(svg, at, "y"), w = attr(svg, at, "width"),
               h = attr(svg, at, "height");
  size_t points = 0;
  for (const auto& line : polylines(svg))
    for (size_t i = 0; i < line.size(); ++i) {
      const auto& a = line[i ? i - 1 : 0];
      const auto& b = line[i];
      for (int k = 0; k <= 50; ++k, ++points) {  // along the segment a–b
        const double px = a.first + (b.first - a.first) * k / 50.0;
        const double py = a.second + (b.second - a.second) * k / 50.0;
        EXPECT_FALSE(px >= x && px <= x + w && py >= y && py <= y + h)
            << what << ": (" << px << ", " << py << ") is under the legend";
      }
    }
  EXPECT_GT(points, 0u) << what;
}

TEST(LineChart, TheLegendCoversNoCurve) {
  // The referent chart's shape: P(referent) rises into the top right corner, where the legend
  // used to be.
  PlotSeries rising{"P(referent)", {}, {}}, falling{"P(distractor)", {}, {}};
  for (int s = 0; s <= 1500; s += 100) {
    rising.x.push_back(s), rising.y.push_back(0.3 + 0.6 * s / 1500.0);
    falling.x.push_back(s), falling.y.push_back(0.3 - 0.2 * s / 1500.0);
  }
  expect_legend_covers_no_curve(line_chart_svg({rising, falling}, {}), "rising");
  // Curves through every corner and the middle of every edge: the legend moves out of the plot.
  PlotSeries zigzag{"zigzag", {}, {}}, other{"other", {}, {}};
  for (int s = 0; s <= 40; ++s) {
    zigzag.x.push_back(s), zigzag.y.push_back(s % 2);
    other.x.push_back(s), other.y.push_back(0.5 + 0.5 * std::sin(s));
  }
  const std::string full = line_chart_svg({zigzag, other}, {});
  expect_legend_covers_no_curve(full, "zigzag");
  const size_t frame = full.find("stroke=\"#444\"");
  const double frame_right =
      attr(full, full.rfind("<rect", frame), "x") + attr(full, full.rfind("<rect", frame), "width");
  EXPECT_GT(attr(full, full.find("<rect class=\"legend\""), "x"), frame_right) << "beside the plot";
}

TEST(LineChart, TheStepAxisEndsAtTheLastStep) {
  PlotSeries loss{"train loss", {}, {}};
  for (int s = 0; s <= 1500; s += 10) loss.x.push_back(s), loss.y.push_back(1.0 / (1 + s));
  const std::string svg = line_chart_svg({loss}, {});
  EXPECT_NE(svg.find(">1500</text>"), std::string::npos) << "the last tick is the last step";
  EXPECT_EQ(svg.find(">1600</text>"), std::string::npos);
  // The curve's last point is on the plot's right edge.
  const size_t frame = svg.rfind("<rect", svg.find("stroke=\"#444\""));
  const double right = attr(svg, frame, "x") + attr(svg, frame, "width");
  EXPECT_NEAR(polylines(svg).at(0).back().first, right, 0.01);
  // The x tick labels: the last one is 1500, and no two are closer than 30 px.
  std::vector<double> tick_x;
  const double bottom = attr(svg, frame, "y") + attr(svg, frame, "height");
  for (size_t p = svg.find("<text"); p != std::string::npos; p = svg.find("<text", p + 1))
    if (std::abs(attr(svg, p, "y") - (bottom + 16)) < 0.01) tick_x.push_back(attr(svg, p, "x"));
  ASSERT_GE(tick_x.size(), 3u);
  EXPECT_NEAR(tick_x.back(), right, 0.01);
  for (size_t i = 1; i < tick_x.size(); ++i) EXPECT_GT(tick_x[i] - tick_x[i - 1], 30.0);
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
  EXPECT_EQ(count_of(svg, "<rect"), static_cast<size_t>(rows * cols + 2));
  EXPECT_EQ(count_of(svg, "<title>"), static_cast<size_t>(rows * cols));
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
  EXPECT_EQ(count_of(svg, "<rect"), static_cast<size_t>(rows * cols + 2));
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
