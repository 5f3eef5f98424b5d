#include "train/evaluate.h"

#include <algorithm>
#include <limits>
#include <memory>

#include "autograd/var.h"
#include "core/error.h"
#include "train/stop.h"

namespace qkv {

const ProbeReport* EvalResult::probe(const std::string& name) const {
  for (const auto& [n, r] : probes)
    if (n == name) return &r;
  return nullptr;
}

HeadRef EvalResult::focus() const {
  for (const auto& [n, r] : probes)
    if (!r.focus.empty()) return r.focus;
  return {};
}

IndexTensor argmax(const Tensor<float>& logits, const Shape& shape) {
  IndexTensor out(shape);
  const int64_t rows = out.numel();
  const int64_t classes = rows ? logits.numel() / rows : 0;
  QKV_CHECK(rows * classes == logits.numel(), "evaluate: logits {} do not match targets {}",
            logits.shape(), shape);
  const float* p = logits.data();
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = p + r * classes;
    out[r] = static_cast<int32_t>(std::max_element(row, row + classes) - row);
  }
  return out;
}

int64_t count_targets(const Batch& b) {
  int64_t n = 0;
  for (int32_t t : b.targets.data) n += t >= 0;
  return n;
}

int64_t count_tokens(const Batch& b) {
  auto real = [](const IndexTensor& ids, const BoolTensor& mask) -> int64_t {
    if (mask.empty()) return ids.numel();
    int64_t n = 0;
    for (uint8_t m : mask.data) n += m != 0;
    return n;
  };
  return real(b.tokens, b.mask) + (b.src.empty() ? 0 : real(b.src, b.src_mask));
}

EvalResult evaluate(BatchModel<float>& model, const Task& task, Split split, int64_t batch_size,
                    int64_t max_examples, const EvalProgress& progress) {
  QKV_CHECK(batch_size >= 1, "evaluate: batch size must be at least 1, got {}", batch_size);
  EvalModeGuard<float> mode(model);
  NoGradGuard no_grad;
  int64_t n = task.size(split);
  if (max_examples > 0) n = std::min(n, max_examples);
  std::vector<std::unique_ptr<Probe>> probes = task.probes();
  bool keep_attention = false;
  for (auto& p : probes) {
    p->reset();
    keep_attention = keep_attention || p->needs_attention();
  }
  EvalResult res;
  double loss_sum = 0;
  int64_t loss_count = 0;
  std::vector<int64_t> indices;
  for (int64_t start = 0; start < n; start += batch_size) {
    if (stop_requested()) {
      res.interrupted = true;
      break;
    }
    indices.clear();
    for (int64_t i = start; i < std::min(n, start + batch_size); ++i) indices.push_back(i);
    const Batch b = task.batch(split, indices);
    const ForwardResult<float> r = model.forward(b, keep_attention);
    const int64_t count = count_targets(b);
    if (r.loss.defined() && count > 0) {
      loss_sum += double(r.loss.item()) * double(count);
      loss_count += count;
    }
    res.score += task.score(b, argmax(r.logits.value(), b.targets.shape));
    for (auto& p : probes) p->add(ProbeView{split, indices, b, r.attention});
    if (progress) progress(std::min(n, start + batch_size), n);
  }
  res.loss = loss_count ? loss_sum / double(loss_count) : std::numeric_limits<double>::quiet_NaN();
  for (auto& p : probes) {
    ProbeReport rep = p->report();
    if (!rep.empty()) res.probes.emplace_back(p->name(), std::move(rep));
  }
  return res;
}

ProbeAttention probe_attention(BatchModel<float>& model, const Task& task,
                               const std::string& text) {
  EvalModeGuard<float> mode(model);
  NoGradGuard no_grad;
  const Batch b = task.encode(text, /*with_answer=*/true);
  ProbeAttention out;
  for (int32_t id : b.tokens.data) out.tokens.push_back(task.vocab().token(id));
  out.read_out = !b.positions.empty();
  out.position = out.read_out ? b.positions[0] : b.seq_len() - 1;
  const ForwardResult<float> r = model.forward(b, /*keep_attention=*/true);
  for (const AttentionMap<float>& a : r.attention) {
    if (!a.role.is_self()) continue;
    const int64_t H = a.P.size(1), T = a.P.size(2), S = a.P.size(3);
    std::vector<std::vector<double>> rows(static_cast<size_t>(H));
    for (int64_t h = 0; h < H; ++h) {
      const float* row = a.P.data() + (h * T + out.position) * S;
      rows[static_cast<size_t>(h)].assign(row, row + S);
    }
    out.rows.emplace_back(a.path, std::move(rows));
  }
  return out;
}

}  // namespace qkv
