// AttentionMap: one attention module's probabilities P from a forward pass, tagged with the
// module's role where the model was built, so that nothing downstream (the trainer, a task's
// probes, `qkv attend`, `qkv grads`) has to guess a role from the module's path.
#pragma once

#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace qkv {

/// Which stack an attention module sits in: the encoder (bidirectional) or the decoder (causal).
/// An encoder-only model has only kEncoder modules, a decoder-only model only kDecoder ones.
enum class AttnStack { kEncoder, kDecoder };
/// Self-attention (Q, K and V from the same sequence) or cross-attention (Q from the decoder, K
/// and V from the encoder output).
enum class AttnKind { kSelf, kCross };

/// Where an attention module sits: its stack, its kind and its block (0-based).
struct AttnRole {
  AttnStack stack = AttnStack::kEncoder;
  AttnKind kind = AttnKind::kSelf;
  int64_t layer = 0;

  bool is_self() const { return kind == AttnKind::kSelf; }
  bool is_cross() const { return kind == AttnKind::kCross; }
  bool operator==(const AttnRole& o) const {
    return stack == o.stack && kind == o.kind && layer == o.layer;
  }
};

/// "encoder" | "decoder".
inline const char* stack_name(AttnStack s) {
  return s == AttnStack::kEncoder ? "encoder" : "decoder";
}
/// "self" | "cross".
inline const char* kind_name(AttnKind k) {
  return k == AttnKind::kSelf ? "self" : "cross";
}

/// P of one attention module: [B, H, T, S] (queries T, keys S).
template <typename T>
struct AttentionMap {
  std::string path;  // the module's parameter path ("blocks.0.attn", "dec.blocks.1.xattn")
  AttnRole role;
  Tensor<T> P;  // shares storage with the graph: read it, do not write it
};

}  // namespace qkv
