// qkv generate: being written (placeholder so the program links).
#include "apps/commands.h"

namespace qkv::cli {

void add_generate(CLI::App& app) { app.add_subcommand("generate", "(not built yet)"); }

}  // namespace qkv::cli
