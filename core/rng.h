// Rng: a seeded xoshiro256** generator with uniform, normal and permutation draws. Its whole
// state is four 64-bit words, saved and restored for bit-exact resume.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

#include "core/error.h"

namespace qkv {

class Rng {
 public:
  using State = std::array<uint64_t, 4>;

  explicit Rng(uint64_t seed = 0) { seed_(seed); }

  /// Reseeds; the same seed always gives the same stream.
  void seed_(uint64_t seed);
  const State& state() const { return s_; }
  void set_state(const State& s) { s_ = s; }

  /// 64 random bits.
  uint64_t next_u64();
  /// Uniform in [0, 1) with 53 bits of precision.
  double uniform();
  /// Uniform in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Uniform integer in [0, n); n > 0. Unbiased (Lemire's method).
  uint64_t below(uint64_t n);
  /// Standard normal (Box–Muller; one draw per call, no cached second value, so the state is
  /// exactly the four words).
  double normal();
  double normal(double mean, double stddev) { return mean + stddev * normal(); }
  /// A uniformly random permutation of 0..n-1 (Fisher–Yates), as indices of type I: the draws,
  /// and so the order, do not depend on I (a narrow I halves the memory of a long order).
  template <typename I = int64_t>
  std::vector<I> permutation(int64_t n) {
    QKV_CHECK(n >= 0 && static_cast<uint64_t>(n) <= uint64_t{std::numeric_limits<I>::max()} + 1,
              "Rng::permutation: n must be between 0 and {}, got {}",
              uint64_t{std::numeric_limits<I>::max()} + 1, n);
    std::vector<I> p(static_cast<size_t>(n));
    std::iota(p.begin(), p.end(), I{0});
    for (int64_t i = n - 1; i > 0; --i) {
      auto j = static_cast<size_t>(below(static_cast<uint64_t>(i + 1)));
      std::swap(p[static_cast<size_t>(i)], p[j]);
    }
    return p;
  }
  /// An independent stream derived from this one (advances this one by one draw).
  Rng split() { return Rng(next_u64()); }

 private:
  State s_{};
};

}  // namespace qkv
