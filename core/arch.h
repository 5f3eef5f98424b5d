// Arch: the three model architectures, as an enum where the model and the task are made; their
// names ("encoder", "decoder", "seq2seq") only at the edges (JSON configs, messages).
#pragma once

#include <string>

#include <fmt/format.h>

#include "core/error.h"

namespace qkv {

enum class Arch {
  kEncoder,  // bidirectional; one class per example, read out at one position
  kDecoder,  // causal; a token at every position
  kSeq2seq,  // encoder + decoder with cross-attention
};

/// "encoder" | "decoder" | "seq2seq".
inline const char* arch_name(Arch a) {
  switch (a) {
    case Arch::kEncoder:
      return "encoder";
    case Arch::kDecoder:
      return "decoder";
    case Arch::kSeq2seq:
      return "seq2seq";
  }
  return "?";
}

/// Parses an architecture's name; throws qkv::Error naming the three otherwise.
inline Arch parse_arch(const std::string& name) {
  if (name == "encoder") return Arch::kEncoder;
  if (name == "decoder") return Arch::kDecoder;
  if (name == "seq2seq") return Arch::kSeq2seq;
  fail("unknown arch '{}' (expected encoder, decoder or seq2seq)", name);
}

}  // namespace qkv

/// fmt prints an Arch by its name.
template <>
struct fmt::formatter<qkv::Arch> : fmt::formatter<fmt::string_view> {
  template <typename Ctx>
  auto format(qkv::Arch a, Ctx& ctx) const {
    return fmt::formatter<fmt::string_view>::format(qkv::arch_name(a), ctx);
  }
};
