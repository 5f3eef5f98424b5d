// Batch files (docs/checkpoint-format.md, "Batch files"): one Batch in HDF5, for `qkv grads` and
// for feeding hand-made or PyTorch-made batches to a model.
//
//   /tokens     int32 [B, T]   input ids (the decoder input for seq2seq)
//   /targets    int32 [B] (encoder) or [B, T] (decoder, seq2seq); -1 = ignored
//   /positions  int32 [B]      encoder read-out position
//   /mask       uint8 [B, T]   optional; 1 = real token
//   /src        int32 [B, S]   seq2seq source ids;  /src_mask uint8 [B, S] optional
//
// Integer datasets of other widths (numpy's default int64, h5py's bool masks) are read too when
// their values fit.
#pragma once

#include <cstdint>
#include <string>

#include "core/batch.h"

namespace qkv {

/// What a batch is checked against: the model it is for (the keys of the model config).
struct BatchSpec {
  std::string arch = "decoder";  // "encoder" | "decoder" | "seq2seq"
  int64_t vocab_size = 0;        // ids of /tokens in [0, vocab_size); 0 = unchecked
  int64_t n_out = 0;             // targets in [0, n_out) or -1; 0 = vocab_size
  int64_t max_len = 0;           // T ≤ max_len; 0 = unchecked
  int64_t src_vocab_size = 0;    // ids of /src in [0, src_vocab_size); 0 = vocab_size
  int64_t src_max_len = 0;       // S ≤ src_max_len; 0 = max_len
};

/// Reads a batch file (/tokens and /targets required) and checks it against `spec` (check_batch);
/// throws qkv::Error naming the file and the dataset.
Batch read_batch(const std::string& path, const BatchSpec& spec);

/// Writes `batch` to a new file at `path` (replacing any), every non-empty tensor as its dataset.
void write_batch(const std::string& path, const Batch& batch);

/// Checks shapes (consistent B, T, S; targets, when present, as the arch needs), positions inside
/// the sequence and on real tokens, masks of 0/1, and ids inside the vocabularies. Messages start
/// with `source` (a file path, or a task name): "batch.h5: /positions[1] = 9 is outside the
/// sequence [0, 8)".
void check_batch(const Batch& batch, const BatchSpec& spec, const std::string& source);

}  // namespace qkv
