// The pronoun task's probe: how much attention the pronoun's row gives the referent noun against
// the distractor noun, in every self-attention head, over the sentences whose nouns are known.
//
// For sentence b with read-out (pronoun) position q, referent position r, distractor position d,
// and head h of a self-attention module with probabilities P [B, H, T, T]:
//   P(referent)   = mean over sentences of P[b, h, q, r]
//   P(distractor) = mean over sentences of P[b, h, q, d]
//   wins          = share of sentences where P[b, h, q, r] > P[b, h, q, d]
// The best head has the most wins (ties: the larger mean margin P(referent) − P(distractor)).
#include <fmt/core.h>

#include "datasets/pronoun.h"

namespace qkv {
namespace {

class ReferentProbe : public Probe {
 public:
  explicit ReferentProbe(const PronounTask& task) : task_(task) {}

  std::string name() const override { return "referent_attention"; }

  void reset() override {
    modules_.clear();
    heads_ = sentences_ = 0;
    ref_.clear(), dis_.clear(), wins_.clear();
  }

  void add(const ProbeView& v) override {
    if (modules_.empty()) {
      for (const AttentionMap<float>& a : v.attention) {
        if (!a.role.is_self()) continue;
        modules_.push_back(a.path);
        heads_ = a.P.size(1);
      }
      ref_.assign(modules_.size(), std::vector<double>(static_cast<size_t>(heads_), 0.0));
      dis_ = wins_ = ref_;
    }
    const std::vector<PronounExample>& examples = task_.examples(v.split);
    for (size_t i = 0; i < v.indices.size(); ++i) {
      const PronounExample& e = examples[static_cast<size_t>(v.indices[i])];
      const int64_t q = e.position, r = e.referent_pos, d = e.distractor_pos;
      if (q < 0 || r < 0 || d < 0) continue;
      ++sentences_;
      size_t m = 0;
      for (const AttentionMap<float>& a : v.attention) {
        if (!a.role.is_self()) continue;
        const int64_t H = a.P.size(1), T = a.P.size(2), S = a.P.size(3);
        for (int64_t h = 0; h < H; ++h) {
          const float* row = a.P.data() + ((static_cast<int64_t>(i) * H + h) * T + q) * S;
          ref_[m][h] += row[r];
          dis_[m][h] += row[d];
          wins_[m][h] += row[r] > row[d] ? 1.0 : 0.0;
        }
        ++m;
      }
    }
  }

  ProbeReport report() const override {
    ProbeReport rep;
    if (sentences_ == 0) return rep;
    const double n = static_cast<double>(sentences_);
    auto mean = [n](std::vector<std::vector<double>> t) {
      for (auto& row : t)
        for (double& x : row) x /= n;
      return t;
    };
    const auto ref = mean(ref_), dis = mean(dis_), wins = mean(wins_);
    size_t bm = 0;
    int64_t bh = 0;
    for (size_t m = 0; m < modules_.size(); ++m) {
      for (int64_t h = 0; h < heads_; ++h) {
        const double margin = ref[m][h] - dis[m][h], best_margin = ref[bm][bh] - dis[bm][bh];
        if (wins[m][h] > wins[bm][bh] || (wins[m][h] == wins[bm][bh] && margin > best_margin))
          bm = m, bh = h;
      }
    }
    const std::string& best = modules_[bm];
    rep.metrics = {{"P(referent)", ref[bm][bh]},
                   {"P(distractor)", dis[bm][bh]},
                   {"referent > distractor", wins[bm][bh]}};
    rep.summary =
        fmt::format("referent > distractor {:.1f}% ({} head {})", 100 * wins[bm][bh], best, bh);
    rep.focus = {best, bh};
    rep.detail = {{"sentences", sentences_},
                  {"modules", modules_},
                  {"referent", ref},
                  {"distractor", dis},
                  {"wins", wins},
                  {"best_head", {{"module", best}, {"head", bh}}}};
    rep.table = fmt::format(
        "share of the pronoun's attention on the referent and on the distractor ({} sentences), "
        "and how often referent > distractor\n  {:<18} {:>4} {:>9} {:>11} {:>8}\n",
        sentences_, "module", "head", "referent", "distractor", "ref>dis");
    for (size_t m = 0; m < modules_.size(); ++m)
      for (int64_t h = 0; h < heads_; ++h)
        rep.table += fmt::format("  {:<18} {:>4} {:>9.4f} {:>11.4f} {:>7.2f}%{}\n", modules_[m], h,
                                 ref[m][h], dis[m][h], 100 * wins[m][h],
                                 m == bm && h == bh ? "  ← best" : "");
    return rep;
  }

 private:
  const PronounTask& task_;
  std::vector<std::string> modules_;
  int64_t heads_ = 0, sentences_ = 0;
  std::vector<std::vector<double>> ref_, dis_, wins_;  // [module][head] sums
};

}  // namespace

std::vector<std::unique_ptr<Probe>> PronounTask::probes() const {
  std::vector<std::unique_ptr<Probe>> out;
  out.push_back(std::make_unique<ReferentProbe>(*this));
  return out;
}

}  // namespace qkv
