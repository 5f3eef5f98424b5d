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
#include "test_files.h"

namespace qkv::testing {

/// A tiny config: d_model 8, 2 heads, d_ff 16, vocab 11, max_len 6.
inline ModelConfig tiny(const std::string& arch, int64_t n_layers = 1) {
  ModelConfig c;
  c.arch = arch;
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

/// A batch of B = 2 with T = 5 for `config`; example 1 is padded (its last two tokens are
/// padding, targets -1 there). Encoder: read-out positions {3, 1}, targets in [0, n_out).
/// Seq2seq: src of S = 4 with example 1's last source token padded.
inline Batch tiny_batch(const ModelConfig& config, uint64_t seed = 3) {
  const ModelConfig c = config.resolved();
  Rng rng(seed);
  const int64_t B = 2, T = 5, S = 4;
  Batch b;
  b.tokens = random_ids({B, T}, c.vocab_size, rng);
  b.mask = BoolTensor({B, T}, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0});
  if (c.arch == "encoder") {
    b.positions = IndexTensor({B}, {3, 1});
    b.targets = random_ids({B}, c.n_out, rng);
  } else {
    b.targets = random_ids({B, T}, c.vocab_size, rng);
    b.targets[8] = -1;
    b.targets[9] = -1;
  }
  if (c.arch == "seq2seq") {
    b.src = random_ids({B, S}, c.src_vocab_size, rng);
    b.src_mask = BoolTensor({B, S}, {1, 1, 1, 1, 1, 1, 1, 0});
  }
  return b;
}

/// Redraws every parameter with larger values than the GPT-2 init (weights N(0, 0.5), biases
/// N(0, 0.3), LayerNorm weights 1 + N(0, 0.3)), so that every gradient of a gradcheck is well
/// above its absolute tolerance and a wrong backward cannot hide behind atol.
template <typename T>
void randomize(Model<T>& model, uint64_t seed) {
  Rng rng(seed);
  for (auto& [name, p] : model.named_parameters()) {
    const bool ln_weight =
        name.find(".ln") != std::string::npos || name.rfind("ln", 0) == 0;  // ln1, ln2, ln_x, ln_f
    for (T& x : p.value()) {
      if (p.dim() == 2) {
        x = static_cast<T>(rng.normal(0, 0.5));
      } else if (ln_weight && name.size() > 7 && name.substr(name.size() - 7) == ".weight") {
        x = static_cast<T>(1 + rng.normal(0, 0.3));
      } else {
        x = static_cast<T>(rng.normal(0, 0.3));
      }
    }
  }
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
