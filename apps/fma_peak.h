// The machine's arithmetic peak, measured: the float32 FMA throughput of the widest vector
// instructions this binary was compiled for, the denominator of `qkv bench`'s MFU.
//
//   fma_isa();              // "AVX-512", "AVX2+FMA" or "SSE2" (no FMA: a multiply and an add)
//   fma_peak_gflops(2);     // GFLOP/s of 2 threads running independent FMA chains
#pragma once

#include <string>

namespace qkv {

/// The instruction set the peak loop (and Eigen's kernels) were compiled for.
const char* fma_isa();

/// The best of `repeats` runs of about `seconds` each of `threads` OpenMP threads, each issuing
/// independent float32 FMAs (12 chains, enough to cover the latency of two FMA units) at the
/// width of fma_isa(); an FMA counts as 2 FLOPs. Sets the thread count for the whole process.
/// Many short runs, best taken: on a machine shared with other jobs some run finds its cores
/// free, so the figure is the hardware's rather than what the other jobs left over.
double fma_peak_gflops(int threads, double seconds = 0.01, int repeats = 20);

/// The CPU's model name from /proc/cpuinfo ("unknown" where there is none).
std::string cpu_model();

}  // namespace qkv
