// The lesson's building blocks (Writer) with the number formatting its three renderers share.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <Eigen/Dense>

#include "apps/explain.h"

namespace qkv::cli {

using Labels = std::vector<std::string>;

/// The lesson's building blocks; each format implements them.
class Writer {
 public:
  virtual ~Writer() = default;
  virtual void title(const std::string& text) = 0;
  virtual void heading(const std::string& text) = 0;
  virtual void para(const std::string& text) = 0;
  /// Formulas or worked arithmetic, one per line, shown verbatim.
  virtual void math(const std::vector<std::string>& lines) = 0;
  virtual void matrix(const std::string& caption, const Labels& rows, const Labels& cols,
                      const Eigen::MatrixXd& m, int precision) = 0;
  /// A backward block: analytic beside finite differences, and the max difference.
  virtual void checked(const CheckedBlock& b) = 0;
  /// Probabilities as labelled bars.
  virtual void bars(const std::string& caption, const Labels& labels, const Eigen::VectorXd& p) = 0;
  virtual void table(const Labels& header, const std::vector<Labels>& rows) = 0;
  /// A picture: only the HTML page shows these.
  virtual void heatmap(const std::string& /*caption*/, const Labels& /*rows*/,
                       const Labels& /*cols*/, const Eigen::MatrixXd& /*m*/) {}
  virtual void svg(const std::string& /*caption*/, const std::string& /*svg*/) {}
  virtual std::string finish() = 0;
};

constexpr int kBackwardPrecision = 6;

/// Probabilities as text bars, one line per label (text and Markdown show bars so).
std::vector<std::string> bar_lines(const Labels& labels, const Eigen::VectorXd& p);

/// The three renderers.
std::unique_ptr<Writer> make_text_writer();
std::unique_ptr<Writer> make_markdown_writer();
std::unique_ptr<Writer> make_html_writer();

/// Columns a UTF-8 string takes in a terminal (one per code point; good enough for labels).
inline size_t display_width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

inline std::string pad_left(const std::string& s, size_t width) {
  const size_t w = display_width(s);
  return w >= width ? s : std::string(width - w, ' ') + s;
}

inline std::string pad_right(const std::string& s, size_t width) {
  const size_t w = display_width(s);
  return w >= width ? s : s + std::string(width - w, ' ');
}

inline std::string num(double v, int precision) {
  std::string s = fmt::format("{:.{}f}", v, precision);
  if (s.find_first_not_of("-0.") == std::string::npos && s[0] == '-') s.erase(0, 1);  // no "-0.00"
  return s;
}

inline std::string err(double e) {
  return fmt::format("{:.1e}", e);
}

}  // namespace qkv::cli
