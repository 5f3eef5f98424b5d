// The model-level gradient check: d loss / d every parameter of a float64 model, by canonical
// name, against central differences. `qkv gradcheck` and the nn tests run this same check.
#pragma once

#include <cstdint>
#include <memory>

#include "autograd/gradcheck.h"
#include "core/batch.h"
#include "core/rng.h"
#include "nn/config.h"
#include "nn/model.h"

namespace qkv {

/// Redraws every parameter larger than the GPT-2 init, so that every gradient is well above the
/// absolute tolerance and a wrong backward cannot hide behind atol: matrices (embeddings
/// included) N(0, 0.5²), LayerNorm weights 1 + N(0, 0.3²), biases and other vectors N(0, 0.3²).
template <typename T>
void randomize_for_gradcheck(Model<T>& model, Rng& rng);

/// A float64 model ready for a gradcheck and the batch it is checked on.
struct ModelGradcheckSetup {
  std::unique_ptr<Model<double>> model;  ///< parameters from `seed`, then randomize_for_gradcheck
  Batch batch;                           ///< random_batch with its defaults: B 2, T 5, padded
};

/// The setup of gradcheck_model(config, seed): the model in eval mode (dropout off), so that the
/// loss is a deterministic function of the parameters. T and S shrink to fit max_len and
/// src_max_len.
ModelGradcheckSetup model_gradcheck_setup(const ModelConfig& config, uint64_t seed);

/// d loss(model, batch) / d every parameter, named as model.named_parameters() names them.
GradcheckReport gradcheck_model(Model<double>& model, const Batch& batch,
                                const GradcheckOptions& options = {});

/// model_gradcheck_setup then gradcheck_model: the whole check of one config.
GradcheckReport gradcheck_model(const ModelConfig& config, uint64_t seed,
                                const GradcheckOptions& options = {});

}  // namespace qkv
