// The three products of linear() in float32, Eigen's GEMM (over OpenBLAS in the default build)
// against the packing-free kernel of autograd/gemm_kernel.h, on the layer shapes of the four
// `qkv bench` configurations (1024 rows each). One thread. What linear() uses for which weight
// size (kSmallGemmMaxWeight in autograd/ops_matmul.cpp) was chosen from these figures:
//   build/bench/gemm_bench --benchmark_min_time=0.2
// items/s counts multiply-adds per second.
#include <benchmark/benchmark.h>

#include "autograd/gemm_kernel.h"
#include "bench/bench_util.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace qkv {
namespace {

enum Product { kForward, kGradInput, kGradWeight };

/// Args: R, in, out, product (0 Y = X·Wᵀ + b, 1 dX += G·W, 2 dW += Gᵀ·X).
template <bool kKernel>
void linear_product(benchmark::State& state) {
  const int64_t R = state.range(0), in = state.range(1), out = state.range(2);
  const auto product = static_cast<Product>(state.range(3));
  Rng rng(1);
  Tensor<float> X = bench::randn({R, in}, rng), W = bench::randn({out, in}, rng),
                b = bench::randn({out}, rng), G = bench::randn({R, out}, rng),
                Y = bench::randn({R, out}, rng), dX = bench::randn({R, in}, rng),
                dW = bench::randn({out, in}, rng), Wt = bench::randn({in, out}, rng);
  for (auto _ : state) {
    if (product == kForward) {
      if (kKernel) {
        Wt.mat(in, out) = W.mat(out, in).transpose();  // the packing linear() does per call
        gemm::small_gemm(R, out, in, X.data(), in, 1, Wt.data(), out, Y.data(), out, b.data(),
                         gemm::Init::kBias);
      } else {
        Y.mat(R, out).noalias() = X.mat(R, in) * W.mat(out, in).transpose();
        Y.mat(R, out).rowwise() += b.vec().transpose();
      }
    } else if (product == kGradInput) {
      if (kKernel)
        gemm::small_gemm(R, in, out, G.data(), out, 1, W.data(), in, dX.data(), in, nullptr,
                         gemm::Init::kAccumulate);
      else
        dX.mat(R, in).noalias() += G.mat(R, out) * W.mat(out, in);
    } else {
      if (kKernel)
        gemm::small_gemm(out, in, R, G.data(), 1, out, X.data(), in, dW.data(), in, nullptr,
                         gemm::Init::kAccumulate);
      else
        dW.mat(out, in).noalias() += G.mat(R, out).transpose() * X.mat(R, in);
    }
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * R * in * out);
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"R", "in", "out", "product"});
  const int64_t layers[][2] = {{32, 32},    {32, 64},    {64, 32},   {64, 64},    {64, 128},
                               {128, 64},   {128, 128},  {128, 512}, {512, 128},  {256, 256},
                               {256, 1024}, {1024, 256}, {512, 512}, {512, 2048}, {2048, 512}};
  for (const auto& l : layers)
    for (int p = 0; p < 3; ++p) b->Args({1024, l[0], l[1], p});
}

BENCHMARK_TEMPLATE(linear_product, false)->Apply(shapes);
BENCHMARK_TEMPLATE(linear_product, true)->Apply(shapes);

}  // namespace
}  // namespace qkv

BENCHMARK_MAIN();
