#include "plot/plot.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/atomic_file.h"
#include "core/error.h"

namespace qkv {
namespace {

constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
constexpr const char* kFont = "font-family=\"sans-serif\"";

/// A pixel coordinate, two decimals (deterministic output).
std::string px(double v) {
  return fmt::format("{:.2f}", v);
}

std::string tick_label(double v) {
  return v == 0 ? "0" : fmt::format("{:g}", v);
}

/// Code points in a UTF-8 string, to estimate text widths.
size_t text_len(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}
double text_width(const std::string& s, double font_px) {
  return 0.6 * font_px * static_cast<double>(text_len(s));
}

std::string text(double x, double y, const std::string& s, const char* anchor, int size,
                 const std::string& extra = "") {
  return fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"{}\" font-size=\"{}\" {}{}>{}</text>\n",
                     px(x), px(y), anchor, size, kFont, extra, xml_escape(s));
}

std::string svg_open(double w, double h) {
  return fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\">\n"
      "<rect x=\"0\" y=\"0\" width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n",
      px(w), px(h));
}

// ---------------------------------------------------------------------------------------------
// Axes: a range [lo, hi] in axis units (log10 of the value on a log axis) and its ticks.

struct Axis {
  double lo = 0, hi = 1;
  std::vector<double> ticks;  // in axis units
  std::vector<std::string> labels;
};

/// 1, 2 or 5 × 10^k, about range / target.
double nice_step(double range, int target) {
  const double raw = range / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  return (f < 1.5 ? 1.0 : f < 3.0 ? 2.0 : f < 7.0 ? 5.0 : 10.0) * mag;
}

