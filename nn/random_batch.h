// Random batches for a model config: token ids, targets and masks drawn from a seeded Rng, for
// tests, gradient checks, benchmarks and pictures of a model that has seen no data.
#pragma once

#include <cstdint>

#include "core/batch.h"
#include "core/rng.h"
#include "nn/config.h"

namespace qkv {

struct RandomBatchOptions {
  int64_t batch_size = 2;  ///< B
  int64_t seq_len = 5;     ///< T; at most the config's max_len
  int64_t src_len = 4;     ///< S of seq2seq; at most src_max_len
  /// The last example ends in padding (two tokens when T >= 3, one source token when S >= 2),
  /// and the targets are -1 there and at example 0's position 1, so losses skip ignored targets.
  bool padded = true;
  /// Decoder and seq2seq targets are the next token of one stream of B·T + 1 ids (inputs the
  /// first B·T, targets the last B·T: language modelling); otherwise independent draws.
  bool next_token = false;
  /// Encoder read-out position of every example; -1 = each example's last real token.
  int64_t read_out = -1;
};

/// A batch for `config` (resolved first) drawn from `rng`: ids uniform over each vocabulary,
/// class targets uniform over n_out. Throws qkv::Error naming the option that does not fit.
Batch random_batch(const ModelConfig& config, Rng& rng, const RandomBatchOptions& options = {});

}  // namespace qkv
