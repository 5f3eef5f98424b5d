#include "nn/config.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "core/error.h"
#include "core/json_reader.h"

namespace qkv {
namespace {

using nlohmann::json;

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// Saturating arithmetic on non-negative counts: a config of absurd sizes must be refused with a
// message, not overflow into a small (or negative) count that looks buildable.
int64_t sat_mul(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_mul_overflow(a, b, &r) ? kMax : r;
}
int64_t sat_add(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_add_overflow(a, b, &r) ? kMax : r;
}

const std::vector<std::string> kArchs = {"encoder", "decoder", "seq2seq"};
const std::vector<std::string> kActivations = {"gelu", "relu", "gelu_tanh"};
const std::vector<std::string> kNorms = {"pre", "post", "none"};
const std::vector<std::string> kPos = {"learned", "sinusoidal"};

std::string joined(const std::vector<std::string>& v) {
  return fmt::format("{}", fmt::join(v, ", "));
}

void check_one_of(const std::string& key, const std::string& value,
                  const std::vector<std::string>& allowed) {
  QKV_CHECK(std::find(allowed.begin(), allowed.end(), value) != allowed.end(),
            "model config: {} '{}' is not one of {}", key, value, joined(allowed));
}

void check_positive(const std::string& key, int64_t value) {
  QKV_CHECK(value > 0, "model config: {} must be a positive integer, got {}", key, value);
}

// ---- the parameter table ----------------------------------------------------------------------
// One transformer stack (embeddings, blocks, final LayerNorm, head), listed in registration order.
// The count below must agree with this list; param_count_test checks it.
struct StackSpec {
  std::string prefix;  // "" or "enc." / "dec."
  int64_t vocab, max_len;
  bool cross;  // decoder blocks of seq2seq: ln_x + xattn
  bool head;   // an untied head.* of n_out rows
};

void add_linear(std::vector<std::pair<std::string, Shape>>& out, const std::string& name,
                int64_t n_out, int64_t n_in) {
  out.emplace_back(name + ".weight", Shape{n_out, n_in});
  out.emplace_back(name + ".bias", Shape{n_out});
}

void add_ln(std::vector<std::pair<std::string, Shape>>& out, const std::string& name, int64_t C) {
  out.emplace_back(name + ".weight", Shape{C});
  out.emplace_back(name + ".bias", Shape{C});
}

void add_attention(std::vector<std::pair<std::string, Shape>>& out, const std::string& name,
                   int64_t C) {
  for (const char* w : {"W_Q", "W_K", "W_V", "W_O"}) add_linear(out, name + "." + w, C, C);
}

void add_stack(std::vector<std::pair<std::string, Shape>>& out, const ModelConfig& c,
               const StackSpec& s) {
  const int64_t C = c.d_model;
  const bool ln = c.norm != "none";
  out.emplace_back(s.prefix + "tok_emb.weight", Shape{s.vocab, C});
  if (c.pos == "learned") out.emplace_back(s.prefix + "pos_emb.weight", Shape{s.max_len, C});
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string b = fmt::format("{}blocks.{}.", s.prefix, i);
    if (ln) add_ln(out, b + "ln1", C);
    add_attention(out, b + "attn", C);
    if (s.cross) {
      if (ln) add_ln(out, b + "ln_x", C);
      add_attention(out, b + "xattn", C);
    }
    if (ln) add_ln(out, b + "ln2", C);
    add_linear(out, b + "ff.fc1", c.d_ff, C);
    add_linear(out, b + "ff.fc2", C, c.d_ff);
  }
  if (c.norm == "pre") add_ln(out, s.prefix + "ln_f", C);
  if (s.head) add_linear(out, s.prefix + "head", c.n_out, C);
}

int64_t stack_count(const ModelConfig& c, const StackSpec& s) {
  const int64_t C = c.d_model;
  const int64_t ln = c.norm != "none" ? 2 * C : 0;
  const int64_t attn = sat_mul(4, sat_add(sat_mul(C, C), C));
  const int64_t ff = sat_add(sat_mul(2, sat_mul(c.d_ff, C)), sat_add(c.d_ff, C));
  int64_t block = sat_add(sat_add(ln, attn), sat_add(ln, ff));
  if (s.cross) block = sat_add(block, sat_add(ln, attn));
  int64_t n = sat_mul(s.vocab, C);
  if (c.pos == "learned") n = sat_add(n, sat_mul(s.max_len, C));
  n = sat_add(n, sat_mul(c.n_layers, block));
  if (c.norm == "pre") n = sat_add(n, 2 * C);
  if (s.head) n = sat_add(n, sat_mul(c.n_out, sat_add(C, 1)));
  return n;
}

std::vector<StackSpec> stacks(const ModelConfig& c) {
  const bool head = !c.tie_embeddings;
  if (c.arch == Arch::kSeq2seq)
    return {{"enc.", c.src_vocab_size, c.src_max_len, false, false},
            {"dec.", c.vocab_size, c.max_len, true, head}};
  return {{"", c.vocab_size, c.max_len, false, head}};
}

int64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return kMax;  // unknown: do not refuse on a guess
  return sat_mul(pages, page);
}

