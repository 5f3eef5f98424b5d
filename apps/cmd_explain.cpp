// qkv explain: being written (placeholder so the program links).
#include "apps/commands.h"

namespace qkv::cli {

void add_explain(CLI::App& app) { app.add_subcommand("explain", "(not built yet)"); }

}  // namespace qkv::cli