/// Nice ticks from a multiple of the step at or below lo. The axis ends at the next multiple at
/// or above hi, or, with `end_at_hi` (the step axis: a 1500-step run ends at 1500), at hi itself,
/// which then gets the last tick (a nice tick too close before it is dropped).
Axis linear_axis(double lo, double hi, int target, bool end_at_hi = false) {
  if (!(lo < hi)) {
    const double pad = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double step = nice_step(hi - lo, target);
  const auto k0 = static_cast<int64_t>(std::floor(lo / step + 1e-9));
  const auto k1 = static_cast<int64_t>(std::ceil(hi / step - 1e-9));
  Axis a;
  a.lo = static_cast<double>(k0) * step;
  a.hi = end_at_hi ? hi : static_cast<double>(k1) * step;
  for (int64_t k = k0; k <= k1; ++k) {
    const double t = static_cast<double>(k) * step;
    if (end_at_hi && t > hi - 0.6 * step && k > k0) break;  // hi's own tick comes last
    a.ticks.push_back(t);
    a.labels.push_back(tick_label(t));
  }
  if (end_at_hi && a.ticks.back() < hi) {
    a.ticks.push_back(hi);
    a.labels.push_back(tick_label(hi));
  }
  return a;
}

/// Decades covering [lo, hi] (> 0); adds 2× and 5× ticks when there are few decades.
Axis log_axis(double lo, double hi) {
  auto e0 = static_cast<int64_t>(std::floor(std::log10(lo)));
  auto e1 = static_cast<int64_t>(std::ceil(std::log10(hi)));
  if (e1 <= e0) e1 = e0 + 1;
  Axis a;
  a.lo = static_cast<double>(e0);
  a.hi = static_cast<double>(e1);
  for (int64_t e = e0; e <= e1; ++e) {
    for (double m : {1.0, 2.0, 5.0}) {
      if (m != 1.0 && (e1 - e0 > 2 || e == e1)) continue;
      const double v = m * std::pow(10.0, static_cast<double>(e));
      a.ticks.push_back(std::log10(v));
      a.labels.push_back(tick_label(v));
    }
  }
  return a;
}

// ---------------------------------------------------------------------------------------------
// Viridis, sampled at 0, 0.1, …, 1 and interpolated linearly in RGB.

constexpr unsigned char kViridis[11][3] = {
    {0x44, 0x01, 0x54}, {0x48, 0x24, 0x75}, {0x41, 0x44, 0x87}, {0x35, 0x5f, 0x8d},
    {0x2a, 0x78, 0x8e}, {0x21, 0x91, 0x8c}, {0x22, 0xa8, 0x84}, {0x44, 0xbf, 0x70},
    {0x7a, 0xd1, 0x51}, {0xbd, 0xdf, 0x26}, {0xfd, 0xe7, 0x25}};

std::string viridis(double v) {
  if (!std::isfinite(v)) return "#cccccc";
  v = std::clamp(v, 0.0, 1.0) * 10.0;
  const int i = std::min(9, static_cast<int>(v));
  const double f = v - i;
  int rgb[3];
  for (int c = 0; c < 3; ++c)
    rgb[c] =
        static_cast<int>(std::lround(kViridis[i][c] + f * (kViridis[i + 1][c] - kViridis[i][c])));
  return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

// ---------------------------------------------------------------------------------------------
// Legend placement: the first corner of the plot that no curve passes through, else outside.

struct Box {
  double x = 0, y = 0, w = 0, h = 0;
};

/// Whether the segment a–b meets `r` (Liang–Barsky: clip the segment's parameter t ∈ [0, 1] by
/// each of the four edges; it survives when the clipped interval is not empty).
bool segment_meets_box(double ax, double ay, double bx, double by, const Box& r) {
  const double dx = bx - ax, dy = by - ay;
  const double p[4] = {-dx, dx, -dy, dy};
  const double q[4] = {ax - r.x, r.x + r.w - ax, ay - r.y, r.y + r.h - ay};
  double t0 = 0, t1 = 1;
  for (int k = 0; k < 4; ++k) {
    if (p[k] == 0) {
      if (q[k] < 0) return false;  // parallel to this edge and outside it
      continue;
    }
    const double t = q[k] / p[k];
    if (p[k] < 0)
      t0 = std::max(t0, t);
    else
      t1 = std::min(t1, t);
    if (t0 > t1) return false;
  }
  return true;
}

/// Whether any curve (pixel points, one polyline each) passes through `r` grown by `margin`.
bool curves_meet(const std::vector<std::vector<std::pair<double, double>>>& curves, Box r,
                 double margin) {
  r = {r.x - margin, r.y - margin, r.w + 2 * margin, r.h + 2 * margin};
  for (const auto& c : curves)
    for (size_t i = 0; i < c.size(); ++i) {
      const auto& b = c[i];
      const auto& a = i ? c[i - 1] : b;
      if (segment_meets_box(a.first, a.second, b.first, b.second, r)) return true;
    }
  return false;
}

}  // namespace

std::string xml_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&quot;";
          break;
        case '\'':
          out += "&apos;";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\r':
          out += "\\r";
          break;
        default:
          if (c < 0x20) {
            out += fmt::format("\\x{:02X}", c);  // not allowed in XML 1.0
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    // A UTF-8 sequence: its length from the lead byte, then the continuation bytes, rejecting
    // overlong forms, surrogates, code points past U+10FFFF and the non-characters U+FFFE/F.
    size_t len = c >= 0xC2 && c <= 0xDF   ? 2
                 : c >= 0xE0 && c <= 0xEF ? 3
                 : c >= 0xF0 && c <= 0xF4 ? 4
                                          : 0;
    bool ok = len != 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k)
      ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (ok) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
          (c == 0xF4 && c1 > 0x8F))
        ok = false;
      if (c == 0xEF && c1 == 0xBF && static_cast<unsigned char>(s[i + 2]) >= 0xBE) ok = false;
    }
    if (ok) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    }
  }
  return out;
}

