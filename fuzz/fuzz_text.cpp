// libFuzzer target: the text readers on any bytes: WinoGrande JSONL (read_winogrande) and the
// charlm task's --data text file (its vocabulary, splits and batches).
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "datasets/charlm.h"
#include "datasets/winogrande.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = qkv::fuzz::input_file(data, size, ".txt");
  try {
    qkv::read_winogrande(path);
  } catch (const qkv::Error& e) {
    qkv::fuzz::check_message(e, path);
  }
  try {
    qkv::CharLMTask task(nlohmann::json{{"data", path}, {"block_size", 2}});
    for (qkv::Split s : qkv::kAllSplits)
      if (task.size(s) > 0) task.batch(s, {0, task.size(s) - 1});
  } catch (const qkv::Error& e) {
    qkv::fuzz::check_message(e, path);
  }
  return 0;
}
