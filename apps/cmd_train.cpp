// qkv train: being written (placeholder so the program links).
#include "apps/commands.h"

namespace qkv::cli {

void add_train(CLI::App& app) { app.add_subcommand("train", "(not built yet)"); }

}  // namespace qkv::cli
