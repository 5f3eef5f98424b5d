#include "apps/loaded.h"

#include <filesystem>

#include <fmt/core.h>

#include "autograd/var.h"
#include "core/error.h"
#include "datasets/charlm.h"
#include "train/trainer.h"

namespace qkv::cli {
namespace {

/// A charlm checkpoint whose --data file has moved or gone: its task from the checkpoint's own
/// vocabulary (with a note on stderr), so prompts still tokenise. nullptr for anything else.
std::unique_ptr<Task> charlm_without_its_text(const std::string& path, const Checkpoint& ck) {
  const nlohmann::json& t = ck.task_config;
  if (!t.is_object() || t.value("name", "") != "charlm" || ck.vocab.empty()) return nullptr;
  const auto data = t.find("data");
  if (data == t.end() || !data->is_string() || data->get<std::string>().empty() ||
      std::filesystem::exists(data->get<std::string>()))
    return nullptr;
  fmt::print(stderr,
             "qkv: note: {}: its training text '{}' is not there any more; using the "
             "checkpoint's vocabulary ({} characters)\n",
             path, data->get<std::string>(), ck.vocab.size());
  nlohmann::json options = t;
  options.erase("name");
  return CharLMTask::from_vocabulary(options, ck.vocab);
}

}  // namespace

Loaded load_trained(const std::string& path) {
  Loaded l;
  ModelConfig config;
  l.ckpt = load_model_checkpoint(path, config);
  try {
    l.task = charlm_without_its_text(path, l.ckpt);
    if (!l.task) l.task = make_task_from_config(l.ckpt.task_config);
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
  l.model = std::make_unique<Model<float>>(config, 0);
  l.model->load_parameters(l.ckpt.params);
  l.model->eval();
  return l;
}

std::vector<int32_t> greedy_decode(Model<float>& model, Batch& batch, int32_t eos_id) {
  NoGradGuard no_grad;
  std::vector<int32_t> out;
  batch.targets = IndexTensor();  // the continuation has none; the model computes no loss
  const int64_t max_len = model.config().max_len;
  while (batch.seq_len() < max_len) {
    ForwardResult<float> r = model.forward(batch);
    const Tensor<float>& logits = r.logits.value();  // [1, T, V]
    const int64_t T = logits.size(1), V = logits.size(2);
    const float* last = logits.data() + (T - 1) * V;
    int32_t best = 0;
    for (int64_t v = 1; v < V; ++v)
      if (last[v] > last[best]) best = static_cast<int32_t>(v);
    out.push_back(best);
    // Append the token.
    std::vector<int32_t> ids(batch.tokens.data);
    ids.push_back(best);
    const int64_t n = static_cast<int64_t>(ids.size());
    batch.tokens = IndexTensor({1, n}, ids);
    batch.mask = BoolTensor({1, n}, 1);
    if (best == eos_id) break;
  }
  return out;
}

}  // namespace qkv::cli
