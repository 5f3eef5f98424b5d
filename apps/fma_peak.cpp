// The FMA peak loop: 12 accumulators, each updated as acc = acc·m + a with m = 0.999 and
// a = 0.001, so every value stays near 1 (no overflow, no denormals) and the chains never wait on
// each other: the loop runs as fast as the FMA units issue. Intrinsics, not `acc * m + a`:
// with -std=c++17 GCC does not contract a multiply and an add into an FMA.
#include "apps/fma_peak.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>

namespace qkv {
namespace {

constexpr int kChains = 12;

#if defined(__AVX512F__)
using Vec = __m512;
constexpr int kLanes = 16;
constexpr int kFlopsPerOp = 2;
inline Vec splat(float x) {
  return _mm512_set1_ps(x);
}
inline Vec madd(Vec acc, Vec m, Vec a) {
  return _mm512_fmadd_ps(acc, m, a);
}
inline float first(Vec v) {
  return _mm512_cvtss_f32(v);
}
constexpr const char* kIsa = "AVX-512";
#elif defined(__AVX2__) && defined(__FMA__)
using Vec = __m256;
constexpr int kLanes = 8;
constexpr int kFlopsPerOp = 2;
inline Vec splat(float x) {
  return _mm256_set1_ps(x);
}
inline Vec madd(Vec acc, Vec m, Vec a) {
  return _mm256_fmadd_ps(acc, m, a);
}
inline float first(Vec v) {
  return _mm256_cvtss_f32(v);
}
constexpr const char* kIsa = "AVX2+FMA";
#else
using Vec = __m128;
constexpr int kLanes = 4;
constexpr int kFlopsPerOp = 2;  // a multiply and an add
inline Vec splat(float x) {
  return _mm_set1_ps(x);
}
inline Vec madd(Vec acc, Vec m, Vec a) {
  return _mm_add_ps(_mm_mul_ps(acc, m), a);
}
inline float first(Vec v) {
  return _mm_cvtss_f32(v);
}
constexpr const char* kIsa = "SSE2";
#endif

/// `iters` rounds of kChains independent multiply-adds; returns a value that depends on all.
__attribute__((noinline)) float fma_chains(int64_t iters) {
  const Vec m = splat(0.999f), a = splat(0.001f);
  Vec acc[kChains];
  for (Vec& v : acc) v = splat(1.0f);
  for (int64_t i = 0; i < iters; ++i)
    for (Vec& v : acc) v = madd(v, m, a);
  float sum = 0;
  for (const Vec& v : acc) sum += first(v);
  return sum;
}

/// Seconds that `threads` threads take for `iters` rounds each (all started together).
double timed_run(int threads, int64_t iters) {
  volatile float sink = 0;
  const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
  {
    const float s = fma_chains(iters);
#pragma omp critical
    sink = sink + s;
  }
  const auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double>(t1 - t0).count();
}

}  // namespace

const char* fma_isa() {
  return kIsa;
}

double fma_peak_gflops(int threads, double seconds, int repeats) {
  omp_set_dynamic(0);
  omp_set_num_threads(threads);
  constexpr double kFlopsPerIter = double{kChains} * kLanes * kFlopsPerOp;
  // Calibrate the rounds to about `seconds` on one short run.
  int64_t iters = 100000;
  const double t = timed_run(threads, iters);
  iters = std::max<int64_t>(iters, static_cast<int64_t>(iters * seconds / std::max(t, 1e-6)));
  double best = 0;
  for (int r = 0; r < repeats; ++r) {
    const double s = timed_run(threads, iters);
    best = std::max(best, threads * static_cast<double>(iters) * kFlopsPerIter / s / 1e9);
  }
  return best;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        const size_t begin = line.find_first_not_of(' ', colon + 1);
        if (begin != std::string::npos) return line.substr(begin);
      }
    }
  return "unknown";
}

}  // namespace qkv
