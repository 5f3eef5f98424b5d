#include "train/evaluate.h"

#include <algorithm>
#include <array>
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

namespace {

/// The sums of one evaluation pass over examples [begin, end) of a split, before the means.
struct EvalSums {
  double loss_sum = 0;  // Σ batch loss · its counted targets
  int64_t loss_count = 0;
  Score score;
  bool interrupted = false;
};

EvalSums evaluate_range(BatchModel<float>& model, const Task& task, Split split, int64_t begin,
                        int64_t end, int64_t batch_size,
                        std::vector<std::unique_ptr<Probe>>& probes, const EvalProgress& progress) {
  QKV_CHECK(batch_size >= 1, "evaluate: batch size must be at least 1, got {}", batch_size);
  EvalModeGuard<float> mode(model);
  NoGradGuard no_grad;
  bool keep_attention = false;
  for (auto& p : probes) {
    p->reset();
    keep_attention = keep_attention || p->needs_attention();
  }
  EvalSums sums;
  std::vector<int64_t> indices;
  for (int64_t start = begin; start < end; start += batch_size) {
    if (stop_requested()) {
      sums.interrupted = true;
      break;
    }
    indices.clear();
    for (int64_t i = start; i < std::min(end, start + batch_size); ++i) indices.push_back(i);
    const Batch b = task.batch(split, indices);
    const ForwardResult<float> r = model.forward(b, keep_attention);
    const int64_t count = count_targets(b);
    if (r.loss.defined() && count > 0) {
      sums.loss_sum += double(r.loss.item()) * double(count);
      sums.loss_count += count;
    }
    sums.score += task.score(b, argmax(r.logits.value(), b.targets.shape));
    for (auto& p : probes) p->add(ProbeView{split, indices, b, r.attention});
    if (progress) progress(std::min(end, start + batch_size) - begin, end - begin);
  }
  return sums;
}

EvalResult result_of(const EvalSums& sums) {
  EvalResult res;
  res.loss = sums.loss_count ? sums.loss_sum / double(sums.loss_count)
                             : std::numeric_limits<double>::quiet_NaN();
  res.score = sums.score;
  res.interrupted = sums.interrupted;
  return res;
}

int64_t examples_to_score(const Task& task, Split split, int64_t max_examples) {
  const int64_t n = task.size(split);
  return max_examples > 0 ? std::min(n, max_examples) : n;
}

/// The sums as doubles, for one collective, and back. Counts stay exact below 2^53.
constexpr int64_t kSumSlots = 7;
std::array<double, kSumSlots> pack(const EvalSums& s) {
  return {s.loss_sum,
          double(s.loss_count),
          double(s.score.examples),
          double(s.score.correct_examples),
          double(s.score.tokens),
          double(s.score.correct_tokens),
          s.interrupted ? 1.0 : 0.0};
}
EvalSums unpack(const std::array<double, kSumSlots>& v) {
  EvalSums s;
  s.loss_sum = v[0];
  s.loss_count = static_cast<int64_t>(v[1]);
  s.score.examples = static_cast<int64_t>(v[2]);
  s.score.correct_examples = static_cast<int64_t>(v[3]);
  s.score.tokens = static_cast<int64_t>(v[4]);
  s.score.correct_tokens = static_cast<int64_t>(v[5]);
  s.interrupted = v[6] != 0;
  return s;
}

}  // namespace

EvalResult evaluate(BatchModel<float>& model, const Task& task, Split split, int64_t batch_size,
                    int64_t max_examples, const EvalProgress& progress) {
  std::vector<std::unique_ptr<Probe>> probes = task.probes();
  EvalResult res =
      result_of(evaluate_range(model, task, split, 0, examples_to_score(task, split, max_examples),
                               batch_size, probes, progress));
  for (auto& p : probes) {
    ProbeReport rep = p->report();
    if (!rep.empty()) res.probes.emplace_back(p->name(), std::move(rep));
  }
  return res;
}

EvalResult evaluate_across(Communicator& comm, BatchModel<float>& model, const Task& task,
                           Split split, int64_t batch_size, int64_t max_examples,
                           ProbeUse probe_use, const EvalProgress& progress) {
  if (comm.size() == 1) return evaluate(model, task, split, batch_size, max_examples, progress);
  const bool whole_on_rank0 = probe_use == ProbeUse::kReport && !task.probes().empty();
  std::array<double, kSumSlots> sums{};
  if (whole_on_rank0) {
    // A probe's state is the task's own and cannot be summed: rank 0 scores the whole split, as
    // one process would, and the others receive its numbers.
    EvalResult mine;
    if (comm.rank() == 0) mine = evaluate(model, task, split, batch_size, max_examples, progress);
    EvalSums s;
    s.loss_count = 1;
    s.loss_sum = mine.loss;
    s.score = mine.score;
    s.interrupted = mine.interrupted;
    sums = pack(s);
    comm.broadcast(sums.data(), kSumSlots, /*root=*/0);
    EvalResult res = result_of(unpack(sums));
    res.probes = std::move(mine.probes);
    return res;
  }
  // A contiguous share of the examples per rank; the sums are added up over the ranks.
  const int64_t n = examples_to_score(task, split, max_examples);
  const int64_t begin = n * comm.rank() / comm.size(), end = n * (comm.rank() + 1) / comm.size();
  std::vector<std::unique_ptr<Probe>> no_probes;
  sums = pack(evaluate_range(model, task, split, begin, end, batch_size, no_probes, progress));
  comm.allreduce_sum(sums.data(), kSumSlots);
  return result_of(unpack(sums));
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
