// The pronoun task's referent_attention probe on hand-made attention maps: the means, the win
// share and the best head are what the formula in datasets/pronoun_probe.cpp says, cross-attention
// is ignored, and reset() starts a new evaluation.
#include <gtest/gtest.h>

#include "datasets/pronoun.h"

namespace qkv {
namespace {

const PronounTask& task() {
  static const PronounTask t;
  return t;
}

/// P [B, H, T, T] uniform over each row, then with the two nouns of example b of `split` set in
/// the read-out row of head h to ref[h][b] and dis[h][b].
Tensor<float> maps(const std::vector<int64_t>& idx, const Batch& b,
                   const std::vector<std::vector<float>>& ref,
                   const std::vector<std::vector<float>>& dis) {
  const int64_t B = b.batch_size(), T = b.seq_len(), H = static_cast<int64_t>(ref.size());
  Tensor<float> P({B, H, T, T});
  for (float& x : P) x = 1.0f / static_cast<float>(T);
  for (int64_t i = 0; i < B; ++i) {
    const PronounExample& e = task().examples(Split::kVal)[static_cast<size_t>(idx[size_t(i)])];
    for (int64_t h = 0; h < H; ++h) {
      float* row = P.data() + ((i * H + h) * T + e.position) * T;
      row[e.referent_pos] = ref[size_t(h)][size_t(i)];
      row[e.distractor_pos] = dis[size_t(h)][size_t(i)];
    }
  }
  return P;
}

TEST(PronounProbe, MeansWinsAndBestHeadFollowTheFormula) {
  std::vector<std::unique_ptr<Probe>> probes = task().probes();
  ASSERT_EQ(probes.size(), 1u);
  Probe& p = *probes[0];
  EXPECT_EQ(p.name(), "referent_attention");
  EXPECT_TRUE(p.needs_attention());
  const std::vector<int64_t> idx = {0, 1, 2};
  const Batch b = task().batch(Split::kVal, idx);
  // Head 0 always prefers the referent (0.6 vs 0.1); head 1 only in the third sentence.
  const std::vector<std::vector<float>> ref = {{0.6f, 0.6f, 0.6f}, {0.2f, 0.2f, 0.5f}};
  const std::vector<std::vector<float>> dis = {{0.1f, 0.1f, 0.1f}, {0.3f, 0.3f, 0.4f}};
  std::vector<AttentionMap<float>> att = {
      {"blocks.0.attn", {AttnStack::kEncoder, AttnKind::kSelf, 0}, maps(idx, b, ref, dis)},
      // A cross-attention map with the opposite preference: the probe must not read it.
      {"blocks.0.xattn", {AttnStack::kDecoder, AttnKind::kCross, 0}, maps(idx, b, dis, ref)}};
  p.reset();
  p.add(ProbeView{Split::kVal, idx, b, att});
  const ProbeReport r = p.report();
  const nlohmann::json& d = r.detail;
  ASSERT_EQ(d["modules"], nlohmann::json({"blocks.0.attn"}));
  EXPECT_EQ(d["sentences"], 3);
  EXPECT_NEAR(d["referent"][0][0].get<double>(), 0.6, 1e-6);
  EXPECT_NEAR(d["referent"][0][1].get<double>(), 0.3, 1e-6);  // (0.2 + 0.2 + 0.5) / 3
  EXPECT_NEAR(d["distractor"][0][1].get<double>(), (0.3 + 0.3 + 0.4) / 3, 1e-6);
  EXPECT_NEAR(d["wins"][0][0].get<double>(), 1.0, 1e-12);
  EXPECT_NEAR(d["wins"][0][1].get<double>(), 1.0 / 3, 1e-12);
  EXPECT_EQ(r.focus.module, "blocks.0.attn");
  EXPECT_EQ(r.focus.head, 0);
  ASSERT_EQ(r.metrics.size(), 3u);
  EXPECT_EQ(r.metrics[0].first, "P(referent)");
  EXPECT_NEAR(r.metrics[0].second, 0.6, 1e-6);
  EXPECT_NEAR(r.metrics[1].second, 0.1, 1e-6);
  EXPECT_EQ(r.metrics[2].first, "referent > distractor");
  EXPECT_NEAR(r.metrics[2].second, 1.0, 1e-12);
  EXPECT_EQ(r.summary, "referent > distractor 100.0% (blocks.0.attn head 0)");
  EXPECT_NE(r.table.find("← best"), std::string::npos);

  // A new evaluation forgets the old batches: now head 1 wins everywhere.
  p.reset();
  EXPECT_TRUE(p.report().empty());
  std::vector<AttentionMap<float>> att2 = {
      {"blocks.0.attn", {AttnStack::kEncoder, AttnKind::kSelf, 0}, maps(idx, b, dis, ref)}};
  att2[0].P = maps(idx, b, {{0.1f, 0.1f, 0.1f}, {0.7f, 0.7f, 0.7f}},
                   {{0.2f, 0.2f, 0.2f}, {0.1f, 0.1f, 0.1f}});
  p.add(ProbeView{Split::kVal, idx, b, att2});
  const ProbeReport r2 = p.report();
  EXPECT_EQ(r2.focus.head, 1);
  EXPECT_EQ(r2.detail["sentences"], 3);
  EXPECT_NEAR(r2.metrics[0].second, 0.7, 1e-6);
}

}  // namespace
}  // namespace qkv