double gib(int64_t bytes) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0);
}

}  // namespace

const std::vector<std::string>& ModelConfig::keys() {
  static const std::vector<std::string> k = {
      "arch",    "vocab_size", "max_len",        "d_model",    "n_heads",        "n_layers",
      "d_ff",    "activation", "norm",           "pos",        "tie_embeddings", "n_out",
      "dropout", "ln_eps",     "src_vocab_size", "src_max_len"};
  return k;
}

ModelConfig ModelConfig::from_json(const json& j) {
  QKV_CHECK(j.is_object(), "model config: expected a JSON object, got {}", j.type_name());
  const auto& known = keys();
  for (const auto& item : j.items())
    QKV_CHECK(std::find(known.begin(), known.end(), item.key()) != known.end(),
              "model config: unknown key '{}' (known keys: {})", item.key(), joined(known));
  ModelConfig c;
  const JsonReader r("model config", j);
  std::string arch = arch_name(c.arch);
  r.string("arch", arch);
  check_one_of("arch", arch, kArchs);  // the same message as the other named choices
  c.arch = parse_arch(arch);
  r.integer("vocab_size", c.vocab_size);
  r.integer("max_len", c.max_len);
  r.integer("d_model", c.d_model);
  r.integer("n_heads", c.n_heads);
  r.integer("n_layers", c.n_layers);
  r.string("activation", c.activation);
  r.string("norm", c.norm);
  r.string("pos", c.pos);
  r.boolean("tie_embeddings", c.tie_embeddings);
  r.number("dropout", c.dropout);
  r.number("ln_eps", c.ln_eps);
  // 0 means "derived" only when the key is absent.
  for (auto [key, value] :
       {std::pair{"d_ff", &c.d_ff}, std::pair{"n_out", &c.n_out},
        std::pair{"src_vocab_size", &c.src_vocab_size}, std::pair{"src_max_len", &c.src_max_len}}) {
    if (!r.find(key)) continue;
    r.integer(key, *value);
    check_positive(key, *value);
  }
  c.validate();
  return c.resolved();
}

ModelConfig ModelConfig::parse(const std::string& text) {
  return from_json(parse_json(text, "model config"));
}

json ModelConfig::to_json() const {
  const ModelConfig c = resolved();
  return json{{"arch", arch_name(c.arch)},
              {"vocab_size", c.vocab_size},
              {"max_len", c.max_len},
              {"d_model", c.d_model},
              {"n_heads", c.n_heads},
              {"n_layers", c.n_layers},
              {"d_ff", c.d_ff},
              {"activation", c.activation},
              {"norm", c.norm},
              {"pos", c.pos},
              {"tie_embeddings", c.tie_embeddings},
              {"n_out", c.n_out},
              {"dropout", c.dropout},
              {"ln_eps", c.ln_eps},
              {"src_vocab_size", c.src_vocab_size},
              {"src_max_len", c.src_max_len}};
}

ModelConfig ModelConfig::resolved() const {
  ModelConfig c = *this;
  if (c.d_ff == 0) c.d_ff = sat_mul(4, c.d_model);
  if (c.n_out == 0) c.n_out = c.vocab_size;
  if (c.src_vocab_size == 0) c.src_vocab_size = c.vocab_size;
  if (c.src_max_len == 0) c.src_max_len = c.max_len;
  return c;
}

