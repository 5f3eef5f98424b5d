// The pictures qkv draws, produced as a user produces them: `qkv train` on the pronoun task (a tiny
// model, a few dozen steps) and `qkv attend` on its checkpoint, run as the qkv program (QKV_BIN).
// Every SVG must be well-formed XML with the elements its contract promises, the heatmaps must
// carry one hover title per cell with its weight (and attention rows sum to 1), and attention.html
// must hold one figure per layer and head.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "run_qkv.h"
#include "test_xml.h"

namespace qkv {
namespace {

namespace fs = std::filesystem;
using test::count_of;
using test::xml_problem;

// ---- running qkv -------------------------------------------------------------------------------

using test::quote;
using test::slurp;

/// Well-formed by the shared checker (tests/test_xml.h), and by xmllint when it is installed.
void expect_well_formed(const fs::path& file) {
  ASSERT_TRUE(fs::exists(file)) << file;
  test::expect_well_formed(slurp(file), file.string());
}

/// Each heatmap cell: <rect …><title>ROW, COL: WEIGHT</title></rect>, in row-major order.
struct Cell {
  std::string row, col;
  double weight = NAN;
};
std::vector<Cell> heatmap_cells(const std::string& svg) {
  std::vector<Cell> cells;
  const std::string open = "<title>", close = "</title></rect>";
  for (size_t p = svg.find(open); p != std::string::npos; p = svg.find(open, p + 1)) {
    const size_t e = svg.find("</title>", p);
    if (svg.compare(e, close.size(), close) != 0) continue;  // not a cell's title
    const std::string t = svg.substr(p + open.size(), e - p - open.size());
    const size_t colon = t.rfind(": "), comma = t.find(", ");
    Cell c;
    if (colon == std::string::npos || comma == std::string::npos || comma > colon) {
      cells.push_back(c);  // weight NaN: a malformed title fails the caller's checks
      continue;
    }
    c.row = t.substr(0, comma);
    c.col = t.substr(comma + 2, colon - comma - 2);
    c.weight = std::strtod(t.c_str() + colon + 2, nullptr);
    cells.push_back(c);
  }
  return cells;
}

/// rows × cols cells, each hover title a weight in [0, 1], and every row summing to 1 (titles
/// have four decimals, so a row of cols cells sums to 1 within cols · 5e-5).
void expect_attention_rows(const std::string& svg, size_t rows, size_t cols,
                           const std::string& what) {
  const std::vector<Cell> cells = heatmap_cells(svg);
  ASSERT_EQ(cells.size(), rows * cols) << what;
  EXPECT_EQ(count_of(svg, "<rect"), rows * cols + 2) << what;  // background, cells, colour bar
  for (size_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (size_t c = 0; c < cols; ++c) {
      const Cell& cell = cells[r * cols + c];
      EXPECT_GE(cell.weight, 0.0) << what;
      EXPECT_LE(cell.weight, 1.0) << what;
      EXPECT_EQ(cell.row, cells[r * cols].row) << what << ": row labels change within a row";
      EXPECT_EQ(cell.col, cells[c].col) << what << ": column labels change down a column";
      sum += cell.weight;
    }
    EXPECT_NEAR(sum, 1.0, 5e-5 * double(cols) + 1e-9) << what << " row " << r;
  }
}

/// A 2 × 2 heatmap in heatmap_svg's layout (background, cells with titles, colour bar).
std::string toy_heatmap(double a, double b, double c, double d) {
  std::string s = "<svg><rect/>";
  const double v[] = {a, b, c, d};
  for (int k = 0; k < 4; ++k)
    s += "<rect><title>" + std::string(k < 2 ? "q0" : "q1") + ", " + (k % 2 ? "k1" : "k0") + ": " +
         std::to_string(v[k]) + "</title></rect>";
  return s + "<rect/></svg>";
}

TEST(HeatmapCheck, CatchesRowsThatDoNotSumToOneAndMissingTitles) {
  expect_attention_rows(toy_heatmap(0.25, 0.75, 1, 0), 2, 2, "good");
  EXPECT_NONFATAL_FAILURE(expect_attention_rows(toy_heatmap(0.25, 0.7, 1, 0), 2, 2, "bad"),
                          "row 0");
  EXPECT_FATAL_FAILURE(expect_attention_rows(toy_heatmap(0.25, 0.75, 1, 0), 3, 2, "short"),
                       "short");
}

int run(const std::string& args, const fs::path& log) {
  const std::string cmd = quote(QKV_BIN) + " " + args + " >" + quote(log.string()) + " 2>&1";
  const int raw = std::system(cmd.c_str());
  return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
}

const char* kSentence = "The animal didn't cross the street because it was too tired.";
constexpr int kLayers = 2, kHeads = 2;

/// One tiny pronoun run shared by the tests: 2 layers × 2 heads, 40 steps, evaluations at 0, 20
/// and 40 on 64 validation examples; then `qkv attend` on its last checkpoint.
class Pictures : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl = (fs::temp_directory_path() / "qkv-pictures-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = new fs::path(tmpl);
    const fs::path run_dir = *dir_ / "run";
    train_status_ = run(fmt_args({"train",
                                  "--task",
                                  "pronoun",
                                  "--out",
                                  run_dir.string(),
                                  "--steps",
                                  "40",
                                  "--eval-every",
                                  "20",
                                  "--eval-examples",
                                  "64",
                                  "--batch-size",
                                  "16",
                                  "--d-model",
                                  "16",
                                  "--n-heads",
                                  std::to_string(kHeads),
                                  "--n-layers",
                                  std::to_string(kLayers),
                                  "--d-ff",
                                  "32",
                                  "--progress",
                                  "quiet",
                                  "--threads",
                                  "1"}),
                        *dir_ / "train.log");
    attend_status_ = run(fmt_args({"attend", "--checkpoint", (run_dir / "last.h5").string(),
                                   "--out-dir", (*dir_ / "attend").string(), kSentence}),
                         *dir_ / "attend.log");
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
  }
  static std::string fmt_args(const std::vector<std::string>& args) {
    std::string s;
    for (const auto& a : args) s += " " + quote(a);
    return s;
  }
  void SetUp() override { ASSERT_EQ(train_status_, 0) << slurp(*dir_ / "train.log"); }

