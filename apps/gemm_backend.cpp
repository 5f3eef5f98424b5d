#include "apps/gemm_backend.h"

#include <strings.h>
#include <Eigen/Core>
#include <cstdlib>

#include <cstring>
#include <string>

#include <fmt/format.h>

#ifdef QKV_OPENBLAS
extern "C" char* openblas_get_corename(void);
extern "C" char* openblas_get_config(void);
#endif

namespace qkv::cli {

std::string gemm_backend() {
#ifdef QKV_OPENBLAS
  // openblas_get_config(): "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64"
  std::string config = openblas_get_config();
  const size_t second_space = config.find(' ', config.find(' ') + 1);
  return fmt::format("{} through Eigen, core {}", config.substr(0, second_space),
                     openblas_get_corename());
#else
  return fmt::format("Eigen {}.{}.{} (own kernels)", EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION,
                     EIGEN_MINOR_VERSION);
#endif
}

const char* openblas_core_to_force() {
#ifdef QKV_OPENBLAS
  if (std::getenv("OPENBLAS_CORETYPE")) return nullptr;
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return nullptr;
  const char* pretend = std::getenv("QKV_TEST_OPENBLAS_CORE");
  const char* core = pretend && *pretend ? pretend : openblas_get_corename();
  // The cores of OpenBLAS 0.3.x that use AVX2 and FMA (or AVX-512); any other is a fallback.
  for (const char* good :
       {"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids", "excavator"})
    if (strcasecmp(core, good) == 0) return nullptr;
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vl");
  return avx512 ? "SkylakeX" : "Haswell";
#else
  return nullptr;
#endif
}

}  // namespace qkv::cli
