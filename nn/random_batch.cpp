#include "nn/random_batch.h"

#include "core/error.h"

namespace qkv {

Batch random_batch(const ModelConfig& config, Rng& rng, const RandomBatchOptions& o) {
  const ModelConfig c = config.resolved();
  const int64_t B = o.batch_size, T = o.seq_len;
  QKV_CHECK(B >= 1, "random_batch: batch_size must be >= 1, got {}", B);
  QKV_CHECK(T >= 1 && T <= c.max_len, "random_batch: seq_len {} must be in [1, max_len = {}]", T,
            c.max_len);
  auto ids = [&](int64_t rows, int64_t cols, int64_t vocab) {
    IndexTensor t(Shape{rows, cols});
    for (int32_t& x : t.data) x = static_cast<int32_t>(rng.below(static_cast<uint64_t>(vocab)));
    return t;
  };
  // The last example's padded tail (n tokens of a row of length len).
  auto padding = [&](int64_t len, int64_t n) {
    BoolTensor m(Shape{B, len}, 1);
    for (int64_t t = len - n; t < len; ++t) m[(B - 1) * len + t] = 0;
    return m;
  };
  QKV_CHECK(o.read_out < T, "random_batch: read_out {} is past seq_len {}", o.read_out, T);
  const int64_t pad = o.padded && T >= 3 ? 2 : 0;

  Batch b;
  if (c.arch != Arch::kEncoder && o.next_token) {
    const IndexTensor stream = ids(1, B * T + 1, c.vocab_size);
    b.tokens = IndexTensor({B, T}, {stream.data.begin(), stream.data.end() - 1});
    b.targets = IndexTensor({B, T}, {stream.data.begin() + 1, stream.data.end()});
  } else {
    b.tokens = ids(B, T, c.vocab_size);
  }
  if (pad > 0) b.mask = padding(T, pad);
  if (c.arch == Arch::kEncoder) {
    b.positions = IndexTensor(Shape{B});
    for (int64_t i = 0; i < B; ++i)
      b.positions[i] = static_cast<int32_t>(o.read_out >= 0 ? o.read_out
                                            : i == B - 1    ? T - 1 - pad
                                                            : T - 1);
    b.targets = ids(1, B, c.n_out);
    b.targets.shape = Shape{B};
    return b;
  }
  if (b.targets.empty()) b.targets = ids(B, T, c.n_out);
  if (pad > 0) {
    for (int64_t i = 0; i < b.targets.numel(); ++i)
      if (!b.mask[i]) b.targets[i] = -1;
    if (T > 1) b.targets[1] = -1;
  }
  if (c.arch == Arch::kSeq2seq) {
    const int64_t S = o.src_len;
    QKV_CHECK(S >= 1 && S <= c.src_max_len,
              "random_batch: src_len {} must be in [1, src_max_len = {}]", S, c.src_max_len);
    b.src = ids(B, S, c.src_vocab_size);
    if (o.padded && S >= 2) b.src_mask = padding(S, 1);
  }
  return b;
}

}  // namespace qkv
