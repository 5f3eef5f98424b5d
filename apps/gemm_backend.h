// Which GEMM does the work, and OpenBLAS's choice of kernels for this CPU.
#pragma once

#include <string>

namespace qkv::cli {

/// What computes the products, for qkv bench's header and JSON: "Eigen 3.4.0 (own kernels)", or
/// "OpenBLAS 0.3.21 through Eigen, core Zen" (QKV_OPENBLAS builds).
std::string gemm_backend();

/// The OpenBLAS core to force with OPENBLAS_CORETYPE, or nullptr to keep its own choice.
/// OpenBLAS picks its kernels for the CPU when it is loaded. A CPU newer than the library knows
/// gets a generic pre-AVX2 core: Debian's 0.3.21 on an Intel Xeon of family 6 model 207 chose
/// "Prescott" (SSE3) and ran qkv's steps 2–4 times slower than Eigen's own AVX-512 kernels.
/// When the CPU has AVX2 and FMA but OpenBLAS chose a core without them, this names the newest
/// core the CPU can run: "SkylakeX" with AVX-512 F, CD, BW, DQ and VL, else "Haswell". nullptr
/// when OPENBLAS_CORETYPE is already set (the user's choice stands) or in builds without
/// OpenBLAS. Tests pretend OpenBLAS chose a core with QKV_TEST_OPENBLAS_CORE=NAME.
const char* openblas_core_to_force();

}  // namespace qkv::cli
