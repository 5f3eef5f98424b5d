// ModelConfig: the model half of a checkpoint's /config, with the JSON keys of docs/model.md.
//
//   {"arch": "decoder", "vocab_size": 64, "max_len": 64, "d_model": 64, "n_heads": 4,
//    "n_layers": 2, "d_ff": 256, "activation": "gelu", "norm": "pre", "pos": "learned",
//    "tie_embeddings": false, "n_out": 64, "dropout": 0.0, "ln_eps": 1e-5,
//    "src_vocab_size": 64, "src_max_len": 64}
//
// Every key is optional; an absent key takes the default below. from_json() refuses unknown keys
// and, through validate(), every config that cannot be built, before anything is allocated.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/arch.h"
#include "core/shape.h"

namespace qkv {

struct ModelConfig {
  Arch arch = Arch::kDecoder;       // JSON "encoder" | "decoder" | "seq2seq"
  int64_t vocab_size = 64;          // token ids in [0, vocab_size) (decoder side for seq2seq)
  int64_t max_len = 64;             // longest sequence (decoder side for seq2seq)
  int64_t d_model = 64;             // channels C
  int64_t n_heads = 4;              // heads H; d_model must be divisible by n_heads
  int64_t n_layers = 2;             // blocks (per stack for seq2seq)
  int64_t d_ff = 0;                 // feed-forward width; 0 (or absent) = 4·d_model
  std::string activation = "gelu";  // "gelu" (erf form) | "relu" | "gelu_tanh"
  std::string norm = "pre";         // "pre" | "post" | "none"
  std::string pos = "learned";      // "learned" | "sinusoidal"
  bool tie_embeddings = false;      // head shares tok_emb.weight (no head.* parameters)
  int64_t n_out = 0;                // classes of the head; 0 (or absent) = vocab_size
  double dropout = 0.0;             // in [0, 1); embeddings, attention and FF outputs
  double ln_eps = 1e-5;             // LayerNorm epsilon, > 0
  int64_t src_vocab_size = 0;       // seq2seq source vocabulary (ignored otherwise); 0 = vocab_size
  int64_t src_max_len = 0;          // seq2seq longest source; 0 (or absent) = max_len

  /// The JSON keys, in docs/model.md's order.
  static const std::vector<std::string>& keys();

  /// Parses a JSON object; absent keys take their defaults; unknown keys, wrong types and invalid
  /// values throw qkv::Error naming the key. The result is resolved() and validate()d.
  static ModelConfig from_json(const nlohmann::json& j);
  /// Parses JSON text (as from_json).
  static ModelConfig parse(const std::string& text);
  /// Every key, with resolved values (d_ff, n_out, src_* never 0).
  nlohmann::json to_json() const;

  /// A copy with the "0 = derived" keys filled in: d_ff = 4·d_model, n_out = vocab_size,
  /// src_vocab_size = vocab_size, src_max_len = max_len.
  ModelConfig resolved() const;
  /// Throws qkv::Error (naming the key) unless a model of this config can be built:
  /// positive sizes, d_model divisible by n_heads, known arch/activation/norm/pos, dropout in
  /// [0, 1), ln_eps > 0, n_out = vocab_size unless arch = encoder, tie_embeddings only with
  /// n_out = vocab_size, and parameters whose bytes (bytes_per_param each) fit in physical memory.
  /// Allocates nothing that grows with the config.
  void validate(size_t bytes_per_param = sizeof(float)) const;

  bool operator==(const ModelConfig& o) const;
  bool operator!=(const ModelConfig& o) const { return !(*this == o); }
};

/// Every parameter's canonical name and shape, in canonical (registration, initialisation) order:
/// the contract of docs/model.md's table. The config is resolved first.
std::vector<std::pair<std::string, Shape>> param_shapes(const ModelConfig& config);

/// The number of scalar parameters, computed from the config without listing them; saturates at
/// INT64_MAX instead of overflowing.
int64_t param_count(const ModelConfig& config);

}  // namespace qkv
