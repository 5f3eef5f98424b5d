// The qkv command line: one program, one file per subcommand. Each add_* registers its
// subcommand's options on the app and a callback that does the work.
//
// Exit status: 0 success, 1 a failed check (gradcheck, eval threshold), 2 bad input (bad flags,
// unreadable or invalid files) — thrown as qkv::Error and printed as one line by main().
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace qkv::cli {

/// Thrown by a command to exit with `status` after printing nothing more.
struct Exit {
  int status;
};

void add_gradcheck(CLI::App& app);
void add_train(CLI::App& app);
void add_eval(CLI::App& app);
void add_attend(CLI::App& app);
void add_grads(CLI::App& app);
void add_generate(CLI::App& app);
void add_graph(CLI::App& app);
void add_explain(CLI::App& app);
void add_bench(CLI::App& app);
void add_tasks(CLI::App& app);

/// The text `qkv tasks` prints: one line per registered task.
std::string task_lines();

}  // namespace qkv::cli
