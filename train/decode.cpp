#include "train/decode.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>

#include "autograd/var.h"
#include "core/error.h"
#include "datasets/vocab.h"

namespace qkv {

void check_sampling_options(const SamplingOptions& o) {
  QKV_CHECK(std::isfinite(o.temperature) && o.temperature >= 0,
            "--temperature {}: must be >= 0 (0 = greedy, 1 = the model's distribution)",
            o.temperature);
  QKV_CHECK(o.top_k >= 0, "--top-k {}: must be >= 0 (0 = keep every token)", o.top_k);
  QKV_CHECK(o.top_p > 0 && o.top_p <= 1, "--top-p {}: must be in (0, 1] (1 = keep every token)",
            o.top_p);
}

namespace {

int32_t argmax(const float* logits, int64_t V) {
  int32_t best = 0;
  for (int64_t v = 1; v < V; ++v)
    if (logits[v] > logits[best]) best = static_cast<int32_t>(v);
  return best;
}

}  // namespace

// Order of the cuts, as in nanoGPT (top-k on the logits) and Hugging Face (top-p after it):
//   1. z = logits / T
//   2. top-k: every z outside the k largest becomes −inf (exactly k kept; ties by lower id)
//   3. p = softmax(z), in double
//   4. top-p: sort p descending, keep the shortest prefix whose mass reaches top_p (at least
//      one token), zero the rest and renormalise.
std::vector<double> next_token_probs(const float* logits, int64_t V, const SamplingOptions& o) {
  check_sampling_options(o);
  QKV_CHECK(V > 0, "next_token_probs: no logits");
  std::vector<double> p(static_cast<size_t>(V), 0.0);
  if (o.temperature == 0) {
    p[static_cast<size_t>(argmax(logits, V))] = 1.0;
    return p;
  }
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> z(static_cast<size_t>(V));
  for (int64_t v = 0; v < V; ++v) z[size_t(v)] = double(logits[v]) / o.temperature;

  // Ids by descending z, ties by ascending id: the order both cuts read.
  std::vector<int32_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return z[size_t(a)] > z[size_t(b)]; });
  if (o.top_k > 0 && o.top_k < V)
    for (size_t r = static_cast<size_t>(o.top_k); r < order.size(); ++r) z[size_t(order[r])] = -inf;

  const double m = z[size_t(order[0])];
  double sum = 0;
  for (int64_t v = 0; v < V; ++v)
    sum += (p[size_t(v)] = std::exp(z[size_t(v)] - m));  // exp(−inf) = 0
  for (double& x : p) x /= sum;

  if (o.top_p < 1) {
    double kept = 0;
    size_t r = 0;
    for (; r < order.size(); ++r) {
      kept += p[size_t(order[r])];
      if (kept >= o.top_p) break;
    }
    for (size_t s = r + 1; s < order.size(); ++s) p[size_t(order[s])] = 0;
    for (double& x : p) x /= kept;
  }
  return p;
}

// Inverse-CDF draw: the first id whose cumulative probability exceeds u ∈ [0, 1). Rounding can
// leave u above the last partial sum; the last id of non-zero probability takes that sliver.
int32_t sample_categorical(const std::vector<double>& p, Rng& rng) {
  QKV_CHECK(!p.empty(), "sample_categorical: no probabilities");
  const double u = rng.uniform();
  double cum = 0;
  int32_t last = -1;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0) continue;
    last = static_cast<int32_t>(i);
    cum += p[i];
    if (u < cum) return last;
  }
  QKV_CHECK(last >= 0, "sample_categorical: every probability is 0");
  return last;
}

int32_t sample_token(const float* logits, int64_t V, const SamplingOptions& o, Rng& rng) {
  if (o.temperature == 0) return argmax(logits, V);
  return sample_categorical(next_token_probs(logits, V, o), rng);
}

