// Model-level gradchecks: the loss of a small float64 model, differentiated with respect to every
// parameter by canonical name (tok_emb.weight, blocks.0.attn.W_Q.weight, …), against central
// differences. The loss is a scalar, so the full Jacobian is one row per parameter tensor: one
// backward, then two forwards per parameter element.
#include "apps/model_gradcheck.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/rng.h"
#include "nn/config.h"
#include "nn/model.h"

namespace qkv::cli {
namespace {

using nlohmann::json;

/// Above this many parameters a model is checked with random projections (fast mode) instead of
/// element by element, so that a large --config still finishes.
constexpr int64_t kFullModeMaxParams = 20000;

/// The small default model of each architecture: d_model 8, 2 heads, 2 layers, d_ff 16. The
/// three differ in the options they exercise (head vs tied embeddings, activations, norms).
json default_config(const std::string& arch) {
  json j = {{"arch", arch}, {"vocab_size", 11}, {"max_len", 6},
            {"d_model", 8}, {"n_heads", 2},     {"n_layers", 2},
            {"d_ff", 16},   {"dropout", 0.0},   {"pos", "learned"}};
  if (arch == "encoder") {
    j.update({{"n_out", 3}, {"activation", "gelu"}, {"norm", "pre"}});
  } else if (arch == "decoder") {
    j.update({{"tie_embeddings", true}, {"activation", "gelu_tanh"}, {"norm", "pre"}});
  } else {
    j.update({{"src_vocab_size", 9},
              {"src_max_len", 5},
              {"activation", "gelu"},
              {"norm", "post"},
              {"pos", "sinusoidal"}});
  }
  return j;
}

json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("{}: cannot read the model config", path);
  std::stringstream text;
  text << in.rdbuf();
  try {
    return json::parse(text.str());
  } catch (const std::exception& e) {
    // "[json.exception.parse_error.101] parse error at …" → "parse error at …"
    std::string why = e.what();
    size_t close = why.find("] ");
    if (why.rfind("[json.exception.", 0) == 0 && close != std::string::npos)
      why = why.substr(close + 2);
    fail("{}: not valid JSON ({})", path, why);
  }
}

/// Parameters drawn at unit scale rather than GPT-2's 0.02, so that every gradient is far from
/// zero and the tolerances are a real test: matrices N(0, 1/fan_in), embeddings N(0, 1),
/// LayerNorm weights 1 + N(0, 0.2²), biases N(0, 0.2²).
void randomise(Model<double>& model, Rng& rng) {
  for (auto& [name, p] : model.named_parameters()) {
    Tensor<double>& v = p.value();
    const bool ln_weight = name.find(".ln") != std::string::npos || name.rfind("ln", 0) == 0;
    const bool embedding = name.find("_emb.") != std::string::npos;
    double mean = 0, sd = 0.2;
    if (p.dim() == 2) {
      sd = embedding ? 1.0 : 1.0 / std::sqrt(static_cast<double>(p.size(1)));
    } else if (ln_weight && name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0) {
      mean = 1.0;
    }
    for (double& x : v) x = rng.normal(mean, sd);
  }
}

/// A random batch for `c`: B = 2, T = min(5, max_len) (S = min(4, src_max_len) for seq2seq);
/// example 1 ends in padding, and the decoder targets ignore the padding and one real position.
Batch random_batch(const ModelConfig& c, Rng& rng) {
  const int64_t B = 2, T = std::min<int64_t>(5, c.max_len);
  const int64_t pad = T >= 3 ? 2 : 0;  // padded tail of example 1
  auto ids = [&](int64_t n, int64_t vocab) {
    IndexTensor t(Shape{B, n});
    for (int64_t i = 0; i < t.numel(); ++i) t[i] = static_cast<int32_t>(rng.below(vocab));
    return t;
  };
  auto padding = [&](int64_t n, int64_t tail) {
    BoolTensor m(Shape{B, n}, 1);
    for (int64_t t = n - tail; t < n; ++t) m[n + t] = 0;
    return m;
  };
  Batch b;
  b.tokens = ids(T, c.vocab_size);
  b.mask = padding(T, pad);
  if (c.arch == Arch::kEncoder) {
    b.positions = IndexTensor(Shape{B}, {static_cast<int32_t>(T - 1), 0});
    b.targets = IndexTensor(Shape{B});
    for (int64_t i = 0; i < B; ++i) b.targets[i] = static_cast<int32_t>(rng.below(c.n_out));
    return b;
  }
  b.targets = ids(T, c.n_out);
  for (int64_t i = 0; i < b.targets.numel(); ++i)
    if (!b.mask[i]) b.targets[i] = -1;
  if (T > 1) b.targets[1] = -1;
  if (c.arch == Arch::kSeq2seq) {
    const int64_t S = std::min<int64_t>(4, c.src_max_len);
    b.src = ids(S, c.src_vocab_size);
    b.src_mask = padding(S, S >= 2 ? 1 : 0);
  }
  return b;
}

bool check_one(const json& config_json, const GradcheckOptions& options) {
  const ModelConfig config = ModelConfig::from_json(config_json);
  Model<double> model(config, options.seed);
  model.eval();  // dropout off: the loss must be a deterministic function of the parameters
  Rng rng(options.seed ^ 0x9E3779B97F4A7C15ull);
  randomise(model, rng);
  const Batch batch = random_batch(model.config(), rng);

  GradcheckOptions o = options;
  const int64_t n = model.num_parameters();
  o.fast = n > kFullModeMaxParams;
  Module<double>::NamedParameters params = model.named_parameters();
  fmt::print("model {}: {} parameters in {} tensors, batch [{}, {}], {}\n  config {}\n",
             config.arch, n, params.size(), batch.batch_size(), batch.seq_len(),
             o.fast ? "random projections (fast mode)" : "every element", config_json.dump());
  GradcheckReport r = gradcheck([&] { return model.forward(batch).loss; }, params, o);
  fmt::print("{}\n", r.table());
  return r.ok;
}

}  // namespace

bool check_models(const std::string& arch, const std::string& config_path,
                  const GradcheckOptions& options) {
  std::vector<std::string> archs;
  if (arch == "all") {
    archs = {"encoder", "decoder", "seq2seq"};
  } else {
    archs = {arch};
  }
  std::vector<json> configs;
  if (config_path.empty()) {
    for (const std::string& a : archs) configs.push_back(default_config(a));
  } else {
    json file = read_json_file(config_path);
    if (!file.is_object()) fail("{}: the model config must be a JSON object", config_path);
    if (file.contains("arch")) {
      if (arch != "all" && file["arch"] != arch)
        fail("{}: the config's arch is {}, but --arch asks for {}", config_path,
             file["arch"].dump(), arch);
      configs.push_back(file);
    } else {
      for (const std::string& a : archs) {
        json j = file;
        j["arch"] = a;
        configs.push_back(j);
      }
    }
    try {
      for (const json& j : configs) ModelConfig::from_json(j);
    } catch (const Error& e) {
      fail("{}: {}", config_path, e.what());
    }
  }
  bool ok = true;
  for (const json& j : configs) ok = check_one(j, options) && ok;
  return ok;
}

}  // namespace qkv::cli
