// Rng: a seeded xoshiro256** generator with uniform, normal and permutation draws. Its whole
// state is four 64-bit words, saved and restored for bit-exact resume.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

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
  /// A uniformly random permutation of 0..n-1 (Fisher–Yates).
  std::vector<int64_t> permutation(int64_t n);
  /// An independent stream derived from this one (advances this one by one draw).
  Rng split() { return Rng(next_u64()); }

 private:
  State s_{};
};

}  // namespace qkv
