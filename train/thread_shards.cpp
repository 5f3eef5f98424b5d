#include "train/thread_shards.h"

#include <algorithm>
#include <exception>
#include <vector>

#include "autograd/var.h"
#include "core/error.h"
#include "nn/model.h"
#include "train/data_parallel.h"
#include "train/evaluate.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace qkv {

ThreadShards::ThreadShards(int shards, OptimParams<float> params)
    : shards_(shards), params_(std::move(params)) {
  QKV_CHECK(shards >= 1, "ThreadShards: shards must be at least 1, got {}", shards);
}

int resolve_shards(const TrainConfig& train, const BatchModel<float>& model) {
  const auto* m = dynamic_cast<const Model<float>*>(&model);
  const bool dropout = m && m->config().dropout > 0;
  if (train.shards > 0) {
    QKV_CHECK(
        train.shards == 1 || !dropout,
        "train config: 'shards' is {}, but the model has dropout {} and one generator for it, "
        "which two shards cannot share; set shards to 1 (--shards 1) or dropout to 0",
        train.shards, m ? m->config().dropout : 0.0);
    return static_cast<int>(train.shards);
  }
  if (!m || dropout) return 1;
  const double work = 6.0 * static_cast<double>(model.num_parameters()) *
                      static_cast<double>(train.batch_size) *
                      static_cast<double>(m->config().max_len);
  return work <= kAutoShardWork ? 2 : 1;
}

ShardTotals ThreadShards::run(const Batch& batch,
                              const std::function<double(const Batch&)>& forward_backward) {
  const int64_t B = batch.batch_size();
  const int64_t S = std::max<int64_t>(1, std::min<int64_t>(shards_, B));
  if (S == 1) {  // the plain step: gradients straight into .grad
    ShardTotals total;
    total.count = double(count_targets(batch));
    total.tokens = double(count_tokens(batch));
    total.loss = forward_backward(batch);
    return total;
  }
  std::vector<Batch> part(static_cast<size_t>(S));
  std::vector<double> count(part.size()), loss(part.size(), 0.0);
  std::vector<std::vector<Tensor<float>>> grads(part.size());
  std::vector<std::exception_ptr> error(part.size());
  ShardTotals total;
  for (int64_t s = 0; s < S; ++s) {
    part[s] = batch_rows(batch, B * s / S, B * (s + 1) / S);
    count[s] = double(count_targets(part[s]));
    total.count += count[s];
    total.tokens += double(count_tokens(part[s]));
  }
  int threads = 1;
#ifdef _OPENMP
  threads = static_cast<int>(std::min<int64_t>(S, omp_get_max_threads()));
#endif
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t s = 0; s < S; ++s) {
    if (count[s] == 0) continue;  // no target: no loss, no gradient
    try {
      LeafGradScope<float> scope;
      loss[s] = forward_backward(part[s]);
      grads[s].reserve(params_.size());
      for (const auto& [name, p] : params_) grads[s].push_back(scope.grad(p));
    } catch (...) {
      error[s] = std::current_exception();
    }
  }
  for (const std::exception_ptr& e : error)
    if (e) std::rethrow_exception(e);
  if (total.count == 0) return total;
  // Σ_s (n_s / N) · g_s, shard by shard: the same order at any thread count.
  for (int64_t s = 0; s < S; ++s) {
    if (count[s] == 0) continue;
    total.loss += count[s] * loss[s];
    const float w = static_cast<float>(count[s] / total.count);
    for (size_t i = 0; i < params_.size(); ++i) {
      const Tensor<float>& g = grads[s][i];
      if (!g.defined()) continue;
      Var<float> p = params_[i].second;
      Tensor<float>& dst = p.node()->grad_buffer();
      dst.vec() += w * g.vec();
    }
  }
  total.loss /= total.count;
  return total;
}

}  // namespace qkv