  static fs::path* dir_;
  static int train_status_, attend_status_;
};
fs::path* Pictures::dir_ = nullptr;
int Pictures::train_status_ = -1;
int Pictures::attend_status_ = -1;

/// The number of points of the series `name` of a line chart (its <polyline> is titled with the
/// name), or -1 when there is no such series.
int points_of(const std::string& svg, const std::string& name) {
  const size_t t = svg.find("<title>" + name + "</title></polyline>");
  if (t == std::string::npos) return -1;
  const size_t p = svg.rfind("points=\"", t), e = svg.find('"', p + 8);
  if (p == std::string::npos || e > t) return -1;
  const std::string pts = svg.substr(p + 8, e - p - 8);
  return pts.empty() ? 0 : static_cast<int>(count_of(pts, " ") + 1);
}

TEST_F(Pictures, TrainDrawsLossAndAccuracyCharts) {
  const fs::path run_dir = *dir_ / "run";
  expect_well_formed(run_dir / "loss.svg");
  expect_well_formed(run_dir / "accuracy.svg");
  // What the charts plot, counted from metrics.jsonl: a train loss every step, a val loss and val
  // accuracy at every evaluation, a train accuracy where the trainer records one.
  std::map<std::string, int> n;
  std::ifstream in(run_dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const nlohmann::json j = nlohmann::json::parse(line);
    for (const char* k : {"loss", "val_loss", "val_accuracy", "train_accuracy"})
      n[k] += j.contains(k) && j[k].is_number();
  }
  EXPECT_EQ(n["loss"], 40);
  EXPECT_EQ(n["val_loss"], 3);  // steps 0, 20, 40
  const std::string loss = slurp(run_dir / "loss.svg"), acc = slurp(run_dir / "accuracy.svg");
  // One <polyline> per series, titled with its name, one point per record (line_chart_svg).
  EXPECT_EQ(count_of(loss, "<polyline"), 2u);
  EXPECT_EQ(points_of(loss, "train loss"), n["loss"]);
  EXPECT_EQ(points_of(loss, "val loss"), n["val_loss"]);
  EXPECT_EQ(count_of(acc, "<polyline"), n["train_accuracy"] > 0 ? 2u : 1u);
  EXPECT_EQ(points_of(acc, "val accuracy"), n["val_accuracy"]);
  if (n["train_accuracy"] > 0) {
    EXPECT_EQ(points_of(acc, "train accuracy"), n["train_accuracy"]);
  }
}

TEST_F(Pictures, TrainDrawsThePronounsAttentionOverTraining) {
  const fs::path run_dir = *dir_ / "run";
  expect_well_formed(run_dir / "probe_attention.svg");
  // Beside it, the best head's referent attention: three curves, one point per evaluation.
  expect_well_formed(run_dir / "referent_attention.svg");
  const std::string chart = slurp(run_dir / "referent_attention.svg");
  EXPECT_EQ(count_of(chart, "<polyline"), 3u);
  EXPECT_NE(chart.find(">P(referent)</text>"), std::string::npos);
  // One row per evaluation (steps 0, 20, 40), one column per token of the probe sentence: both
  // counted from probe_attention.jsonl, the record the picture is drawn from.
  std::ifstream in(run_dir / "probe_attention.jsonl");
  std::string line;
  size_t rows = 0, cols = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (rows++ == 0) cols = nlohmann::json::parse(line).at("tokens").size();
  }
  EXPECT_EQ(rows, 3u);
  ASSERT_GT(cols, 8u);
  const std::string svg = slurp(run_dir / "probe_attention.svg");
  expect_attention_rows(svg, rows, cols, "probe_attention.svg");
  const std::vector<Cell> cells = heatmap_cells(svg);
  ASSERT_FALSE(cells.empty());
  EXPECT_EQ(cells.front().row, "0");  // rows are labelled by step
  EXPECT_EQ(cells.back().row, "40");
}

