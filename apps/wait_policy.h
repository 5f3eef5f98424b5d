// How OpenMP's idle workers wait (OMP_WAIT_POLICY=passive unless the user chose) and which
// OpenBLAS kernels run: settings made before main, by running the program again.
#pragma once

namespace qkv::cli {

/// Settings the libraries read when they are loaded, so set before main runs: when neither
/// OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set, OMP_WAIT_POLICY=passive; when OpenBLAS fell back
/// to a generic core on a CPU with AVX2 (openblas_core_to_force, apps/gemm_backend.h),
/// OPENBLAS_CORETYPE. Sets what is missing and re-executes the program (/proc/self/exe with the
/// same argv); returns only when it did not (nothing to set, started through the dynamic loader
/// by hand, or the exec failed: the program then runs with the libraries' defaults).
/// Call first thing in main().
void ensure_run_time_settings(char** argv);

}  // namespace qkv::cli
