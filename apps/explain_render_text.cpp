// qkv explain's lesson as plain text for the terminal (aligned columns, wrapped paragraphs).
#include <algorithm>
#include <sstream>

#include "apps/explain_writer.h"
#include "apps/terminal.h"

namespace qkv::cli {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;

/// Aligned lines: a label column, then right-aligned numbers under their column labels.
std::vector<std::string> matrix_lines(const Labels& rows, const Labels& cols, const MatrixXd& m,
                                      int precision) {
  size_t lw = 0, cw = 0;
  for (const auto& r : rows) lw = std::max(lw, display_width(r));
  for (const auto& c : cols) cw = std::max(cw, display_width(c));
  for (Eigen::Index i = 0; i < m.size(); ++i) cw = std::max(cw, num(m.data()[i], precision).size());
  std::vector<std::string> out;
  std::string head = std::string(lw, ' ');
  for (const auto& c : cols) head += "  " + pad_left(c, cw);
  out.push_back(head);
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    std::string line = pad_right(rows[static_cast<size_t>(i)], lw);
    for (Eigen::Index j = 0; j < m.cols(); ++j)
      line += "  " + pad_left(num(m(i, j), precision), cw);
    out.push_back(line);
  }
  return out;
}

class TextWriter : public Writer {
 public:
  void title(const std::string& text) override {
    out_ += text + "\n" + std::string(display_width(text), '=') + "\n\n";
  }
  void heading(const std::string& text) override {
    out_ += text + "\n" + std::string(display_width(text), '-') + "\n\n";
  }
  void para(const std::string& text) override {
    // Wrapped at 96 columns.
    std::istringstream words(text);
    std::string word, line;
    while (words >> word) {
      if (!line.empty() && display_width(line) + 1 + display_width(word) > 96) {
        out_ += line + "\n";
        line.clear();
      }
      line += (line.empty() ? "" : " ") + word;
    }
    out_ += line + "\n\n";
  }
  void math(const std::vector<std::string>& lines) override {
    for (const auto& l : lines) out_ += "    " + l + "\n";
    out_ += "\n";
  }
  void matrix(const std::string& caption, const Labels& rows, const Labels& cols, const MatrixXd& m,
              int precision) override {
    out_ += caption + "\n";
    for (const auto& l : matrix_lines(rows, cols, m, precision)) out_ += "    " + l + "\n";
    out_ += "\n";
  }
  void checked(const CheckedBlock& b) override {
    out_ += b.name + ":  " + b.formula + "\n";
    if (b.analytic.rows() == 1) {  // a vector: analytic above finite difference
      MatrixXd both(2, b.analytic.cols());
      both << b.analytic, b.numeric;
      for (const auto& l :
           matrix_lines({"analytic", "finite diff."}, b.col_labels, both, kBackwardPrecision))
        out_ += "    " + l + "\n";
      out_ += "    max |analytic − finite difference| = " + err(b.max_abs_err()) + "\n\n";
      return;
    }
    const auto a = matrix_lines(b.row_labels, b.col_labels, b.analytic, kBackwardPrecision);
    const auto n = matrix_lines(b.row_labels, b.col_labels, b.numeric, kBackwardPrecision);
    const size_t aw = display_width(a.front());
    if (4 + 2 * aw + 3 <= 100) {  // side by side
      out_ += "    " + pad_right("analytic", aw) + "   finite difference\n";
      for (size_t i = 0; i < a.size(); ++i)
        out_ += "    " + pad_right(a[i], aw) + " │ " + n[i] + "\n";
    } else {
      out_ += "  analytic\n";
      for (const auto& l : a) out_ += "    " + l + "\n";
      out_ += "  finite difference\n";
      for (const auto& l : n) out_ += "    " + l + "\n";
    }
    out_ += "    max |analytic − finite difference| = " + err(b.max_abs_err()) + "\n\n";
  }
  void bars(const std::string& caption, const Labels& labels, const VectorXd& p) override {
    out_ += caption + "\n";
    for (const auto& l : bar_lines(labels, p)) out_ += "    " + l + "\n";
    out_ += "\n";
  }
  void table(const Labels& header, const std::vector<Labels>& rows) override {
    std::vector<size_t> w(header.size());
    for (size_t j = 0; j < header.size(); ++j) w[j] = display_width(header[j]);
    for (const auto& r : rows)
      for (size_t j = 0; j < r.size(); ++j) w[j] = std::max(w[j], display_width(r[j]));
    auto line = [&](const Labels& r) {
      std::string s = "   ";
      for (size_t j = 0; j < r.size(); ++j)
        s += " " + (j == 0 ? pad_right(r[j], w[j]) : pad_left(r[j], w[j]));
      return s + "\n";
    };
    out_ += line(header);
    size_t total = 0;
    for (size_t x : w) total += x + 1;
    out_ += "    " + std::string(total - 1, '-') + "\n";
    for (const auto& r : rows) out_ += line(r);
    out_ += "\n";
  }
  std::string finish() override { return out_; }

 private:
  std::string out_;
};

}  // namespace

std::vector<std::string> bar_lines(const Labels& labels, const Eigen::VectorXd& p) {
  size_t lw = 0;
  for (const auto& l : labels) lw = std::max(lw, display_width(l));
  std::vector<std::string> out;
  for (size_t i = 0; i < labels.size(); ++i) {
    const double v = p(static_cast<Eigen::Index>(i));
    out.push_back(pad_right(labels[i], lw) + fmt::format("  {:5.1f} %  ", 100 * v) + bar(v, 40));
  }
  return out;
}

std::unique_ptr<Writer> make_text_writer() {
  return std::make_unique<TextWriter>();
}

}  // namespace qkv::cli
