// attention.html of qkv attend: every head's heatmap on one page, grouped by layer and kind
// (self-attention; for seq2seq encoder, decoder and cross-attention), with an index table of
// layers × kinds linking to each head when there is more than one group.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qkv::cli {

class AttentionPage {
 public:
  /// `sentence` heads the page.
  explicit AttentionPage(std::string sentence) : sentence_(std::move(sentence)) {}
  /// One head's heatmap: `kind` ("self-attention", "cross-attention", …), its layer and head,
  /// `id` (unique; the figure's anchor) and the SVG document.
  void add(const std::string& kind, int64_t layer, int64_t head, const std::string& id,
           const std::string& svg);
  /// The whole page: self-contained HTML, no scripts.
  std::string html() const;

 private:
  struct Figure {
    std::string kind;
    int64_t layer, head;
    std::string id, svg;
  };
  std::string sentence_;
  std::vector<Figure> figures_;
};

}  // namespace qkv::cli
