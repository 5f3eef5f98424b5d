#include "train/data_parallel.h"

#include <algorithm>
#include <chrono>
#include <type_traits>

#include "autograd/var.h"
#include "core/error.h"

namespace qkv {
namespace {

// The scalars after the gradients and the defined flags.
enum Scalar { kLossSum, kCount, kTokens, kFailed, kStop, kScalars };

}  // namespace

Batch batch_rows(const Batch& b, int64_t begin, int64_t end) {
  QKV_CHECK(0 <= begin && begin <= end && end <= b.batch_size(),
            "batch_rows: examples [{}, {}) of a batch of {}", begin, end, b.batch_size());
  auto rows = [&](const auto& t) {
    using T = std::decay_t<decltype(t)>;
    if (t.empty()) return T();
    const int64_t per_row = t.numel() / t.shape[0];
    Shape s = t.shape;
    s[0] = end - begin;
    return T(s, decltype(t.data)(t.data.begin() + begin * per_row, t.data.begin() + end * per_row));
  };
  Batch out;
  out.tokens = rows(b.tokens);
  out.targets = rows(b.targets);
  out.positions = rows(b.positions);
  out.mask = rows(b.mask);
  out.src = rows(b.src);
  out.src_mask = rows(b.src_mask);
  return out;
}

GradientAverager::GradientAverager(Communicator& comm, OptimParams<float> params)
    : comm_(comm), params_(std::move(params)) {
  int64_t n = 0;
  for (const auto& [name, p] : params_) n += p.value().numel();
  buffer_.assign(static_cast<size_t>(n) + params_.size() + kScalars, 0.0f);
}

BatchTotals GradientAverager::average(const RankShare& mine) {
  // Pack: n_r·g_r for every parameter, one after the other.
  const float weight = static_cast<float>(mine.count);
  float* at = buffer_.data();
  float* defined = buffer_.data() + buffer_.size() - params_.size() - kScalars;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Var<float>& p = params_[i].second;
    const int64_t n = p.value().numel();
    const Tensor<float>& g = p.grad();
    defined[i] = !g.defined() ? 0.0f : 1.0f;
    if (!g.defined())
      std::fill(at, at + n, 0.0f);
    else
      std::transform(g.data(), g.data() + n, at, [weight](float v) { return weight * v; });
    at += n;
  }
  float* scalars = defined + params_.size();
  scalars[kLossSum] = static_cast<float>(mine.loss * mine.count);
  scalars[kCount] = weight;
  scalars[kTokens] = static_cast<float>(mine.tokens);
  scalars[kFailed] = mine.failed ? 1.0f : 0.0f;
  scalars[kStop] = mine.stop ? 1.0f : 0.0f;

  const auto t0 = std::chrono::steady_clock::now();
  comm_.allreduce_sum(buffer_.data(), static_cast<int64_t>(buffer_.size()));
  allreduce_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  BatchTotals total;
  total.count = scalars[kCount];
  total.tokens = scalars[kTokens];
  total.failed = scalars[kFailed] > 0;
  total.stop = scalars[kStop] > 0;
  total.loss = total.count > 0 ? double(scalars[kLossSum]) / total.count : 0.0;
  if (total.failed) return total;
  // Unpack: Σ_r n_r·g_r / Σ_r n_r.
  const float inv = total.count > 0 ? static_cast<float>(1.0 / total.count) : 0.0f;
  at = buffer_.data();
  for (size_t i = 0; i < params_.size(); ++i) {
    Var<float> p = params_[i].second;
    const int64_t n = p.value().numel();
    if (defined[i] > 0) {
      Tensor<float>& g = p.grad();
      if (!g.defined()) g = Tensor<float>::zeros(p.value().shape());
      std::transform(at, at + n, g.data(), [inv](float v) { return v * inv; });
    }
    at += n;
  }
  return total;
}

}  // namespace qkv
