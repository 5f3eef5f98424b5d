// libFuzzer target: the configuration parsers on any JSON text: {"model": …, "train": …,
// "task": …} as a checkpoint's /config holds them (ModelConfig, TrainConfig, the task's options).
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_input.h"
#include "nn/config.h"
#include "train/trainer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return 0;
  auto part = [&](const char* key) { return j.contains(key) ? j[key] : nlohmann::json::object(); };
  try {
    qkv::ModelConfig m = qkv::ModelConfig::from_json(part("model"));
    qkv::param_shapes(m);
  } catch (const qkv::Error& e) {
    qkv::fuzz::check_message(e, "");
  }
  try {
    qkv::TrainConfig::from_json(part("train")).validate();
  } catch (const qkv::Error& e) {
    qkv::fuzz::check_message(e, "");
  }
  // A task reads its options; "data" (a text file to read) is left to the text target.
  nlohmann::json task = part("task");
  if (task.is_object() && !task.contains("data")) {
    try {
      qkv::make_task_from_config(task);
    } catch (const qkv::Error& e) {
      qkv::fuzz::check_message(e, "");
    }
  }
  return 0;
}
