// A binary built with QKV_NATIVE (-march=native) uses every instruction set of the machine that
// built it. Copied to a CPU without one of them (an AVX-512 build on an AVX2-only machine), it
// would die of SIGILL somewhere in Eigen. This check runs before anything else in the program (a
// constructor of the highest priority, compiled for the baseline x86-64 instruction set) and
// instead ends it with one line naming what is missing and how to build a binary that runs here.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

struct Feature {
  const char* name;  // as __builtin_cpu_supports and /proc/cpuinfo spell it
  bool supported;
};

// The features this translation unit was compiled for (qkv's libraries are compiled with the same
// flags), each with whether this CPU has it. __builtin_cpu_supports needs a literal argument.
#define QKV_FEATURE(name)                   \
  Feature {                                 \
    name, __builtin_cpu_supports(name) != 0 \
  }

__attribute__((target("arch=x86-64"), constructor(101))) void check_cpu_supports_build() {
  __builtin_cpu_init();
  const Feature needed[] = {
#ifdef __SSE4_2__
      QKV_FEATURE("sse4.2"),
#endif
#ifdef __AVX__
      QKV_FEATURE("avx"),
#endif
#ifdef __AVX2__
      QKV_FEATURE("avx2"),
#endif
#ifdef __FMA__
      QKV_FEATURE("fma"),
#endif
#ifdef __BMI2__
      QKV_FEATURE("bmi2"),
#endif
#ifdef __AVX512F__
      QKV_FEATURE("avx512f"),
#endif
#ifdef __AVX512BW__
      QKV_FEATURE("avx512bw"),
#endif
#ifdef __AVX512DQ__
      QKV_FEATURE("avx512dq"),
#endif
#ifdef __AVX512VL__
      QKV_FEATURE("avx512vl"),
#endif
      Feature{"x86-64", true},
  };
  // Tests pretend a feature is missing with QKV_TEST_CPU_LACKS=NAME.
  const char* pretend = std::getenv("QKV_TEST_CPU_LACKS");
  for (const Feature& f : needed) {
    if (f.supported && !(pretend && std::strcmp(pretend, f.name) == 0)) continue;
    std::fprintf(stderr,
                 "qkv: this program was built for another CPU and uses %s, which this CPU lacks "
                 "(the compiler's -march, set by the CMake option QKV_NATIVE or by CXXFLAGS); "
                 "build qkv on this machine, or configure with -DQKV_NATIVE=OFF and no -march "
                 "for a binary that runs on any x86-64\n",
                 f.name);
    std::_Exit(2);
  }
}

#undef QKV_FEATURE

}  // namespace

#endif
