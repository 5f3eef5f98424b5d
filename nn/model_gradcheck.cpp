#include "nn/model_gradcheck.h"

#include <algorithm>
#include <string>

#include "nn/random_batch.h"

namespace qkv {

template <typename T>
void randomize_for_gradcheck(Model<T>& model, Rng& rng) {
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  for (auto& [name, p] : model.named_parameters()) {
    // ln1, ln2, ln_x, ln_f, with or without an enc./dec. prefix
    const bool ln = name.find(".ln") != std::string::npos || name.rfind("ln", 0) == 0;
    double mean = 0, sd = 0.3;
    if (p.dim() == 2) {
      sd = 0.5;
    } else if (ln && ends_with(name, ".weight")) {
      mean = 1.0;
    }
    for (T& x : p.value()) x = static_cast<T>(rng.normal(mean, sd));
  }
}

template void randomize_for_gradcheck(Model<float>&, Rng&);
template void randomize_for_gradcheck(Model<double>&, Rng&);

ModelGradcheckSetup model_gradcheck_setup(const ModelConfig& config, uint64_t seed) {
  ModelGradcheckSetup s;
  s.model = std::make_unique<Model<double>>(config, seed);
  s.model->eval();
  Rng rng(seed ^ 0x9E3779B97F4A7C15ull);
  randomize_for_gradcheck(*s.model, rng);
  const ModelConfig& c = s.model->config();
  RandomBatchOptions o;
  o.seq_len = std::min(o.seq_len, c.max_len);
  if (c.arch == Arch::kSeq2seq) o.src_len = std::min(o.src_len, c.src_max_len);
  s.batch = random_batch(c, rng, o);
  return s;
}

GradcheckReport gradcheck_model(Model<double>& model, const Batch& batch,
                                const GradcheckOptions& options) {
  return gradcheck([&] { return model.forward(batch).loss; }, model.named_parameters(), options);
}

GradcheckReport gradcheck_model(const ModelConfig& config, uint64_t seed,
                                const GradcheckOptions& options) {
  ModelGradcheckSetup s = model_gradcheck_setup(config, seed);
  return gradcheck_model(*s.model, s.batch, options);
}

}  // namespace qkv
