// How OpenMP's idle workers wait: qkv runs with OMP_WAIT_POLICY=passive unless the user chose.
#pragma once

namespace qkv::cli {

/// When neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set, sets OMP_WAIT_POLICY=passive and
/// re-executes the program (/proc/self/exe with the same argv); returns only when it did not
/// (already set, or the exec failed: the program then runs with OpenMP's default policy).
/// Call first thing in main(): libgomp reads the variables when it is loaded, before main.
void ensure_passive_wait_policy(char** argv);

}  // namespace qkv::cli
