// libFuzzer target: the batch-file loader (read_batch) on any bytes, checked against a decoder,
// an encoder and a seq2seq model.
#include <cstdint>

#include "core/h5.h"
#include "datasets/batch_io.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qkv::fuzz::quick_child_check();
  const std::string& path = qkv::fuzz::input_file(data, size, ".h5");
  for (const char* arch : {"decoder", "encoder", "seq2seq"}) {
    qkv::BatchSpec spec;
    spec.arch = arch;
    spec.vocab_size = 16;
    spec.max_len = 16;
    try {
      qkv::Batch b = qkv::read_batch(path, spec);
      if (b.tokens.shape.nd != 2) std::abort();
    } catch (const qkv::Error& e) {
      qkv::fuzz::check_message(e, path);
    }
  }
  return 0;
}
