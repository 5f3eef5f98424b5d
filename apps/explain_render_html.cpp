// qkv explain's lesson as one self-contained HTML page with inline SVG pictures.
#include <algorithm>

#include "apps/explain_writer.h"
#include "plot/plot.h"

namespace qkv::cli {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;

std::string strip_xml_declaration(const std::string& svg) {
  const size_t at = svg.find("<svg");
  return at == std::string::npos ? svg : svg.substr(at);
}

/// A horizontal bar chart of probabilities, as inline SVG.
std::string bars_svg(const Labels& labels, const VectorXd& p) {
  const int row = 28, label_w = 110, bar_w = 360;
  const int h = row * static_cast<int>(labels.size()) + 10;
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"14\">",
      label_w + bar_w + 80, h);
  for (size_t i = 0; i < labels.size(); ++i) {
    const double v = std::clamp(p(static_cast<Eigen::Index>(i)), 0.0, 1.0);
    const int y = 5 + row * static_cast<int>(i);
    s += fmt::format(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>"
        "<rect x=\"{}\" y=\"{}\" width=\"{:.2f}\" height=\"{}\" fill=\"#3b6ea5\">"
        "<title>{} {:.1f} %</title></rect>"
        "<text x=\"{:.2f}\" y=\"{}\">{:.1f} %</text>",
        label_w - 8, y + 18, xml_escape(labels[i]), label_w, y + 4, v * bar_w, row - 8,
        xml_escape(labels[i]), 100 * v, label_w + v * bar_w + 6, y + 18, 100 * v);
  }
  return s + "</svg>";
}

class HtmlWriter : public Writer {
 public:
  void title(const std::string& text) override {
    title_ = text;
    body_ += "<h1>" + xml_escape(text) + "</h1>\n";
  }
  void heading(const std::string& text) override { body_ += "<h2>" + xml_escape(text) + "</h2>\n"; }
  void para(const std::string& text) override { body_ += "<p>" + xml_escape(text) + "</p>\n"; }
  void math(const std::vector<std::string>& lines) override {
    body_ += "<pre>";
    for (const auto& l : lines) body_ += xml_escape(l) + "\n";
    body_ += "</pre>\n";
  }
  void matrix(const std::string& caption, const Labels& rows, const Labels& cols, const MatrixXd& m,
              int precision) override {
    body_ += "<table><caption>" + xml_escape(caption) + "</caption>\n<tr><th></th>";
    for (const auto& c : cols) body_ += "<th>" + xml_escape(c) + "</th>";
    body_ += "</tr>\n";
    for (Eigen::Index i = 0; i < m.rows(); ++i) {
      body_ += "<tr><th>" + xml_escape(rows[static_cast<size_t>(i)]) + "</th>";
      for (Eigen::Index j = 0; j < m.cols(); ++j)
        body_ += "<td>" + num(m(i, j), precision) + "</td>";
      body_ += "</tr>\n";
    }
    body_ += "</table>\n";
  }
  void checked(const CheckedBlock& b) override {
    body_ += "<table class=\"checked\"><caption>" + xml_escape(b.name + ": " + b.formula) +
             " <span class=\"fd\">(finite difference below each value)</span></caption>\n"
             "<tr><th></th>";
    for (const auto& c : b.col_labels) body_ += "<th>" + xml_escape(c) + "</th>";
    body_ += "</tr>\n";
    for (Eigen::Index i = 0; i < b.analytic.rows(); ++i) {
      body_ += "<tr><th>" + xml_escape(b.row_labels[static_cast<size_t>(i)]) + "</th>";
      for (Eigen::Index j = 0; j < b.analytic.cols(); ++j)
        body_ += "<td>" + num(b.analytic(i, j), kBackwardPrecision) + "<br/><span class=\"fd\">" +
                 num(b.numeric(i, j), kBackwardPrecision) + "</span></td>";
      body_ += "</tr>\n";
    }
    body_ +=
        "</table>\n<p class=\"err\">max |analytic − finite difference| = " + err(b.max_abs_err()) +
        "</p>\n";
  }
  void bars(const std::string& caption, const Labels& labels, const VectorXd& p) override {
    svg(caption, bars_svg(labels, p));
  }
  void table(const Labels& header, const std::vector<Labels>& rows) override {
    body_ += "<table>\n<tr>";
    for (const auto& h : header) body_ += "<th>" + xml_escape(h) + "</th>";
    body_ += "</tr>\n";
    for (const auto& r : rows) {
      body_ += "<tr>";
      for (const auto& c : r) body_ += "<td>" + xml_escape(c) + "</td>";
      body_ += "</tr>\n";
    }
    body_ += "</table>\n";
  }
  void heatmap(const std::string& caption, const Labels& rows, const Labels& cols,
               const MatrixXd& m) override {
    HeatmapOptions o;  // no title: the caption below the figure names it, once
    o.row_labels = rows;
    o.col_labels = cols;
    o.x_label = "key";
    o.y_label = "query";
    o.cell = 64;
    o.annotate = true;
    std::vector<double> values;
    for (Eigen::Index i = 0; i < m.rows(); ++i)
      for (Eigen::Index j = 0; j < m.cols(); ++j) values.push_back(m(i, j));
    svg(caption, heatmap_svg(values, m.rows(), m.cols(), o));
  }
  void svg(const std::string& caption, const std::string& svg) override {
    body_ += "<figure>" + strip_xml_declaration(svg) + "<figcaption>" + xml_escape(caption) +
             "</figcaption></figure>\n";
  }
  std::string finish() override {
    return "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n"
           "<head><meta charset=\"utf-8\"/><title>" +
           xml_escape(title_) +
           "</title>\n<style>\n"
           "body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.45}\n"
           "table{border-collapse:collapse;margin:0.8em 0}\n"
           "th,td{border:1px solid #ccc;padding:0.2em 0.6em;text-align:right;"
           "font-family:monospace}\n"
           "caption{text-align:left;font-weight:bold;padding:0.3em 0}\n"
           ".fd{color:#777;font-size:90%}\n.err{font-family:monospace;color:#2a7a2a}\n"
           "pre{background:#f6f6f6;padding:0.6em}\nfigure{margin:1em 0}\n"
           "</style></head>\n<body>\n" +
           body_ + "</body>\n</html>\n";
  }

 private:
  std::string title_, body_;
};

}  // namespace

std::unique_ptr<Writer> make_html_writer() {
  return std::make_unique<HtmlWriter>();
}

}  // namespace qkv::cli
