// Self-contained SVG pictures (no dependencies, no scripts): line charts of named series and
// heatmaps of matrices. Callers turn their own records into series (train/charts.h does so for
// metrics.jsonl), so this library knows no training run.
//
// Output is well-formed XML (labels are escaped; control characters and invalid UTF-8 are
// replaced), deterministic (coordinates with two decimals), and viewable in any browser.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qkv {

/// One named curve: y over x (x is usually the training step).
struct PlotSeries {
  std::string name;
  std::vector<double> x;
  std::vector<double> y;
};

struct LineChartOptions {
  std::string title;
  std::string x_label = "step";
  std::string y_label;
  bool log_y = false;  ///< log10 y axis; points with y <= 0 are then skipped
  int width = 720;     ///< pixels
  int height = 440;
};

/// A line chart: axes with "nice" ticks (1, 2, 5 × 10^k; powers of ten on a log axis), grid,
/// labels, title, and a legend. Exactly one <polyline> per series, in series order (points with a
/// non-finite y are skipped; a series with one point also gets a <circle>). Throws qkv::Error when
/// a series' x and y differ in length.
std::string line_chart_svg(const std::vector<PlotSeries>& series, const LineChartOptions& options);

struct HeatmapOptions {
  std::string title;
  std::vector<std::string> row_labels;  ///< empty = 0, 1, …; else one per row
  std::vector<std::string> col_labels;  ///< empty = 0, 1, …; else one per column
  std::string x_label;                  ///< under the column labels (e.g. "key token")
  std::string y_label;                  ///< beside the row labels (e.g. "step")
  int cell = 0;  ///< cell size in pixels; 0 = each axis fits about 640 px (4…32 px a cell)
  bool annotate = false;  ///< print each value in its cell (when cells are ≥ 24 px)
};

/// A heatmap of `values` (rows × cols, row-major, expected in [0, 1]; clamped, NaN grey) with
/// the viridis colour scale. Exactly rows·cols + 2 <rect> elements: the background, one per
/// cell (row-major, each with a <title> tooltip), and the colour bar. Throws qkv::Error when the
/// sizes disagree.
std::string heatmap_svg(const std::vector<double>& values, int64_t rows, int64_t cols,
                        const HeatmapOptions& options);

/// `text` with & < > " ' escaped, control characters shown as \xNN and invalid UTF-8 as U+FFFD.
std::string xml_escape(const std::string& text);

/// Writes `svg` to `path` with write_file_atomic (core/atomic_file.h).
void write_svg(const std::string& path, const std::string& svg);

}  // namespace qkv
