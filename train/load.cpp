#include "train/load.h"

#include "core/error.h"
#include "train/run_config.h"

namespace qkv {

TrainedModel load_model(const std::string& path) {
  TrainedModel l;
  ModelConfig config;
  l.ckpt = load_model_checkpoint(path, config);  // exactly the parameters its config implies
  l.model = std::make_unique<Model<float>>(config, 0);
  l.model->load_parameters(l.ckpt.params);
  l.model->eval();
  return l;
}

TrainedModel load_trained(const std::string& path) {
  TrainedModel l = load_model(path);
  const ModelConfig& config = l.model->config();
  QKV_CHECK(l.ckpt.task_config.is_object() && l.ckpt.task_config.contains("name"),
            "checkpoint '{}' names no task (/config attr 'task' has no \"name\"); it needs the "
            "task it was trained on",
            path);
  try {
    const StoredVocab stored{l.ckpt.vocab, l.ckpt.src_vocab};
    l.task = make_task_from_config(l.ckpt.task_config, &stored);
    check_model_fits(config, *l.task);
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
  return l;
}

}  // namespace qkv
