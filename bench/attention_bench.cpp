// Attention, forward + backward in float32: the fused op (one pass per (b, h), hand-written
// backward) against the same attention composed from primitives (matmul, transpose, mul_scalar,
// masked_fill, softmax). items/s counts attention rows (query positions × heads × batch) per
// second, forward and backward together. Multi-threaded (OpenMP), so timed in real time.
#include <benchmark/benchmark.h>

#include "autograd/ops.h"
#include "bench/bench_util.h"
#include "core/rng.h"

namespace qkv {
namespace {

/// Args: B, H, T (= S), d (= dv), causal (0 or 1).
template <bool kFused>
void attention_forward_backward(benchmark::State& state) {
  const int64_t B = state.range(0), H = state.range(1), T = state.range(2), d = state.range(3);
  AttnMask mask;
  mask.causal = state.range(4) != 0;
  Rng rng(1);
  Var<float> Q = bench::randn_var({B, H, T, d}, rng), K = bench::randn_var({B, H, T, d}, rng),
             V = bench::randn_var({B, H, T, d}, rng);
  const Tensor<float> dO = bench::randn({B, H, T, d}, rng);
  for (auto _ : state) {
    Q.zero_grad();
    K.zero_grad();
    V.zero_grad();
    Var<float> O =
        kFused ? scaled_dot_product_attention(Q, K, V, mask) : attention_composed(Q, K, V, mask);
    O.backward(dO, /*retain_graph=*/true);  // the graph goes with O; see attention_test.cpp
    benchmark::DoNotOptimize(Q.grad().data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * B * H * T);
}

void sizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"B", "H", "T", "d", "causal"});
  for (int causal : {0, 1}) {
    b->Args({16, 4, 64, 32, causal});
    b->Args({8, 4, 128, 64, causal});
    b->Args({64, 1, 16, 32, causal});
  }
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK_TEMPLATE(attention_forward_backward, true)->Name("fused")->Apply(sizes);
BENCHMARK_TEMPLATE(attention_forward_backward, false)->Name("composed")->Apply(sizes);

}  // namespace
}  // namespace qkv

BENCHMARK_MAIN();
