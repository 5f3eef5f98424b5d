// qkv_check_files: loads many files in one process, for the corruption corpus
// (scripts/corrupt_corpus.py), and prints one line per file:
//   <status> TAB <milliseconds> TAB <xxh64 of everything loaded, hex> TAB <message bytes, hex>
// status: "ok" (loaded; the hash covers every value the loader returned) or "error" (a qkv::Error;
// its message is passed on byte for byte so the caller can check it).
//
//   qkv_check_files make DIR              writes DIR/checkpoint.h5 and DIR/batch.h5 (small samples)
//   qkv_check_files KIND < list           KIND: checkpoint | batch | h5; one path per input line
//
// At the end: "maxrss_kb <peak resident set of this process and its children>".
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "core/checksum.h"
#include "core/h5.h"
#include "core/rng.h"
#include "datasets/batch_io.h"
#include "nn/config.h"
#include "train/checkpoint.h"

namespace qkv {
namespace {

const nlohmann::json kModel = {{"arch", "decoder"}, {"vocab_size", 12}, {"max_len", 8},
                               {"d_model", 16},     {"n_heads", 2},     {"n_layers", 1},
                               {"d_ff", 32}};

/// Accumulates an order-sensitive hash of everything loaded.
struct Digest {
  uint64_t h = 0;
  void add(const void* p, size_t n) { h = xxh64(p, n, h); }
  void add(const std::string& s) { add(s.data(), s.size()); }
  template <typename T>
  void add(const Tensor<T>& t) {
    add(t.shape().str());
    add(t.data(), static_cast<size_t>(t.numel()) * sizeof(T));
  }
  template <typename I>
  void add(const IntegralTensor<I>& t) {
    add(t.shape.str());
    add(t.data.data(), t.data.size() * sizeof(I));
  }
};

Tensor<float> randn(const Shape& s, Rng& rng) {
  Tensor<float> t = Tensor<float>::empty(s);
  for (float& x : t) x = static_cast<float>(rng.normal());
  return t;
}

void make_samples(const std::string& dir) {
  Rng rng(11);
  Checkpoint c;
  c.model_config = kModel;
  c.train_config = {{"lr", 1e-3}, {"steps", 10}};
  c.task_config = {{"name", "copy"}};
  OptimizerState<float> o;
  o.type = "adamw";
  o.hparams = {{"lr", 1e-3}, {"betas", {0.9, 0.999}}, {"amsgrad", false}};
  o.step = 10;
  for (const auto& [name, shape] : param_shapes(ModelConfig::from_json(kModel))) {
    c.params.emplace_back(name, randn(shape, rng));
    o.slots["m"].emplace_back(name, randn(shape, rng));
    Tensor<float> v = randn(shape, rng);
    for (float& x : v) x = x * x;  // second moments are non-negative
    o.slots["v"].emplace_back(name, v);
  }
  c.optimizer = o;
  c.train.step = 10;
  c.train.rng = {{"data", rng.state()}, {"dropout", rng.state()}};
  for (int i = 0; i < 12; ++i)
    c.vocab.push_back(i ? std::string(1, static_cast<char>('a' + i)) : "<pad>");
  save_checkpoint(dir + "/checkpoint.h5", c);
  Batch b;
  b.tokens = IndexTensor({4, 8}, 3);
  b.targets = IndexTensor({4, 8}, -1);
  for (int64_t i = 0; i < 32; ++i) {
    b.tokens[i] = static_cast<int32_t>(1 + i % 11);
    b.targets[i] = i % 3 ? static_cast<int32_t>(1 + (i + 1) % 11) : -1;
  }
  b.mask = BoolTensor({4, 8}, 1);
  write_batch(dir + "/batch.h5", b);
}

uint64_t load_checkpoint_digest(const std::string& path) {
  ModelConfig config;
  Checkpoint c = load_model_checkpoint(path, config);
  Digest d;
  d.add(c.model_config.dump());
  d.add(c.train_config.dump());
  d.add(c.task_config.dump());
  for (const auto& [n, t] : c.params) {
    d.add(n);
    d.add(t);
  }
  if (c.optimizer) {
    d.add(c.optimizer->type);
    d.add(c.optimizer->hparams.dump());
    d.add(&c.optimizer->step, sizeof(c.optimizer->step));
    for (const auto& [slot, list] : c.optimizer->slots)
      for (const auto& [n, t] : list) {
        d.add(slot + "/" + n);
        d.add(t);
      }
  }
  d.add(&c.train.step, sizeof(c.train.step));
  d.add(c.train.extra.dump());
  for (const auto& [n, s] : c.train.rng) {
    d.add(n);
    d.add(s.data(), sizeof(s));
  }
  for (const std::string& v : c.vocab) d.add(v);
  return d.h;
}

uint64_t load_batch_digest(const std::string& path) {
  BatchSpec spec;
  spec.arch = "decoder";
  spec.vocab_size = 12;
  spec.max_len = 8;
  Batch b = read_batch(path, spec);
  Digest d;
  for (const IndexTensor* t : {&b.tokens, &b.targets, &b.positions, &b.src}) d.add(*t);
  for (const BoolTensor* t : {&b.mask, &b.src_mask}) d.add(*t);
  return d.h;
}

/// Any HDF5 file qkv wrote (qkv grads output): every float dataset, every attribute's text.
void digest_group(const h5::Group& g, Digest& d) {
  for (const std::string& m : g.members()) {
    d.add(m);
    if (g.kind(m) == h5::Kind::kGroup) {
      digest_group(g.group(m), d);
    } else if (g.kind(m) == h5::Kind::kDataset && g.info(m).is_float()) {
      d.add(g.read<double>(m, /*allow_cast=*/true));
    }
  }
}
uint64_t load_h5_digest(const std::string& path) {
  h5::File f = h5::File::open(path);
  Digest d;
  digest_group(f, d);
  return d.h;
}

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

}  // namespace
}  // namespace qkv

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "make") {
    qkv::make_samples(argv[2]);
    return 0;
  }
  if (argc != 2) {
    std::fprintf(stderr, "usage: qkv_check_files make DIR | qkv_check_files KIND < paths\n");
    return 2;
  }
  const std::string kind = argv[1];
  auto load = kind == "checkpoint" ? qkv::load_checkpoint_digest
              : kind == "batch"    ? qkv::load_batch_digest
                                   : qkv::load_h5_digest;
  std::string path;
  while (std::getline(std::cin, path)) {
    const auto t0 = std::chrono::steady_clock::now();
    std::string status = "ok", message;
    uint64_t h = 0;
    try {
      h = load(path);
    } catch (const qkv::Error& e) {
      status = "error";
      message = e.what();
    }
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s\t%.1f\t%016llx\t%s\n", status.c_str(), ms, static_cast<unsigned long long>(h),
                qkv::hex(message).c_str());
    std::fflush(stdout);
  }
  rusage self{}, children{};
  ::getrusage(RUSAGE_SELF, &self);
  ::getrusage(RUSAGE_CHILDREN, &children);
  std::printf("maxrss_kb\t%ld\t%ld\n", self.ru_maxrss, children.ru_maxrss);
  return 0;
}
