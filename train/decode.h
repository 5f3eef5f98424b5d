// Decoding: continuing a sequence token by token, greedily or by sampling. Sampling works as
// nanoGPT's sample.py and llm.c do: the next token's logits are divided by the temperature, cut to
// the top k (and, optionally, to the nucleus of mass top_p), turned into probabilities by a
// softmax, and one token is drawn with qkv's seeded Rng.
//
//   p_i = exp(z_i / T − m) / Σ_j exp(z_j / T − m)      over the kept tokens, m = max_j z_j / T
//
// Temperature 0 is greedy: the argmax (the lowest id among ties), with no random draw. The
// context a step sees is the last max_len tokens (a sliding window), so generation can run past
// the model's max_len.
//
// By default the model runs with a KV cache (nn/kv_cache.h): the prompt once, then one position
// per new token. While the window slides (past max_len) every position moves, so each step runs
// the whole window again, as the uncached path does. DecodePath::kUncached runs the whole window
// every step; both give the same tokens (the logits agree to float rounding).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/batch.h"
#include "core/rng.h"
#include "nn/model.h"

namespace qkv {

/// How decode() runs the model: with a KV cache (one position per new token) or the whole
/// window every step. Same tokens either way; kUncached is there to measure and test against.
enum class DecodePath { kCached, kUncached };

struct SamplingOptions {
  double temperature = 1.0;  // 0 = greedy argmax; > 1 flatter, < 1 sharper
  int64_t top_k = 0;         // keep the k largest logits; 0 = all
  double top_p = 1.0;        // keep the most probable tokens up to this mass (0, 1]; 1 = all
};

/// Throws qkv::Error naming the flag (--temperature, --top-k, --top-p) when a value is out of
/// range: temperature < 0 or not finite, top_k < 0, top_p outside (0, 1].
void check_sampling_options(const SamplingOptions& o);

/// Probabilities of the next token over V logits after temperature, top-k and top-p; tokens cut
/// away have probability exactly 0. Temperature 0 gives 1 at the argmax. The result sums to 1.
std::vector<double> next_token_probs(const float* logits, int64_t V, const SamplingOptions& o);

/// Draws an id from probabilities `p` (summing to 1) with one rng.uniform(); never an id of
/// probability 0.
int32_t sample_categorical(const std::vector<double>& p, Rng& rng);

/// One next token from V logits: the argmax at temperature 0 (no draw), otherwise a draw from
/// next_token_probs().
int32_t sample_token(const float* logits, int64_t V, const SamplingOptions& o, Rng& rng);

/// The one decoding loop. Continues `batch` (one example of a decoder or a seq2seq model:
/// tokens [1, T] with T >= 1, plus src for seq2seq) by up to max_new tokens, each chosen by
/// sample_token() from the last position's logits over the last max_len tokens (a sliding
/// window); <pad> is never chosen. Stops early after eos_id (when >= 0). on_token, when set, sees
/// each id as it is chosen. Afterwards batch.tokens (and batch.mask) hold the whole sequence and
/// batch.targets is empty. Runs in eval mode without a graph. Returns the new ids.
std::vector<int32_t> decode(Model<float>& model, Batch& batch, int64_t max_new, int32_t eos_id,
                            const SamplingOptions& o, Rng& rng,
                            const std::function<void(int32_t)>& on_token = {},
                            DecodePath path = DecodePath::kCached);

/// Greedy continuation of `batch` (as decode() at temperature 0) until <eos> or the model's
/// max_len; returns the appended ids.
std::vector<int32_t> greedy_decode(Model<float>& model, Batch& batch, int32_t eos_id,
                                   DecodePath path = DecodePath::kCached);

/// Extends `context` (a decoder's token ids, not empty) by up to max_new tokens with decode();
/// returns the new ids.
std::vector<int32_t> generate(Model<float>& model, std::vector<int32_t> context, int64_t max_new,
                              int32_t eos_id, const SamplingOptions& o, Rng& rng,
                              const std::function<void(int32_t)>& on_token = {},
                              DecodePath path = DecodePath::kCached);

}  // namespace qkv
