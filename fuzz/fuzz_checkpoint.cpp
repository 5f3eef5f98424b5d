// libFuzzer target: the checkpoint loader (load_model_checkpoint, then load_checkpoint) on any
// bytes. Files without qkv's checksum header take the path h5py files take: read in full by a
// child process first (the crash, hang or memory blow-up of HDF5 1.10 stays there).
#include <cstdint>

#include "core/h5.h"
#include "fuzz_input.h"
#include "train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qkv::fuzz::quick_child_check();
  const std::string& path = qkv::fuzz::input_file(data, size, ".h5");
  try {
    qkv::ModelConfig config;
    qkv::Checkpoint c = qkv::load_model_checkpoint(path, config);
    if (c.params.empty()) std::abort();  // a model has parameters
  } catch (const qkv::Error& e) {
    qkv::fuzz::check_message(e, path);
  }
  try {
    qkv::load_checkpoint(path);
  } catch (const qkv::Error& e) {
    qkv::fuzz::check_message(e, path);
  }
  return 0;
}