std::string line_chart_svg(const std::vector<PlotSeries>& series, const LineChartOptions& o) {
  // Data ranges over the points that will be drawn.
  auto drawn = [&](double x, double y) {
    return std::isfinite(x) && std::isfinite(y) && (!o.log_y || y > 0);
  };
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const PlotSeries& s : series) {
    QKV_CHECK(s.x.size() == s.y.size(), "line chart: series '{}' has {} x values and {} y values",
              s.name, s.x.size(), s.y.size());
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!drawn(s.x[i], s.y[i])) continue;
      x0 = std::min(x0, s.x[i]);
      x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]);
      y1 = std::max(y1, s.y[i]);
    }
  }
  if (!(x0 <= x1)) x0 = 0, x1 = 1, y0 = o.log_y ? 0.1 : 0, y1 = 1;
  const Axis xa = linear_axis(x0, x1, 6, /*end_at_hi=*/true);
  const Axis ya = o.log_y ? log_axis(y0, y1) : linear_axis(y0, y1, 5);

  // Layout: title on top, tick labels and axis labels left and below.
  double ylab_w = 0;
  for (const std::string& l : ya.labels) ylab_w = std::max(ylab_w, text_width(l, 11));
  const double W = std::max(o.width, 200), H = std::max(o.height, 150);
  const double left = 12 + (o.y_label.empty() ? 0 : 18) + ylab_w + 8;
  const double top = o.title.empty() ? 16 : 40;
  const double bottom = 34 + (o.x_label.empty() ? 0 : 18);
  const double ph = H - top - bottom;
  double right = 20, pw = W - left - right;
  auto X = [&](double x) { return left + (x - xa.lo) / (xa.hi - xa.lo) * pw; };
  auto Y = [&](double y) {
    const double a = o.log_y ? std::log10(y) : y;
    return top + ph - (a - ya.lo) / (ya.hi - ya.lo) * ph;
  };
  auto Ya = [&](double a) { return top + ph - (a - ya.lo) / (ya.hi - ya.lo) * ph; };
  auto curves = [&] {
    std::vector<std::vector<std::pair<double, double>>> out;
    for (const PlotSeries& s : series) {
      out.emplace_back();
      for (size_t i = 0; i < s.x.size(); ++i)
        if (drawn(s.x[i], s.y[i])) out.back().emplace_back(X(s.x[i]), Y(s.y[i]));
    }
    return out;
  };

  // The legend goes where no curve passes (a corner, then the middle of an edge); when every
  // such place is crossed, the plot narrows and the legend stands to its right.
  double name_w = 0;
  for (const PlotSeries& s : series) name_w = std::max(name_w, text_width(s.name, 12));
  const bool has_legend = !series.empty() && name_w > 0;
  Box legend{0, 0, name_w + 40, 8 + 18.0 * static_cast<double>(series.size())};
  if (has_legend) {
    const auto placed_curves = curves();
    const double in = 8, l = left + in, r = left + pw - in - legend.w, t = top + in;
    const double b = top + ph - in - legend.h, cx = left + (pw - legend.w) / 2,
                 cy = top + (ph - legend.h) / 2;
    const std::pair<double, double> spots[] = {{r, t},  {l, t},  {r, b},  {l, b},
                                               {cx, t}, {cx, b}, {r, cy}, {l, cy}};
    bool placed = false;
    for (const auto& [x, y] : spots) {
      if (curves_meet(placed_curves, {x, y, legend.w, legend.h}, 3)) continue;
      legend.x = x, legend.y = y, placed = true;
      break;
    }
    if (!placed) {
      right += legend.w + 12;
      pw = W - left - right;
      legend.x = left + pw + 12, legend.y = top;
    }
  }

  std::string svg = svg_open(W, H);
  if (!o.title.empty()) svg += text(W / 2, 24, o.title, "middle", 15, " font-weight=\"bold\"");
  svg += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n",
      px(left), px(top), px(pw), px(ph));
  // Grid and ticks.
  svg += "<g stroke=\"#e4e4e4\" stroke-width=\"1\">\n";
  for (double t : xa.ticks)
    svg += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\"/>\n", px(X(t)), px(top),
                       px(top + ph));
  for (double t : ya.ticks)
    svg += fmt::format("<line x1=\"{1}\" y1=\"{0}\" x2=\"{2}\" y2=\"{0}\"/>\n", px(Ya(t)), px(left),
                       px(left + pw));
  svg += "</g>\n";
  for (size_t k = 0; k < xa.ticks.size(); ++k)
    svg += text(X(xa.ticks[k]), top + ph + 16, xa.labels[k], "middle", 11);
  for (size_t k = 0; k < ya.ticks.size(); ++k)
    svg += text(left - 6, Ya(ya.ticks[k]) + 4, ya.labels[k], "end", 11);
  if (!o.x_label.empty()) svg += text(left + pw / 2, H - 10, o.x_label, "middle", 12);
  if (!o.y_label.empty()) {
    const double cx = 16, cy = top + ph / 2;
    svg += text(cx, cy, o.y_label, "middle", 12,
                fmt::format(" transform=\"rotate(-90 {} {})\"", px(cx), px(cy)));
  }
  // One polyline per series.
  const auto drawn_curves = curves();
  for (size_t s = 0; s < series.size(); ++s) {
    const char* colour = kPalette[s % std::size(kPalette)];
    std::string points;
    for (const auto& [x, y] : drawn_curves[s])
      points += (points.empty() ? "" : " ") + px(x) + "," + px(y);
    svg += fmt::format(
        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\" stroke-linejoin=\"round\" "
        "points=\"{}\"><title>{}</title></polyline>\n",
        colour, points, xml_escape(series[s].name));
    if (drawn_curves[s].size() == 1)
      svg += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{}\"/>\n",
                         px(drawn_curves[s][0].first), px(drawn_curves[s][0].second), colour);
  }
  if (has_legend) {
    svg += fmt::format(
        "<rect class=\"legend\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"white\" "
        "fill-opacity=\"0.85\" stroke=\"#bbb\"/>\n",
        px(legend.x), px(legend.y), px(legend.w), px(legend.h));
    for (size_t s = 0; s < series.size(); ++s) {
      const double yy = legend.y + 16 + 18.0 * static_cast<double>(s);
      svg += fmt::format(
          "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2.5\"/>\n",
          px(legend.x + 8), px(yy - 4), px(legend.x + 28), px(yy - 4),
          kPalette[s % std::size(kPalette)]);
      svg += text(legend.x + 34, yy, series[s].name, "start", 12);
    }
  }
  return svg + "</svg>\n";
}

