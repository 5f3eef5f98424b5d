// qkv: train toy transformers, gradient-check attention, and see every number of it.
#include <cstdio>

#include <fmt/core.h>

#include "apps/cli_checks.h"
#include "apps/commands.h"
#include "apps/gemm_backend.h"
#include "apps/wait_policy.h"
#include "core/error.h"
#include "core/version.h"
#include "train/distributed.h"

int main(int argc, char** argv) {
  qkv::cli::ensure_run_time_settings(argv);  // may re-execute qkv: before anything else
  qkv::DistributedSession mpi(argc, argv);   // MPI_Init under mpirun (docs/distributed.md)
  CLI::App app{
      "qkv — train toy transformers from scratch, gradient-check the attention backward pass,\n"
      "and see every number of Attention(Q, K, V) = softmax(Q·Kᵀ/√d_k)·V.",
      "qkv"};
  app.set_version_flag("--version",
                       std::string("qkv ") + QKV_VERSION + "\nGEMM: " + qkv::cli::gemm_backend());
  app.require_subcommand(1);
  app.get_formatter()->column_width(34);
  qkv::cli::add_tasks(app);
  qkv::cli::add_train(app);
  qkv::cli::add_eval(app);
  qkv::cli::add_attend(app);
  qkv::cli::add_grads(app);
  qkv::cli::add_generate(app);
  qkv::cli::add_graph(app);
  qkv::cli::add_explain(app);
  qkv::cli::add_gradcheck(app);
  qkv::cli::add_bench(app);
  qkv::cli::check_numbers(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Bad flags and values: one line naming the problem, status 2.
    fmt::print(
        stderr, "qkv: {}\nRun 'qkv --help' (or 'qkv COMMAND --help') for the options.\n",
        qkv::cli::parse_error_message(app, e, std::vector<std::string>(argv + 1, argv + argc)));
    return 2;
  } catch (const qkv::cli::Exit& e) {
    return e.status;
  } catch (const qkv::Error& e) {
    fmt::print(stderr, "qkv: {}\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "qkv: out of memory; try a smaller model or batch size\n");
    return 2;
  }
  return 0;
}
