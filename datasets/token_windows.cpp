#include "datasets/token_windows.h"

#include "core/error.h"

namespace qkv {

int64_t TokenWindows::length(Split split) const {
  const int s = static_cast<int>(split);
  return end[s] - begin[s];
}

int64_t TokenWindows::size(Split split) const {
  const int64_t len = length(split);
  if (len < block + 1) return 0;
  return split == Split::kTrain ? len - block : (len - 1) / block;
}

Batch TokenWindows::batch(const Task& task, Split split,
                          const std::vector<int64_t>& indices) const {
  check_indices(task, split, indices);
  const int s = static_cast<int>(split);
  std::vector<std::vector<int32_t>> rows, targets;
  for (int64_t i : indices) {
    const int64_t start = begin[s] + (split == Split::kTrain ? i : i * block);
    auto at = ids.begin() + start;
    rows.emplace_back(at, at + block);
    targets.emplace_back(at + 1, at + block + 1);
  }
  return pack_decoder(rows, targets);
}

Batch TokenWindows::prompt(std::vector<int32_t> tokens, bool with_answer) const {
  QKV_CHECK(!tokens.empty(), "the prompt is empty");
  if (static_cast<int64_t>(tokens.size()) > block)
    tokens.erase(tokens.begin(), tokens.end() - block);
  std::vector<int32_t> targets(tokens.size(), -1);
  if (with_answer)
    for (size_t i = 0; i + 1 < tokens.size(); ++i) targets[i] = tokens[i + 1];
  return pack_decoder({tokens}, {targets});
}

}  // namespace qkv
