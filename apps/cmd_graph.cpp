// qkv graph: being written (placeholder so the program links).
#include "apps/commands.h"

namespace qkv::cli {

void add_graph(CLI::App& app) { app.add_subcommand("graph", "(not built yet)"); }

}  // namespace qkv::cli
