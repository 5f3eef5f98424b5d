// qkv explain's lesson as Markdown (headings, pipe tables, fenced formulas).
#include <algorithm>

#include "apps/explain_writer.h"

namespace qkv::cli {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;

std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

class MarkdownWriter : public Writer {
 public:
  void title(const std::string& text) override { out_ += "# " + text + "\n\n"; }
  void heading(const std::string& text) override { out_ += "## " + text + "\n\n"; }
  void para(const std::string& text) override { out_ += text + "\n\n"; }
  void math(const std::vector<std::string>& lines) override {
    out_ += "```text\n";
    for (const auto& l : lines) out_ += l + "\n";
    out_ += "```\n\n";
  }
  void matrix(const std::string& caption, const Labels& rows, const Labels& cols, const MatrixXd& m,
              int precision) override {
    out_ += "**" + caption + "**\n\n";
    std::vector<Labels> body;
    for (Eigen::Index i = 0; i < m.rows(); ++i) {
      Labels r{rows[static_cast<size_t>(i)]};
      for (Eigen::Index j = 0; j < m.cols(); ++j) r.push_back(num(m(i, j), precision));
      body.push_back(r);
    }
    Labels header{""};
    header.insert(header.end(), cols.begin(), cols.end());
    table(header, body);
  }
  void checked(const CheckedBlock& b) override {
    out_ += "**" + b.name + "**: " + b.formula +
            " — each row analytic, then its finite "
            "difference (FD)\n\n";
    std::vector<Labels> body;
    for (Eigen::Index i = 0; i < b.analytic.rows(); ++i)
      for (const bool fd : {false, true}) {
        Labels r{fd ? "FD" : b.row_labels[static_cast<size_t>(i)]};
        const MatrixXd& m = fd ? b.numeric : b.analytic;
        for (Eigen::Index j = 0; j < m.cols(); ++j) r.push_back(num(m(i, j), kBackwardPrecision));
        body.push_back(r);
      }
    Labels header{""};
    header.insert(header.end(), b.col_labels.begin(), b.col_labels.end());
    table(header, body);
    out_ += "max |analytic − FD| = " + err(b.max_abs_err()) + "\n\n";
  }
  void bars(const std::string& caption, const Labels& labels, const VectorXd& p) override {
    out_ += "**" + caption + "**\n\n```text\n";
    for (const auto& l : bar_lines(labels, p)) out_ += l + "\n";
    out_ += "```\n\n";
  }
  void table(const Labels& header, const std::vector<Labels>& rows) override {
    std::string sep = "|";
    out_ += "|";
    for (size_t j = 0; j < header.size(); ++j) {
      out_ += " " + md_cell(header[j]) + " |";
      sep += j == 0 ? " --- |" : " ---: |";
    }
    out_ += "\n" + sep + "\n";
    for (const auto& r : rows) {
      out_ += "|";
      for (const auto& c : r) out_ += " " + md_cell(c) + " |";
      out_ += "\n";
    }
    out_ += "\n";
  }
  std::string finish() override { return out_; }

 private:
  std::string out_;
};

}  // namespace

std::unique_ptr<Writer> make_markdown_writer() {
  return std::make_unique<MarkdownWriter>();
}

}  // namespace qkv::cli
