// Helpers shared by the nn tests: tiny configs, batches and error-text capture.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/test_util.h"  // randn, EXPECT_GRADCHECK
#include "core/batch.h"
#include "core/error.h"
#include "core/rng.h"
#include "nn/config.h"
#include "nn/model.h"
#include "nn/model_gradcheck.h"
#include "nn/random_batch.h"
#include "test_files.h"

namespace qkv::testing {

/// A tiny config: d_model 8, 2 heads, d_ff 16, vocab 11, max_len 6.
inline ModelConfig tiny(const std::string& arch, int64_t n_layers = 1) {
  ModelConfig c;
  c.arch = parse_arch(arch);
  c.vocab_size = 11;
  c.max_len = 6;
  c.d_model = 8;
  c.n_heads = 2;
  c.n_layers = n_layers;
  c.d_ff = 16;
  if (arch == "encoder") c.n_out = 3;
  if (arch == "seq2seq") {
    c.src_vocab_size = 13;
    c.src_max_len = 5;
  }
  return c;
}

inline IndexTensor random_ids(const Shape& shape, int64_t vocab, Rng& rng) {
  IndexTensor t(shape);
  for (auto& x : t.data) x = static_cast<int32_t>(rng.below(static_cast<uint64_t>(vocab)));
  return t;
}

/// random_batch(config) with its defaults (B = 2, T = 5, S = 4, the last example padded), drawn
/// from `seed`.
inline Batch tiny_batch(const ModelConfig& config, uint64_t seed = 3) {
  Rng rng(seed);
  return random_batch(config, rng);
}

/// A batch for `config` of B examples of T tokens drawn from `seed`; `padded`: the last example
/// ends in padding and some targets are ignored (RandomBatchOptions::padded).
inline Batch batch_of(const ModelConfig& config, int64_t B, int64_t T, bool padded,
                      uint64_t seed = 5) {
  Rng rng(seed);
  RandomBatchOptions o;
  o.batch_size = B;
  o.seq_len = T;
  o.padded = padded;
  return random_batch(config, rng, o);
}

/// randomize_for_gradcheck from `seed`: every gradient well above the gradcheck's atol.
template <typename T>
void randomize(Model<T>& model, uint64_t seed) {
  Rng rng(seed);
  randomize_for_gradcheck(model, rng);
}

/// tiny(arch, layers) with the given norm placement, activation, positions and tied head.
inline ModelConfig variant(const std::string& arch, int64_t layers, const std::string& norm,
                           const std::string& activation, const std::string& pos, bool tied) {
  ModelConfig c = tiny(arch, layers);
  c.norm = norm;
  c.activation = activation;
  c.pos = pos;
  c.tie_embeddings = tied;
  if (tied) c.n_out = 0;  // = vocab_size
  return c;
}

/// Calls f(config, arch, norm, pos, tied) for every architecture × norm placement × positions ×
/// tied head, 2 layers each.
template <typename F>
void for_each_variant(F f) {
  for (const std::string arch : {"encoder", "decoder", "seq2seq"})
    for (const std::string norm : {"pre", "post", "none"})
      for (const std::string pos : {"learned", "sinusoidal"})
        for (bool tied : {false, true})
          f(variant(arch, 2, norm, "gelu", pos, tied), arch, norm, pos, tied);
}

/// Every parameter of a float64 module (a layer or a whole model) as gradcheck inputs, by name.
inline std::vector<std::pair<std::string, Var<double>>> gradcheck_inputs(Module<double>& module) {
  std::vector<std::pair<std::string, Var<double>>> out;
  for (auto& [name, p] : module.named_parameters()) out.emplace_back(name, p);
  return out;
}

}  // namespace qkv::testing
