#include "datasets/task.h"

#include <algorithm>

#include "core/error.h"
#include "datasets/charlm.h"
#include "datasets/file_classify.h"
#include "datasets/file_lm.h"
#include "datasets/file_seq2seq.h"
#include "datasets/numbers.h"
#include "datasets/pronoun.h"
#include "datasets/sequence_tasks.h"

namespace qkv {

const char* split_name(Split split) {
  switch (split) {
    case Split::kTrain:
      return "train";
    case Split::kVal:
      return "val";
    case Split::kTest:
      return "test";
  }
  return "?";
}

Split parse_split(const std::string& name) {
  if (name == "train") return Split::kTrain;
  if (name == "val" || name == "validation") return Split::kVal;
  if (name == "test") return Split::kTest;
  fail("unknown split '{}' (known splits: train, val, test)", name);
}

Score& Score::operator+=(const Score& o) {
  examples += o.examples;
  correct_examples += o.correct_examples;
  tokens += o.tokens;
  correct_tokens += o.correct_tokens;
  return *this;
}

Score score_predictions(const Batch& batch, const IndexTensor& predicted) {
  const IndexTensor& t = batch.targets;
  QKV_CHECK(predicted.shape == t.shape, "score_predictions: predictions of shape {} for targets {}",
            predicted.shape, t.shape);
  Score s;
  if (t.shape.dim() == 1) {  // encoder: one class per example
    for (int64_t b = 0; b < t.numel(); ++b) {
      if (t[b] < 0) continue;
      const bool ok = predicted[b] == t[b];
      ++s.examples;
      ++s.tokens;
      s.correct_examples += ok;
      s.correct_tokens += ok;
    }
    return s;
  }
  QKV_CHECK(t.shape.dim() == 2, "score_predictions: targets must be [B] or [B,T], got {}", t.shape);
  const int64_t B = t.shape[0], T = t.shape[1];
  for (int64_t b = 0; b < B; ++b) {
    int64_t n = 0, right = 0;
    for (int64_t i = b * T; i < (b + 1) * T; ++i) {
      if (t[i] < 0) continue;
      ++n;
      right += predicted[i] == t[i];
    }
    if (n == 0) continue;
    ++s.examples;
    s.correct_examples += right == n;
    s.tokens += n;
    s.correct_tokens += right;
  }
  return s;
}

Batch Task::batch_range(Split split, int64_t start, int64_t count) const {
  const int64_t n = size(split);
  QKV_CHECK(start >= 0 && start < n && count > 0,
            "{}: examples [{}, {}) are outside the {} split ({} examples)", name(), start,
            start + count, split_name(split), n);
  std::vector<int64_t> idx;
  for (int64_t i = start; i < std::min(n, start + count); ++i) idx.push_back(i);
  return batch(split, idx);
}

void check_indices(const Task& task, Split split, const std::vector<int64_t>& indices) {
  QKV_CHECK(!indices.empty(), "{}: a batch needs at least one example index", task.name());
  const int64_t n = task.size(split);
  for (int64_t i : indices)
    QKV_CHECK(i >= 0 && i < n, "{}: example {} is out of range for the {} split ({} examples)",
              task.name(), i, split_name(split), n);
}

namespace {

std::unique_ptr<Task> make_charlm(const nlohmann::json& options, const StoredVocab* stored) {
  return CharLMTask::rebuild(options, stored);
}

/// The registry, with the built-in tasks: one line each.
std::vector<TaskInfo>& registry() {
  static std::vector<TaskInfo> r = {
      {"charlm", "character-level language model over a UTF-8 text file (decoder)", make_charlm},
      {"classify", "your own text classification from JSONL {text, label[, query]} (encoder)",
       [](const auto& o, auto* s) { return std::make_unique<ClassifyTask>(o, s); },
       ClassifyTask::describe()},
      {"copy", "copy a digit sequence (decoder)",
       [](const auto& o, auto*) { return std::make_unique<DigitTask>("copy", o); }},
      {"lm", "your own language model over a UTF-8 text file, characters or words (decoder)",
       [](const auto& o, auto* s) { return std::make_unique<LMTask>(o, s); }, LMTask::describe()},
      {"modadd", "(a + b) mod p, the grokking task (decoder)",
       [](const auto& o, auto*) { return std::make_unique<ModAddTask>(o); }},
      {"numbers", "number words to digits, \"forty two\" -> \"42\" (seq2seq)",
       [](const auto& o, auto*) { return std::make_unique<NumbersTask>(o); }},
      {"pronoun", "which noun does \"it\" refer to? Winograd-style pairs (encoder)",
       [](const auto& o, auto*) { return std::make_unique<PronounTask>(o); }},
      {"reverse", "reverse a digit sequence (decoder)",
       [](const auto& o, auto*) { return std::make_unique<DigitTask>("reverse", o); }},
      {"seq2seq", "your own translation pairs from JSONL {source, target} (seq2seq)",
       [](const auto& o, auto* s) { return std::make_unique<Seq2SeqTask>(o, s); },
       Seq2SeqTask::describe()},
      {"sort", "sort a digit sequence (decoder)",
       [](const auto& o, auto*) { return std::make_unique<DigitTask>("sort", o); }},
  };
  return r;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string list;
  for (const std::string& k : names) list += (list.empty() ? "" : ", ") + k;
  return list;
}

/// Throws unless `got` equals the stored vocabulary (when one is stored).
void check_stored(const Task& task, const char* which, const std::vector<std::string>& stored,
                  const std::vector<std::string>& got) {
  if (stored.empty() || stored == got) return;
  size_t i = 0;
  while (i < stored.size() && i < got.size() && stored[i] == got[i]) ++i;
  fail(
      "task '{}': its {} has {} tokens but the checkpoint's has {} (first difference at id {}); "
      "the data the task reads has changed since the model was trained",
      task.name(), which, got.size(), stored.size(), i);
}

}  // namespace

void register_task(TaskInfo info) {
  QKV_CHECK(!info.name.empty(), "register_task: a task needs a name");
  QKV_CHECK(info.make != nullptr, "register_task: task '{}' has no factory", info.name);
  for (const TaskInfo& t : registry())
    QKV_CHECK(t.name != info.name, "register_task: a task named '{}' is already registered",
              info.name);
  registry().push_back(std::move(info));
}

std::vector<TaskInfo> registered_tasks() {
  std::vector<TaskInfo> r = registry();
  std::sort(r.begin(), r.end(),
            [](const TaskInfo& a, const TaskInfo& b) { return a.name < b.name; });
  return r;
}

std::vector<std::string> known_tasks() {
  std::vector<std::string> names;
  for (const TaskInfo& t : registered_tasks()) names.push_back(t.name);
  return names;
}

std::unique_ptr<Task> make_task(const std::string& name, const nlohmann::json& options,
                                const StoredVocab* stored) {
  for (const TaskInfo& t : registry()) {
    if (t.name != name) continue;
    std::unique_ptr<Task> task = t.make(options, stored);
    if (stored) {
      check_stored(*task, "vocabulary", stored->vocab, task->vocab().tokens());
      check_stored(*task, "source vocabulary", stored->src_vocab, task->src_vocab().tokens());
    }
    return task;
  }
  fail("unknown task '{}' (known tasks: {})", name, join_names(known_tasks()));
}

namespace {

size_t longest(const std::vector<std::vector<int32_t>>& rows) {
  size_t n = 0;
  for (const auto& r : rows) n = std::max(n, r.size());
  return n;
}

// Rows padded with `pad` into a [B, T] tensor, and (when mask) their mask.
IndexTensor pad_rows(const std::vector<std::vector<int32_t>>& rows, int64_t T, int32_t pad,
                     BoolTensor* mask) {
  const auto B = static_cast<int64_t>(rows.size());
  IndexTensor out(Shape{B, T}, pad);
  if (mask) *mask = BoolTensor(Shape{B, T}, 0);
  for (int64_t b = 0; b < B; ++b) {
    const auto& r = rows[static_cast<size_t>(b)];
    for (size_t i = 0; i < r.size(); ++i) {
      out[b * T + static_cast<int64_t>(i)] = r[i];
      if (mask) (*mask)[b * T + static_cast<int64_t>(i)] = 1;
    }
  }
  return out;
}

IndexTensor vector_tensor(const std::vector<int32_t>& v) {
  return IndexTensor(Shape{static_cast<int64_t>(v.size())}, v);
}

}  // namespace

Batch pack_encoder(const std::vector<std::vector<int32_t>>& rows,
                   const std::vector<int32_t>& targets, const std::vector<int32_t>& positions) {
  QKV_CHECK(!rows.empty() && targets.size() == rows.size() && positions.size() == rows.size(),
            "pack_encoder: {} rows, {} targets, {} positions", rows.size(), targets.size(),
            positions.size());
  Batch b;
  b.tokens = pad_rows(rows, static_cast<int64_t>(longest(rows)), Vocab::kPadId, &b.mask);
  b.targets = vector_tensor(targets);
  b.positions = vector_tensor(positions);
  return b;
}

Batch pack_decoder(const std::vector<std::vector<int32_t>>& rows,
                   const std::vector<std::vector<int32_t>>& targets) {
  QKV_CHECK(!rows.empty() && targets.size() == rows.size(), "pack_decoder: {} rows, {} targets",
            rows.size(), targets.size());
  for (size_t i = 0; i < rows.size(); ++i)
    QKV_CHECK(rows[i].size() == targets[i].size(), "pack_decoder: row {} has {} ids, {} targets", i,
              rows[i].size(), targets[i].size());
  Batch b;
  const auto T = static_cast<int64_t>(longest(rows));
  b.tokens = pad_rows(rows, T, Vocab::kPadId, &b.mask);
  b.targets = pad_rows(targets, T, -1, nullptr);
  return b;
}

Batch pack_seq2seq(const std::vector<std::vector<int32_t>>& src,
                   const std::vector<std::vector<int32_t>>& rows,
                   const std::vector<std::vector<int32_t>>& targets) {
  QKV_CHECK(src.size() == rows.size(), "pack_seq2seq: {} source rows, {} decoder rows", src.size(),
            rows.size());
  Batch b = pack_decoder(rows, targets);
  b.src = pad_rows(src, static_cast<int64_t>(longest(src)), Vocab::kPadId, &b.src_mask);
  return b;
}

}  // namespace qkv
