// TokenWindows: the examples of a language model over one id array (the whole corpus, each split a
// contiguous range of it), made on the fly: no example is stored. An example is a window of
// `block` ids and the same window shifted by one as targets:
//   tokens   T  h  e  _  c  a          targets  h  e  _  c  a  t
// Train windows start at every id (size = range length - block); val and test windows do not
// overlap (start every `block` ids), so an evaluation reads each id once.
#pragma once

#include <cstdint>
#include <vector>

#include "datasets/task.h"

namespace qkv {

struct TokenWindows {
  std::vector<int32_t> ids;                          // the whole corpus
  int64_t begin[3] = {0, 0, 0}, end[3] = {0, 0, 0};  // each split's range of ids
  int64_t block = 64;

  /// Ids in a split's range.
  int64_t length(Split split) const;
  /// Windows of a split (0 when its range is shorter than block + 1).
  int64_t size(Split split) const;
  /// The windows at `indices` as a decoder batch (indices checked against task.size()).
  Batch batch(const Task& task, Split split, const std::vector<int64_t>& indices) const;
  /// A decoder batch of one prompt: its last `block` ids; with_answer: targets are the prompt
  /// shifted by one (the last is -1), otherwise all -1.
  Batch prompt(std::vector<int32_t> tokens, bool with_answer) const;
};

}  // namespace qkv
