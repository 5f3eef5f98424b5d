// Why passive: by default libgomp's idle workers spin for a while at every barrier before they
// sleep. On a machine whose cores are busy with other jobs, a spinning worker takes the core from
// the partner it waits for, and each of the thousands of small parallel loops of a training step
// pays for it: `qkv train --task pronoun --threads 2` took 35 s for 200 steps against 6.5 s at one
// thread (2-core AMD EPYC, load average 5.8). With OMP_WAIT_POLICY=passive workers sleep at once
// and the same run took 3.9 s, no slower than one thread. A limited spin (GOMP_SPINCOUNT=10000)
// was not enough (16 s). libgomp reads the variable once, when the library is loaded, so setting
// it inside main() is too late: the program sets it and runs itself again.
#include "apps/wait_policy.h"

#include "apps/gemm_backend.h"

#include <sys/auxv.h>
#include <unistd.h>

#include <cstdlib>

namespace qkv::cli {
namespace {

/// True when the program was started through the dynamic loader by hand
/// (`ld-linux-x86-64.so.2 --library-path lib qkv …`): /proc/self/exe is then the loader, and
/// running it again with qkv's argv would run the loader on qkv's flags. The kernel then loaded
/// the loader as the program itself, with no interpreter, so AT_BASE (the interpreter's address)
/// is 0; a normal exec of the dynamically linked qkv sets it.
bool started_by_the_loader() {
  return getauxval(AT_BASE) == 0;
}

}  // namespace

void ensure_run_time_settings(char** argv) {
  // Each setting is read when its library is loaded, before main: set them all, then one exec.
  bool changed = false;
  if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT"))
    changed |= ::setenv("OMP_WAIT_POLICY", "passive", 1) == 0;
  if (const char* core = openblas_core_to_force())
    changed |= ::setenv("OPENBLAS_CORETYPE", core, 1) == 0;
  // Started through the loader by hand: libgomp's default policy and OpenBLAS's own core (set
  // OMP_WAIT_POLICY and OPENBLAS_CORETYPE to choose).
  if (!changed || started_by_the_loader()) return;
  ::execv("/proc/self/exe", argv);
  // Still here: the exec failed (no /proc); run on with the libraries' defaults.
}

}  // namespace qkv::cli