void ModelConfig::validate(size_t bytes_per_param) const {
  check_one_of("activation", activation, kActivations);
  check_one_of("norm", norm, kNorms);
  check_one_of("pos", pos, kPos);
  check_positive("vocab_size", vocab_size);
  check_positive("max_len", max_len);
  check_positive("d_model", d_model);
  check_positive("n_heads", n_heads);
  check_positive("n_layers", n_layers);
  QKV_CHECK(d_ff >= 0, "model config: d_ff must be a positive integer, got {}", d_ff);
  QKV_CHECK(n_out >= 0, "model config: n_out must be a positive integer, got {}", n_out);
  QKV_CHECK(src_vocab_size >= 0, "model config: src_vocab_size must be a positive integer, got {}",
            src_vocab_size);
  QKV_CHECK(src_max_len >= 0, "model config: src_max_len must be a positive integer, got {}",
            src_max_len);
  // Token ids and positions travel as int32.
  constexpr int64_t kIdMax = std::numeric_limits<int32_t>::max();
  QKV_CHECK(vocab_size <= kIdMax, "model config: vocab_size must be at most {}, got {}", kIdMax,
            vocab_size);
  QKV_CHECK(max_len <= kIdMax, "model config: max_len must be at most {}, got {}", kIdMax, max_len);
  QKV_CHECK(src_vocab_size <= kIdMax, "model config: src_vocab_size must be at most {}, got {}",
            kIdMax, src_vocab_size);
  QKV_CHECK(src_max_len <= kIdMax, "model config: src_max_len must be at most {}, got {}", kIdMax,
            src_max_len);
  QKV_CHECK(d_model % n_heads == 0, "model config: d_model ({}) must be divisible by n_heads ({})",
            d_model, n_heads);
  QKV_CHECK(std::isfinite(dropout) && dropout >= 0 && dropout < 1,
            "model config: dropout must be in [0, 1), got {}", dropout);
  QKV_CHECK(std::isfinite(ln_eps) && ln_eps > 0, "model config: ln_eps must be positive, got {}",
            ln_eps);
  const ModelConfig c = resolved();
  if (c.arch == Arch::kEncoder) {
    QKV_CHECK(!c.tie_embeddings || c.n_out == c.vocab_size,
              "model config: tie_embeddings needs n_out = vocab_size (the head reuses "
              "tok_emb.weight), got n_out {} and vocab_size {}",
              c.n_out, c.vocab_size);
  } else {
    // vocab_size first: a task states both, so a differing pair means vocab_size was changed.
    QKV_CHECK(c.n_out == c.vocab_size,
              "model config: vocab_size is {} but n_out is {}; arch '{}' predicts its own tokens, "
              "so they must be equal (leave both out to take the task's)",
              c.vocab_size, c.n_out, c.arch);
  }
  // Memory: parameters, plus the sinusoidal tables (not parameters, but allocated).
  const int64_t count = param_count(c);
  int64_t bytes = sat_mul(count, static_cast<int64_t>(bytes_per_param));
  if (c.pos == "sinusoidal")
    bytes = sat_add(bytes, sat_mul(sat_add(c.max_len, c.arch == Arch::kSeq2seq ? c.src_max_len : 0),
                                   sat_mul(c.d_model, static_cast<int64_t>(bytes_per_param))));
  const int64_t physical = physical_memory_bytes();
  QKV_CHECK(bytes <= physical,
            "model config: {} parameters need {:.1f} GiB, more than this machine's {:.1f} GiB of "
            "physical memory; reduce vocab_size, max_len, d_model, d_ff or n_layers",
            count == kMax ? std::string("more than 9.2e18") : std::to_string(count), gib(bytes),
            gib(physical));
}

bool ModelConfig::operator==(const ModelConfig& o) const {
  return to_json() == o.to_json();
}

std::vector<std::pair<std::string, Shape>> param_shapes(const ModelConfig& config) {
  const ModelConfig c = config.resolved();
  std::vector<std::pair<std::string, Shape>> out;
  for (const StackSpec& s : stacks(c)) add_stack(out, c, s);
  return out;
}

int64_t param_count(const ModelConfig& config) {
  const ModelConfig c = config.resolved();
  int64_t n = 0;
  for (const StackSpec& s : stacks(c)) n = sat_add(n, stack_count(c, s));
  return n;
}

}  // namespace qkv
