// A GEMM for the thin products of small models: no packing of A, whole K in one sweep.
//
// A BLAS GEMM copies ("packs") both operands into cache-sized panels before its micro-kernel
// runs. For the products of a small model, [1024, 32] · [32, 32], that copy costs a third as
// much as the arithmetic, and so does zero-filling C before β = 1 (perf of `qkv bench --config
// tiny`: kernel 42 %, packing 15 %, memset 5 %). Here the micro-kernel reads A in place, one
// broadcast scalar per row and k, and B as rows of contiguous packets; C is written once, with its
// initial value (zero, a bias row, or C itself) loaded into the accumulators. Only K is blocked
// (kDepth): it is for weights that fit in L1, and linear() only calls it there
// (kSmallGemmMaxWeight).
//
// Each C element is Σ_k in increasing k, added to its initial value first: the result does not
// depend on the tile a row falls in, on alignment, or on the thread count.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace qkv::gemm {

using Packet = Eigen::internal::packet_traits<float>::type;
inline constexpr int kPacket = Eigen::internal::packet_traits<float>::size;
inline constexpr int kRows = 6;  // MR: 6 rows × 2 packets = 12 accumulators, 16 registers on AVX2

/// Where C's initial value comes from.
enum class Init { kZero, kBias, kAccumulate };

/// C[0:MR, 0:NP·kPacket] = init + Σ_k A(m, k) · B(k, n), with A(m, k) = a[m·a_m + k·a_k] and
/// B(k, n) = b[k·ldb + n]. Always inlined into its band: left to itself, GCC calls the 4- and
/// 5-row tiles once per two packets of columns; inlined, tiny's step was 2 % faster (qkv bench,
/// interleaved, AMD Zen 3).
template <int MR, int NP>
[[gnu::always_inline]] inline void tile(int64_t K, const float* a, int64_t a_m, int64_t a_k,
                                        const float* b, int64_t ldb, float* c, int64_t ldc,
                                        const float* bias, Init init) {
  namespace ei = Eigen::internal;
  Packet acc[MR][NP];
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NP; ++j)
      acc[m][j] = init == Init::kAccumulate ? ei::ploadu<Packet>(c + m * ldc + j * kPacket)
                  : bias                    ? ei::ploadu<Packet>(bias + j * kPacket)
                                            : ei::pset1<Packet>(0.0f);
  for (int64_t k = 0; k < K; ++k) {
    const float* bk = b + k * ldb;
    const float* ak = a + k * a_k;
    Packet bv[NP];
    for (int j = 0; j < NP; ++j) bv[j] = ei::ploadu<Packet>(bk + j * kPacket);
    for (int m = 0; m < MR; ++m) {
      const Packet av = ei::pset1<Packet>(ak[m * a_m]);
      for (int j = 0; j < NP; ++j) acc[m][j] = ei::pmadd(av, bv[j], acc[m][j]);
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NP; ++j) ei::pstoreu(c + m * ldc + j * kPacket, acc[m][j]);
}

/// Columns [n0, N) of rows [0, MR), narrower than a packet: the same sums, one scalar at a time.
template <int MR>
inline void tail(int64_t n0, int64_t N, int64_t K, const float* a, int64_t a_m, int64_t a_k,
                 const float* b, int64_t ldb, float* c, int64_t ldc, const float* bias, Init init) {
  for (int m = 0; m < MR; ++m)
    for (int64_t n = n0; n < N; ++n) {
      float s = init == Init::kAccumulate ? c[m * ldc + n] : bias ? bias[n] : 0.0f;
      for (int64_t k = 0; k < K; ++k) s += a[m * a_m + k * a_k] * b[k * ldb + n];
      c[m * ldc + n] = s;
    }
}

/// One band of MR rows across all N columns: panels of two packets, then one, then scalars.
template <int MR>
inline void band(int64_t N, int64_t K, const float* a, int64_t a_m, int64_t a_k, const float* b,
                 int64_t ldb, float* c, int64_t ldc, const float* bias, Init init) {
  int64_t n = 0;
  for (; n + 2 * kPacket <= N; n += 2 * kPacket)
    tile<MR, 2>(K, a, a_m, a_k, b + n, ldb, c + n, ldc, bias ? bias + n : nullptr, init);
  for (; n + kPacket <= N; n += kPacket)
    tile<MR, 1>(K, a, a_m, a_k, b + n, ldb, c + n, ldc, bias ? bias + n : nullptr, init);
  if (n < N) tail<MR>(n, N, K, a, a_m, a_k, b, ldb, c, ldc, bias, init);
}

