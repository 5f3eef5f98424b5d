#include "apps/loaded.h"

#include <filesystem>

#include <fmt/core.h>

#include "autograd/var.h"
#include "core/error.h"
#include "train/trainer.h"

namespace qkv::cli {
std::vector<int32_t> greedy_decode(Model<float>& model, Batch& batch, int32_t eos_id) {
  NoGradGuard no_grad;
  std::vector<int32_t> out;
  batch.targets = IndexTensor();  // the continuation has none; the model computes no loss
  const int64_t max_len = model.config().max_len;
  while (batch.seq_len() < max_len) {
    ForwardResult<float> r = model.forward(batch);
    const Tensor<float>& logits = r.logits.value();  // [1, T, V]
    const int64_t T = logits.size(1), V = logits.size(2);
    const float* last = logits.data() + (T - 1) * V;
    int32_t best = 0;
    for (int64_t v = 1; v < V; ++v)
      if (last[v] > last[best]) best = static_cast<int32_t>(v);
    out.push_back(best);
    // Append the token.
    std::vector<int32_t> ids(batch.tokens.data);
    ids.push_back(best);
    const int64_t n = static_cast<int64_t>(ids.size());
    batch.tokens = IndexTensor({1, n}, ids);
    batch.mask = BoolTensor({1, n}, 1);
    if (best == eos_id) break;
  }
  return out;
}

}  // namespace qkv::cli
