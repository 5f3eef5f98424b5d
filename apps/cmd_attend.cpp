// qkv attend: being written (placeholder so the program links).
#include "apps/commands.h"

namespace qkv::cli {

void add_attend(CLI::App& app) { app.add_subcommand("attend", "(not built yet)"); }

}  // namespace qkv::cli
