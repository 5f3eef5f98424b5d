#include "apps/attention_page.h"

#include <algorithm>
#include <map>
#include <utility>

#include <fmt/core.h>

#include "plot/plot.h"

namespace qkv::cli {

void AttentionPage::add(const std::string& kind, int64_t layer, int64_t head, const std::string& id,
                        const std::string& svg) {
  figures_.push_back({kind, layer, head, id, svg.substr(svg.find("<svg"))});  // no <?xml?>
}

std::string AttentionPage::html() const {
  // Groups (kind, layer) in the order the model runs them; kinds as the index's columns.
  std::vector<std::pair<std::string, int64_t>> groups;
  std::vector<std::string> kinds;
  int64_t layers = 0;
  for (const Figure& f : figures_) {
    const std::pair<std::string, int64_t> g{f.kind, f.layer};
    if (std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
    if (std::find(kinds.begin(), kinds.end(), f.kind) == kinds.end()) kinds.push_back(f.kind);
    layers = std::max(layers, f.layer + 1);
  }
  auto group_id = [](const std::string& kind, int64_t layer) {
    std::string id = fmt::format("layer-{}-{}", layer, kind);
    std::replace(id.begin(), id.end(), ' ', '-');
    return id;
  };

  std::string html =
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>qkv attention</title>"
      "<style>body{font-family:sans-serif;margin:2em}figure{display:inline-block;margin:1em}"
      "table.index{border-collapse:collapse}table.index td,table.index th{border:1px solid #ccc;"
      "padding:0.3em 0.8em}a{margin-right:0.5em}</style></head><body>\n<h1>Attention</h1>\n<p>" +
      xml_escape(sentence_) +
      "</p>\n<p>Rows are queries, columns are keys; each row is P = softmax(Q·Kᵀ/√d_k) and sums to "
      "1. Hover a cell for its weight.</p>\n";
  if (groups.size() > 1) {
    html += "<nav><table class=\"index\">\n<tr><th>layer</th>";
    for (const std::string& k : kinds) html += "<th>" + xml_escape(k) + "</th>";
    html += "</tr>\n";
    for (int64_t l = 0; l < layers; ++l) {
      html += fmt::format("<tr><th>{}</th>", l);
      for (const std::string& k : kinds) {
        html += "<td>";
        for (const Figure& f : figures_)
          if (f.kind == k && f.layer == l)
            html += fmt::format("<a href=\"#{}\">head {}</a>", xml_escape(f.id), f.head);
        html += "</td>";
      }
      html += "</tr>\n";
    }
    html += "</table></nav>\n";
  }
  for (const auto& [kind, layer] : groups) {
    html += fmt::format("<section id=\"{}\">\n<h2>layer {}: {}</h2>\n", group_id(kind, layer),
                        layer, xml_escape(kind));
    for (const Figure& f : figures_)
      if (f.kind == kind && f.layer == layer)
        html += fmt::format("<figure id=\"{}\">{}</figure>\n", xml_escape(f.id), f.svg);
    html += "</section>\n";
  }
  return html + "</body></html>\n";
}

}  // namespace qkv::cli
