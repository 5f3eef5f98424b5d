// qkv eval: being written (placeholder so the program links).
#include "apps/commands.h"

namespace qkv::cli {

void add_eval(CLI::App& app) { app.add_subcommand("eval", "(not built yet)"); }

}  // namespace qkv::cli
