// qkv gradcheck's model checks: which configs to check (the defaults or a --config file), each run
// by nn/model_gradcheck.h's gradcheck_model, the same check the nn tests run.
#include "apps/model_gradcheck.h"

#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_reader.h"
#include "nn/config.h"
#include "nn/model.h"
#include "nn/model_gradcheck.h"

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

bool check_one(const json& config_json, const GradcheckOptions& options) {
  const ModelConfig config = ModelConfig::from_json(config_json);
  const ModelGradcheckSetup s = model_gradcheck_setup(config, options.seed);
  GradcheckOptions o = options;
  const int64_t n = s.model->num_parameters();
  o.fast = n > kFullModeMaxParams;
  fmt::print("model {}: {} parameters in {} tensors, batch [{}, {}], {}\n  config {}\n",
             config.arch, n, s.model->named_parameters().size(), s.batch.batch_size(),
             s.batch.seq_len(), o.fast ? "random projections (fast mode)" : "every element",
             config_json.dump());
  GradcheckReport r = gradcheck_model(*s.model, s.batch, o);
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
    json file = read_json_file(config_path, config_path);
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