// The window: positions past max_len have no embedding, so a step sees the last max_len tokens.
// With the cache, the window's tokens not yet cached are appended (the whole prompt first, then
// one token a step). Once the window slides, every token in it has moved to a new position, and
// K and V depend on the position at every layer (the embeddings are added at the input): the cache
// is cleared and the window runs again, the cost of an uncached step, so the tokens stay exactly
// those of the uncached path.
std::vector<int32_t> decode(Model<float>& model, Batch& batch, int64_t max_new, int32_t eos_id,
                            const SamplingOptions& o, Rng& rng,
                            const std::function<void(int32_t)>& on_token, DecodePath path) {
  check_sampling_options(o);
  QKV_CHECK(batch.batch_size() == 1 && batch.seq_len() >= 1,
            "decode: expected one example with at least one token, got tokens {}",
            batch.tokens.shape.str());
  QKV_CHECK(model.config().arch != Arch::kEncoder,
            "decode: the model is an encoder, which predicts no next token");
  NoGradGuard no_grad;
  EvalModeGuard<float> eval(model);  // no dropout: a continuation is a prediction
  batch.targets = IndexTensor();     // the continuation has none; the model computes no loss
  const auto max_len = static_cast<size_t>(model.config().max_len);
  std::vector<int32_t> tokens = batch.tokens.data, out;
  std::vector<float> last;
  auto ids_from = [&](size_t start) {
    const auto n = static_cast<int64_t>(tokens.size() - start);
    return IndexTensor(
        {1, n},
        std::vector<int32_t>(tokens.begin() + static_cast<std::ptrdiff_t>(start), tokens.end()));
  };
  auto set_tokens = [&](size_t start) {
    batch.tokens = ids_from(start);
    batch.mask = BoolTensor(batch.tokens.shape, 1);
  };
  std::optional<KVCache<float>> cache;
  if (path == DecodePath::kCached) cache = model.begin_decode(batch);  // seq2seq: the encoder
  CachedForwardOptions last_only;
  last_only.last_only = true;
  size_t cached_from = 0;  // the cache holds tokens [cached_from, cached_from + length)
  for (int64_t step = 0; step < max_new; ++step) {
    const size_t start = tokens.size() > max_len ? tokens.size() - max_len : 0;
    Var<float> logits;  // [1, n, V]: the last row is the next token's
    if (cache) {
      if (start != cached_from) cache->clear();  // the window slid
      cached_from = start;
      logits =
          model.forward_cached(*cache, ids_from(start + size_t(cache->length())), last_only).logits;
    } else {
      set_tokens(start);
      logits = model.forward(batch).logits;
    }
    const int64_t V = logits.size(2);
    const float* row = logits.value().data() + logits.numel() - V;
    last.assign(row, row + V);
    last[size_t(Vocab::kPadId)] = -std::numeric_limits<float>::infinity();
    const int32_t id = sample_token(last.data(), V, o, rng);
    tokens.push_back(id);
    out.push_back(id);
    if (on_token) on_token(id);
    if (id == eos_id) break;
  }
  set_tokens(0);
  return out;
}

std::vector<int32_t> greedy_decode(Model<float>& model, Batch& batch, int32_t eos_id,
                                   DecodePath path) {
  SamplingOptions greedy;
  greedy.temperature = 0;
  Rng unused(0);  // temperature 0 draws nothing
  const int64_t room = std::max<int64_t>(0, model.config().max_len - batch.seq_len());
  return decode(model, batch, room, eos_id, greedy, unused, {}, path);
}

std::vector<int32_t> generate(Model<float>& model, std::vector<int32_t> context, int64_t max_new,
                              int32_t eos_id, const SamplingOptions& o, Rng& rng,
                              const std::function<void(int32_t)>& on_token, DecodePath path) {
  QKV_CHECK(!context.empty(), "generate: the context is empty");
  QKV_CHECK(model.config().arch == Arch::kDecoder, "generate: the model is a {}, not a decoder",
            model.config().arch);
  Batch batch;
  const auto n = static_cast<int64_t>(context.size());
  batch.tokens = IndexTensor({1, n}, std::move(context));
  return decode(model, batch, max_new, eos_id, o, rng, on_token, path);
}

}  // namespace qkv
