#include "train/thread_shards.h"

#include <algorithm>

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
  ShardTotals total;
  if (S == 1) {  // the plain step: gradients straight into .grad
    total.count = double(count_targets(batch));
    total.tokens = double(count_tokens(batch));
    total.loss = forward_backward(batch);
    return total;
  }
  state_.resize(static_cast<size_t>(S));
  for (int64_t s = 0; s < S; ++s) {
    Shard& sh = state_[s];
    sh.part = batch_rows(batch, B * s / S, B * (s + 1) / S);
    sh.count = double(count_targets(sh.part));
    sh.loss = 0;
    sh.grads.clear();
    sh.error = nullptr;
    total.count += sh.count;
    total.tokens += double(count_tokens(sh.part));
  }
  int threads = 1;
#ifdef _OPENMP
  threads = static_cast<int>(std::min<int64_t>(S, omp_get_max_threads()));
#endif
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t s = 0; s < S; ++s) {
    Shard& sh = state_[s];
    if (sh.count == 0) continue;  // no target: no loss, no gradient
    try {
      LeafGradScope<float> scope;
      sh.loss = forward_backward(sh.part);
      for (const auto& [name, p] : params_) sh.grads.push_back(scope.grad(p));
    } catch (...) {
      sh.error = std::current_exception();
    }
  }
  for (const Shard& sh : state_)
    if (sh.error) std::rethrow_exception(sh.error);
  if (total.count == 0) return total;
  // Σ_s (n_s / N) · g_s, shard by shard: the same order at any thread count.
  for (const Shard& sh : state_) {
    if (sh.count == 0) continue;
    total.loss += sh.count * sh.loss;
    const float w = static_cast<float>(sh.count / total.count);
    for (size_t i = 0; i < params_.size(); ++i) {
      const Tensor<float>& g = sh.grads[i];
      if (!g.defined()) continue;
      Var<float> p = params_[i].second;
      p.node()->grad_buffer().vec() += w * g.vec();
    }
  }
  total.loss /= total.count;
  return total;
}

ShardTotals ThreadShards::run(const Batch& batch, BatchModel<float>& model) {
  return run(batch, [&model](const Batch& part) {
    ForwardResult<float> r = model.forward(part);
    const double loss = r.loss.item();
    r.loss.backward();
    return loss;
  });
}

}  // namespace qkv
