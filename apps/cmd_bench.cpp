// qkv bench: being written (placeholder so the program links).
#include "apps/commands.h"

namespace qkv::cli {

void add_bench(CLI::App& app) { app.add_subcommand("bench", "(not built yet)"); }

}  // namespace qkv::cli
