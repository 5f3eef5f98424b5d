#include "apps/loaded.h"

#include <filesystem>

#include <fmt/core.h>

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

}  // namespace qkv::cli
