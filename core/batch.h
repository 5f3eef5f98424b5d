// Batch: what a task hands the model, in the layout of the batch file (docs/checkpoint-format.md).
#pragma once

#include "core/index_tensor.h"

namespace qkv {

struct Batch {
  IndexTensor tokens;     // [B, T] input ids (decoder input for seq2seq)
  IndexTensor targets;    // [B] (encoder) or [B, T] (decoder, seq2seq); -1 = ignored
  IndexTensor positions;  // [B] read-out position (encoder); empty otherwise
  BoolTensor mask;        // [B, T] 1 = real token; empty = all real
  IndexTensor src;        // [B, S] source ids (seq2seq); empty otherwise
  BoolTensor src_mask;    // [B, S] 1 = real token; empty = all real

  int64_t batch_size() const { return tokens.shape.nd ? tokens.shape[0] : 0; }
  int64_t seq_len() const { return tokens.shape.nd ? tokens.shape[1] : 0; }
};

}  // namespace qkv
