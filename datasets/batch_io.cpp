#include "datasets/batch_io.h"

#include "core/error.h"
#include "core/h5.h"

namespace qkv {
namespace {

/// "[2, 5]" for element i of a tensor of shape s (row-major).
std::string index_str(const Shape& s, int64_t i) {
  std::string out = "]";
  for (int a = s.nd - 1; a >= 0; --a) {
    out.insert(0, (a ? ", " : "") + std::to_string(i % s[a]));
    i /= s[a];
  }
  return "[" + out;
}

/// Checks one integral tensor's shape against `want`; `what` explains the expected layout.
template <typename I>
void check_shape(const IntegralTensor<I>& t, const Shape& want, const std::string& source,
                 const char* name, const std::string& what) {
  if (t.shape != want)
    fail("{}: /{} has shape {}; expected {}{}", source, name, t.shape, want, what);
}

/// Every value in [lo, hi), or -1 when `minus_one` says what -1 means ("" = not allowed).
void check_range(const IndexTensor& t, int64_t lo, int64_t hi, const std::string& minus_one,
                 const std::string& source, const char* name, const std::string& range_name) {
  for (int64_t i = 0; i < t.numel(); ++i) {
    int32_t v = t[i];
    if ((v < lo || v >= hi) && !(v == -1 && !minus_one.empty()))
      fail("{}: /{}{} = {} is outside {} [{}, {}){}", source, name, index_str(t.shape, i), v,
           range_name, lo, hi, minus_one.empty() ? "" : " and not -1 (" + minus_one + ")");
  }
}

void check_mask(const BoolTensor& m, const Shape& want, const std::string& source, const char* name,
                const char* of) {
  if (m.empty()) return;
  check_shape(m, want, source, name, std::string(" (as /") + of + ")");
  for (int64_t i = 0; i < m.numel(); ++i)
    if (m[i] > 1)
      fail("{}: /{}{} = {}; mask values must be 0 (padding) or 1 (real token)", source, name,
           index_str(m.shape, i), m[i]);
}

}  // namespace

void check_batch(const Batch& b, const BatchSpec& spec, const std::string& source) {
  const bool encoder = spec.arch == "encoder", seq2seq = spec.arch == "seq2seq";
  if (!encoder && !seq2seq && spec.arch != "decoder")
    fail("{}: unknown arch '{}' (expected encoder, decoder or seq2seq)", source, spec.arch);

  // tokens [B, T]
  if (b.tokens.shape.nd != 2 || b.tokens.shape[0] == 0 || b.tokens.shape[1] == 0)
    fail("{}: /tokens has shape {}; expected [B, T] with B, T ≥ 1", source, b.tokens.shape);
  const int64_t B = b.tokens.shape[0], T = b.tokens.shape[1];
  if (spec.max_len > 0 && T > spec.max_len)
    fail("{}: /tokens has {} positions; the model's max_len is {}", source, T, spec.max_len);
  if (spec.vocab_size > 0)
    check_range(b.tokens, 0, spec.vocab_size, "", source, "tokens", "the vocabulary");
  check_mask(b.mask, {B, T}, source, "mask", "tokens");

  // targets: [B] for the encoder, [B, T] otherwise
  const int64_t n_out = spec.n_out > 0 ? spec.n_out : spec.vocab_size;
  const bool has_targets = !b.targets.empty() || b.targets.shape.nd != 0;
  if (has_targets && encoder)
    check_shape(b.targets, Shape{B}, source, "targets",
                std::string(" (an encoder batch has one class per example)"));
  else if (has_targets)
    check_shape(b.targets, Shape{B, T}, source, "targets",
                std::string(" (a ") + spec.arch + " batch has one target per position)");
  if (has_targets && n_out > 0)
    check_range(b.targets, 0, n_out, "ignored", source, "targets", "the classes");

  // positions [B]: the encoder's read-out, on a real token
  if (encoder && b.positions.empty() && b.positions.shape.nd == 0)
    fail("{}: missing dataset /positions (an encoder batch reads out one position per example)",
         source);
  if (!b.positions.empty() || b.positions.shape.nd != 0) {
    check_shape(b.positions, Shape{B}, source, "positions",
                std::string(" (one read-out position per example)"));
    check_range(b.positions, 0, T, "", source, "positions", "the sequence");
    if (!b.mask.empty())
      for (int64_t i = 0; i < B; ++i)
        if (b.mask[i * T + b.positions[i]] == 0)
          fail("{}: /positions[{}] = {} points at padding (/mask[{}, {}] = 0)", source, i,
               b.positions[i], i, b.positions[i]);
  }

  // src [B, S] for seq2seq, nothing otherwise
  const bool has_src = !b.src.empty() || b.src.shape.nd != 0;
  if (!seq2seq) {
    if (has_src || !b.src_mask.empty())
      fail("{}: /src is only read by seq2seq models; this is {} {} batch", source,
           encoder ? "an" : "a", spec.arch);
    return;
  }
  if (!has_src) fail("{}: missing dataset /src (a seq2seq batch needs source ids [B, S])", source);
  if (b.src.shape.nd != 2 || b.src.shape[0] != B || b.src.shape[1] == 0)
    fail("{}: /src has shape {}; expected [{}, S] with S ≥ 1 (B as /tokens)", source, b.src.shape,
         B);
  const int64_t S = b.src.shape[1];
  const int64_t src_max = spec.src_max_len > 0 ? spec.src_max_len : spec.max_len;
  if (src_max > 0 && S > src_max)
    fail("{}: /src has {} positions; the model's src_max_len is {}", source, S, src_max);
  const int64_t src_vocab = spec.src_vocab_size > 0 ? spec.src_vocab_size : spec.vocab_size;
  if (src_vocab > 0) check_range(b.src, 0, src_vocab, "", source, "src", "the source vocabulary");
  check_mask(b.src_mask, {B, S}, source, "src_mask", "src");
}

Batch read_batch(const std::string& path, const BatchSpec& spec) {
  h5::File f = h5::File::open(path);
  Batch b;
  b.tokens = f.read_index("tokens");
  b.targets = f.read_index("targets");
  if (f.exists("positions")) b.positions = f.read_index("positions");
  if (f.exists("mask")) b.mask = f.read_bool("mask");
  if (f.exists("src")) b.src = f.read_index("src");
  if (f.exists("src_mask")) b.src_mask = f.read_bool("src_mask");
  check_batch(b, spec, path);
  return b;
}

void write_batch(const std::string& path, const Batch& b) {
  if (b.tokens.shape.nd != 2)
    fail("write_batch {}: tokens have shape {}; expected [B, T]", path, b.tokens.shape);
  h5::File f = h5::File::create(path);
  f.write("tokens", b.tokens);
  for (auto [t, name] : {std::pair{&b.targets, "targets"}, std::pair{&b.positions, "positions"},
                         std::pair{&b.src, "src"}})
    if (!t->empty()) f.write(name, *t);
  for (auto [m, name] : {std::pair{&b.mask, "mask"}, std::pair{&b.src_mask, "src_mask"}})
    if (!m->empty()) f.write(name, *m);
  f.close();
}

}  // namespace qkv