TEST_F(Pictures, AttendWritesAHeatmapPerLayerAndHead) {
  ASSERT_EQ(attend_status_, 0) << slurp(*dir_ / "attend.log");
  // The sentence's tokens, as the heatmaps label them: the column labels of the first SVG's row.
  std::set<std::string> want, got;
  for (int l = 0; l < kLayers; ++l)
    for (int h = 0; h < kHeads; ++h)
      want.insert("blocks." + std::to_string(l) + ".attn.h" + std::to_string(h) + ".svg");
  for (const auto& e : fs::directory_iterator(*dir_ / "attend"))
    if (e.path().extension() == ".svg") got.insert(e.path().filename().string());
  EXPECT_EQ(got, want);
  for (const std::string& f : want) {
    SCOPED_TRACE(f);
    expect_well_formed(*dir_ / "attend" / f);
    const std::string svg = slurp(*dir_ / "attend" / f);
    const std::vector<Cell> cells = heatmap_cells(svg);
    // Square self-attention: as many query rows as key columns.
    const size_t n = static_cast<size_t>(std::lround(std::sqrt(double(cells.size()))));
    ASSERT_GT(n, 8u);
    expect_attention_rows(svg, n, n, f);
    EXPECT_EQ(cells[0].col, "the");
    EXPECT_EQ(cells[1].col, "animal");
  }
}

TEST_F(Pictures, AttendHtmlHasOneFigurePerLayerAndHead) {
  ASSERT_EQ(attend_status_, 0) << slurp(*dir_ / "attend.log");
  const std::string html = slurp(*dir_ / "attend" / "attention.html");
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  for (const char* tag : {"html", "head", "title", "body", "h1", "figure", "svg"})
    EXPECT_EQ(
        count_of(html, std::string("<") + tag + ">") + count_of(html, std::string("<") + tag + " "),
        count_of(html, std::string("</") + tag + ">"))
        << tag << " is not closed as often as it is opened";
  EXPECT_NE(html.find("animal didn&apos;t cross"), std::string::npos) << "the sentence is missing";
  EXPECT_EQ(count_of(html, "<figure id="), size_t(kLayers * kHeads));
  EXPECT_EQ(count_of(html, "<?xml"), 0u) << "an XML declaration inside HTML";
  // Each figure: one SVG heatmap, well-formed on its own, titled with its layer and head, and
  // equal to the SVG file of that head.
  size_t p = 0;
  for (int l = 0; l < kLayers; ++l) {
    for (int h = 0; h < kHeads; ++h) {
      SCOPED_TRACE("layer " + std::to_string(l) + " head " + std::to_string(h));
      const size_t f = html.find("<figure id=", p), e = html.find("</figure>", f);
      ASSERT_NE(e, std::string::npos);
      const std::string fig = html.substr(f, e - f);
      p = e;
      const size_t svg_at = fig.find("<svg");
      ASSERT_NE(svg_at, std::string::npos);
      const std::string svg = fig.substr(svg_at);
      EXPECT_EQ(xml_problem(svg), "");
      const std::string title = "blocks." + std::to_string(l) + ".attn head " + std::to_string(h);
      EXPECT_NE(svg.find(">" + title + "</text>"), std::string::npos) << title;
      const std::string file =
          slurp(*dir_ / "attend" /
                ("blocks." + std::to_string(l) + ".attn.h" + std::to_string(h) + ".svg"));
      EXPECT_EQ(file.substr(file.find("<svg")), svg);
      EXPECT_FALSE(heatmap_cells(svg).empty()) << "no hover titles";
    }
  }
}

}  // namespace
}  // namespace qkv
