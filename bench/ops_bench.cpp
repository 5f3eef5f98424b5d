// The element-wise ops of a small model's step, in float32 on one thread, at the shapes of one
// batch shard of `qkv bench --config tiny` (512 rows of d_model 32, d_ff 64): layer norm, GELU
// (both forms) and softmax, forward alone and forward + backward. items/s counts elements.
#include <benchmark/benchmark.h>

#include "autograd/ops.h"
#include "bench/bench_util.h"
#include "core/rng.h"

namespace qkv {
namespace {

/// op(x, w, b) on x [rows, C]; backward with a random upstream gradient when kBackward.
template <bool kBackward, typename Op>
void run(benchmark::State& state, Op op) {
  const int64_t R = state.range(0), C = state.range(1);
  Rng rng(1);
  Var<float> x = bench::randn_var({R, C}, rng), w = bench::randn_var({C}, rng),
             b = bench::randn_var({C}, rng);
  const Tensor<float> g = bench::randn({R, C}, rng);
  for (auto _ : state) {
    Var<float> y = op(x, w, b);
    if constexpr (kBackward) {
      // As in a training step's batch shard: each leaf's gradient starts unwritten, so the op
      // takes the path that writes dx outright, with no zero-fill to time.
      LeafGradScope<float> scope;
      y.backward(g);
      benchmark::DoNotOptimize(scope.grad(x).data());
    }
    benchmark::DoNotOptimize(y.value().data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * R * C);
}

Var<float> layer_norm_op(const Var<float>& x, const Var<float>& w, const Var<float>& b) {
  return layer_norm(x, w, b, 1e-5);
}
Var<float> gelu_erf_op(const Var<float>& x, const Var<float>&, const Var<float>&) {
  return gelu(x, GeluForm::kErf);
}
Var<float> gelu_tanh_op(const Var<float>& x, const Var<float>&, const Var<float>&) {
  return gelu(x, GeluForm::kTanh);
}
Var<float> softmax_op(const Var<float>& x, const Var<float>&, const Var<float>&) {
  return softmax(x);
}

template <Var<float> (*Op)(const Var<float>&, const Var<float>&, const Var<float>&)>
void forward(benchmark::State& state) {
  run<false>(state, Op);
}
template <Var<float> (*Op)(const Var<float>&, const Var<float>&, const Var<float>&)>
void forward_backward(benchmark::State& state) {
  run<true>(state, Op);
}

#define QKV_OP_BENCH(op, rows, cols)                                                  \
  BENCHMARK_TEMPLATE(forward, op)->Args({rows, cols})->Unit(benchmark::kMicrosecond); \
  BENCHMARK_TEMPLATE(forward_backward, op)->Args({rows, cols})->Unit(benchmark::kMicrosecond)

QKV_OP_BENCH(layer_norm_op, 512, 32);
QKV_OP_BENCH(gelu_erf_op, 512, 64);
QKV_OP_BENCH(gelu_tanh_op, 512, 64);
QKV_OP_BENCH(softmax_op, 512, 16);

}  // namespace
}  // namespace qkv

BENCHMARK_MAIN();
