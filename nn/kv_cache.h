// KVCache<T>: what incremental decoding keeps between steps, so that each new token costs one
// position's forward pass instead of the whole window's (Model::begin_decode and
// Model::forward_cached; docs/generate.md).
//
// Per decoder block it holds the self-attention's K and V of every position decoded so far and,
// for seq2seq, the cross-attention's K and V of the encoder output (computed once). Dimension
// legend: B batch, H heads, L capacity (the model's max_len), S source length, d head size.
//
//   KVCache<float> cache = model.begin_decode(batch);          // seq2seq: runs the encoder once
//   model.forward_cached(cache, batch.tokens);                 // the prompt: fills rows [0, T)
//   ForwardResult<float> r = model.forward_cached(cache, next);  // next [B, 1]: one position
//
// Positions are absolute (learned or sinusoidal embeddings are added at the input), so every
// cached K and V belongs to its position: a cache cannot be shifted. A caller that slides a
// window past max_len clears the cache and runs the new window again (train/decode.cpp does).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/index_tensor.h"
#include "core/tensor.h"

namespace qkv {

template <typename T>
class Model;

/// One attention module's keys and values, already split into heads: K, V [B, H, rows, d].
template <typename T>
struct KVBuffers {
  Tensor<T> K, V;
};

/// The cache of one transformer block: its self-attention's K, V [B, H, L, d] (rows past the
/// cache's length unused) and, in a seq2seq decoder block, its cross-attention's K, V [B, H, S, d].
template <typename T>
struct BlockCache {
  KVBuffers<T> self;
  KVBuffers<T> cross;  // undefined outside seq2seq
};

/// Move-only: a copy would share its buffers with the original, and the two would overwrite each
/// other's rows.
template <typename T>
class KVCache {
 public:
  KVCache() = default;
  KVCache(const KVCache&) = delete;
  KVCache& operator=(const KVCache&) = delete;
  KVCache(KVCache&&) noexcept = default;
  KVCache& operator=(KVCache&&) noexcept = default;

  /// Examples decoded side by side (B).
  int64_t batch_size() const { return batch_; }
  /// Decoder positions cached so far: the next token goes to position length().
  int64_t length() const { return length_; }
  /// Positions the cache can hold: the model's max_len.
  int64_t capacity() const { return capacity_; }
  bool full() const { return length_ == capacity_; }
  /// Forgets every decoder position (length 0); a seq2seq encoder's K, V stay.
  void clear() {
    length_ = 0;
    std::fill(key_mask_.data.begin(), key_mask_.data.end(), uint8_t(0));
  }
  /// Bytes held by the K and V buffers.
  int64_t bytes() const {
    int64_t n = 0;
    for (const BlockCache<T>& b : blocks_)
      for (const KVBuffers<T>* kv : {&b.self, &b.cross})
        if (kv->K.defined()) n += (kv->K.numel() + kv->V.numel()) * int64_t(sizeof(T));
    return n;
  }

 private:
  friend class Model<T>;
  std::vector<BlockCache<T>> blocks_;  // one per decoder block
  BoolTensor key_mask_;  // [B, L]: 1 where a real token's K, V was written (the self key padding)
  BoolTensor src_mask_;  // [B, S]: the encoder output's key padding (seq2seq; empty = all real)
  int64_t batch_ = 0, length_ = 0, capacity_ = 0;
};

}  // namespace qkv
