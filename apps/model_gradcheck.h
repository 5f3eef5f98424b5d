// Model-level gradient checks shared by `qkv gradcheck` and its tests.
#pragma once

#include <string>

#include "autograd/gradcheck.h"

namespace qkv::cli {

/// Gradchecks every parameter, by name, of a small float64 model of each requested architecture
/// ("encoder", "decoder", "seq2seq" or "all"); config_path, when not empty, replaces the default
/// config. Prints a table per model; true when all pass.
bool check_models(const std::string& arch, const std::string& config_path,
                  const GradcheckOptions& options);

}  // namespace qkv::cli