/// C [M, N] (row stride ldc) = init + A · B, A(m, k) = a[m·a_m + k·a_k] (row-major A: a_m = lda,
/// a_k = 1; Aᵀ of a row-major matrix: a_m = 1, a_k = its row stride), B row-major [K, N].
/// init: kZero, kBias (bias[n], N floats) or kAccumulate (C += A · B).
/// K is cut into blocks of kDepth so that a block's rows of B and columns of A stay in L1 while
/// every band reads them (dW = Gᵀ·X has K = all the rows of a batch); C carries the sum from one
/// block to the next, in float as the accumulators do, so the cut changes no bit.
inline constexpr int64_t kDepth = 64;

/// band<r> for the r < kRows rows left below the last full band.
using BandFn = void (*)(int64_t, int64_t, const float*, int64_t, int64_t, const float*, int64_t,
                        float*, int64_t, const float*, Init);
inline constexpr BandFn kRemainderBand[kRows] = {nullptr, band<1>, band<2>,
                                                 band<3>, band<4>, band<5>};
static_assert(kRows == 6, "kRemainderBand lists the bands of 1 to kRows − 1 rows");

inline void small_gemm(int64_t M, int64_t N, int64_t K, const float* a, int64_t a_m, int64_t a_k,
                       const float* b, int64_t ldb, float* c, int64_t ldc, const float* bias,
                       Init init) {
  int64_t k0 = 0;
  do {  // at least once: K = 0 still sets C to its initial value
    const int64_t kc = std::min(kDepth, K - k0);
    const float* ak = a + k0 * a_k;
    const float* bk = b + k0 * ldb;
    const Init start = k0 == 0 ? init : Init::kAccumulate;
    const float* bias_k = start == Init::kBias ? bias : nullptr;  // read only if start is kBias
    // Bands of kRows = 6 rows (2 · 6 FMA chains) and, for what 6 does not divide, bands of 5 (10
    // chains) where M allows: M = 6a + 5b, b = (6 − M mod 6) mod 6, so that 32 rows go as 6, 6,
    // 5, 5, 5, 5 and 16 as 6, 5, 5. Narrower bands have too few chains to hide the FMA latency
    // (4 rows: 8). Below 20 rows, where M may not be 6a + 5b, the last M mod 6 rows follow the
    // full bands, and 7 or 8 go as 4 + 3 or 4 + 4 rather than as a full band and 1 or 2 rows.
    const int64_t fives = (kRows - M % kRows) % kRows, rem = M % kRows;
    const bool by_fives = 5 * fives <= M;
    const int64_t tail_rows = by_fives                              ? 5 * fives
                              : (rem == 1 || rem == 2) && M > kRows ? rem + kRows
                                                                    : rem;
    int64_t m = 0;
    for (; m + tail_rows < M; m += kRows)
      band<kRows>(N, kc, ak + m * a_m, a_m, a_k, bk, ldb, c + m * ldc, ldc, bias_k, start);
    for (int64_t rest = M - m; rest > 0;) {
      const int64_t r = by_fives ? 5 : rest > kRows ? 4 : rest;  // 7, 8 → 4 + (3, 4)
      kRemainderBand[r](N, kc, ak + m * a_m, a_m, a_k, bk, ldb, c + m * ldc, ldc, bias_k, start);
      m += r;
      rest -= r;
    }
    k0 += kc;
  } while (k0 < K);
}

/// small_gemm when `use` is true and T is float, returning true; otherwise false and nothing done,
/// for the caller to take its Eigen path. One place for the float-only dispatch of every caller.
template <typename T>
bool small_gemm_if(bool use, int64_t M, int64_t N, int64_t K, const T* a, int64_t a_m, int64_t a_k,
                   const T* b, int64_t ldb, T* c, int64_t ldc,
                   const std::common_type_t<T>* bias,  // not deduced: a nullptr bias is fine
                   Init init) {
  if constexpr (std::is_same_v<T, float>) {
    if (use) {
      small_gemm(M, N, K, a, a_m, a_k, b, ldb, c, ldc, bias, init);
      return true;
    }
  }
  return false;
}

}  // namespace qkv::gemm