std::string heatmap_svg(const std::vector<double>& values, int64_t rows, int64_t cols,
                        const HeatmapOptions& o) {
  QKV_CHECK(rows >= 0 && cols >= 0 && static_cast<int64_t>(values.size()) == rows * cols,
            "heatmap: {} values for {} rows x {} columns", values.size(), rows, cols);
  QKV_CHECK(o.row_labels.empty() || static_cast<int64_t>(o.row_labels.size()) == rows,
            "heatmap: {} row labels for {} rows", o.row_labels.size(), rows);
  QKV_CHECK(o.col_labels.empty() || static_cast<int64_t>(o.col_labels.size()) == cols,
            "heatmap: {} column labels for {} columns", o.col_labels.size(), cols);
  auto row_label = [&](int64_t i) {
    return o.row_labels.empty() ? std::to_string(i) : o.row_labels[static_cast<size_t>(i)];
  };
  auto col_label = [&](int64_t j) {
    return o.col_labels.empty() ? std::to_string(j) : o.col_labels[static_cast<size_t>(j)];
  };

  // Cell width and height: each axis fits about 640 px (square cells when rows == cols).
  auto fit = [&](int64_t n) {
    return o.cell > 0 ? o.cell
                      : std::clamp(640.0 / static_cast<double>(std::max<int64_t>(n, 1)), 4.0, 32.0);
  };
  const double cw = fit(cols), ch = fit(rows);
  // Show every stride-th label so that labels are at least 12 px apart.
  const auto row_stride = static_cast<int64_t>(std::ceil(12.0 / ch));
  const auto col_stride = static_cast<int64_t>(std::ceil(12.0 / cw));
  const int font = 11;
  double row_w = 0, col_w = 0;
  for (int64_t i = 0; i < rows; i += row_stride)
    row_w = std::max(row_w, text_width(row_label(i), font));
  for (int64_t j = 0; j < cols; j += col_stride)
    col_w = std::max(col_w, text_width(col_label(j), font));

  const double gw = cw * static_cast<double>(cols), gh = ch * static_cast<double>(rows);
  const double left = 10 + (o.y_label.empty() ? 0 : 18) + row_w + 6;
  const double top = o.title.empty() ? 12 : 40;
  const double col_h = col_w * 0.71 + 12;  // labels rotated by 45°
  const double bar_x = left + gw + 18, bar_w = 14, bar_h = std::max(gh, 60.0);
  double W = bar_x + bar_w + 40;
  W = std::max(W, text_width(o.title, 15) + 20);
  const double H = top + std::max(gh + col_h, bar_h + 8) + (o.x_label.empty() ? 0 : 20) + 10;

  std::string svg = svg_open(W, H);
  svg += "<defs><linearGradient id=\"qkv-viridis\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">";
  for (int k = 0; k <= 10; ++k)
    svg += fmt::format("<stop offset=\"{:.1f}\" stop-color=\"{}\"/>", k / 10.0, viridis(k / 10.0));
  svg += "</linearGradient></defs>\n";
  if (!o.title.empty()) svg += text(W / 2, 24, o.title, "middle", 15, " font-weight=\"bold\"");

  const double cell = std::min(cw, ch);
  const bool annotate = o.annotate && cell >= 24;
  svg += "<g shape-rendering=\"crispEdges\">\n";
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      const double v = values[static_cast<size_t>(i * cols + j)];
      const double x = left + cw * static_cast<double>(j), y = top + ch * static_cast<double>(i);
      svg += fmt::format(
          "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>{}, {}: {:.4f}"
          "</title></rect>\n",
          px(x), px(y), px(cw), px(ch), viridis(v), xml_escape(row_label(i)),
          xml_escape(col_label(j)), v);
      if (annotate && std::isfinite(v))
        svg += text(x + cw / 2, y + ch / 2 + cell * 0.14, fmt::format("{:.2f}", v), "middle",
                    static_cast<int>(cell * 0.4), v > 0.6 ? " fill=\"black\"" : " fill=\"white\"");
    }
  }
  svg += "</g>\n";
  for (int64_t i = 0; i < rows; i += row_stride)
    svg += text(left - 6, top + ch * (static_cast<double>(i) + 0.5) + 4, row_label(i), "end", font);
  for (int64_t j = 0; j < cols; j += col_stride) {
    const double x = left + cw * (static_cast<double>(j) + 0.5), y = top + gh + 8;
    svg += text(x, y, col_label(j), "end", font,
                fmt::format(" transform=\"rotate(-45 {} {})\"", px(x), px(y)));
  }
  if (!o.x_label.empty()) svg += text(left + gw / 2, H - 10, o.x_label, "middle", 12);
  if (!o.y_label.empty()) {
    const double cx = 16, cy = top + gh / 2;
    svg += text(cx, cy, o.y_label, "middle", 12,
                fmt::format(" transform=\"rotate(-90 {} {})\"", px(cx), px(cy)));
  }
  // Colour bar with ticks at 0, 0.5 and 1.
  svg += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"url(#qkv-viridis)\" "
      "stroke=\"#444\"/>\n",
      px(bar_x), px(top), px(bar_w), px(bar_h));
  for (double t : {0.0, 0.5, 1.0})
    svg += text(bar_x + bar_w + 4, top + bar_h * (1 - t) + 4, tick_label(t), "start", font);
  return svg + "</svg>\n";
}

void write_svg(const std::string& path, const std::string& svg) {
  write_file_atomic(path, svg);
}

}  // namespace qkv
