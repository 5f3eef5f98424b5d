// qkv grads: being written (placeholder so the program links).
#include "apps/commands.h"

namespace qkv::cli {

void add_grads(CLI::App& app) { app.add_subcommand("grads", "(not built yet)"); }

}  // namespace qkv::cli
