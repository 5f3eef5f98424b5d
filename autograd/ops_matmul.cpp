// matmul and linear: the GEMMs of the training hot path.
//
// Every product is one Eigen GEMM over row-major maps with noalias(), written straight into the
// output (or accumulated straight into the gradient buffer): no temporaries beyond the output.
// Eigen itself runs single-threaded (EIGEN_DONT_PARALLELIZE), and so does OpenBLAS when Eigen
// hands it the GEMMs (QKV_OPENBLAS, below); the cores come from an OpenMP loop over *tasks*, each
// owning a disjoint block of what it writes (whole matrices of a batch, row blocks of Y / dX / dA,
// row blocks of dW / dB). How the blocks are cut depends only on the shapes, never on the thread
// count, and each block is always the same Eigen call, so the results are bitwise identical run to
// run and for any OMP_NUM_THREADS.
#include <algorithm>
#include <type_traits>

#include "autograd/gemm_kernel.h"
#include "autograd/kernels.h"
#include "autograd/ops.h"

#ifdef QKV_OPENBLAS
extern "C" void openblas_set_num_threads(int);
#endif

namespace qkv {
namespace {

#ifdef QKV_OPENBLAS
// Built with QKV_OPENBLAS, Eigen's products call OpenBLAS, whose own threads would compete with
// the OpenMP tasks below: one thread per call, set before main.
[[maybe_unused]] const bool kBlasSingleThreaded = (openblas_set_num_threads(1), true);
#endif

/// Multiply-adds below which one thread does it all. Tried higher: 4M kept every product of the
/// tiny configuration on one thread, but made the pronoun task's training (2 threads, products
/// of 2–8M) 20–30 % slower (AMD EPYC, Zen 3), and 2M did too; with the small kernel tiny at 2
/// threads is about as fast as at one with this value.
constexpr double kParallelWork = 65536;
constexpr int64_t kTargetTasks = 8;    // enough tasks for the threads to balance
constexpr int64_t kMinBlockRows = 32;  // no slivers: the GEMM micro-kernel wants tall blocks

/// linear() in float with a weight of at most this many elements uses the packing-free kernel of
/// gemm_kernel.h for all three products; bigger weights go to Eigen's GEMM (over OpenBLAS in the
/// default build). bench/gemm_bench.cpp, one thread, AMD EPYC (Zen 3, AVX2): the kernel ran the
/// products of 32 × 32, 32 × 64 and 64 × 32 weights 1.1–2.2 × as fast as OpenBLAS, and those of
/// 128 × 128 and up at 0.4–0.8 ×.
constexpr int64_t kSmallGemmMaxWeight = 64 * 64;

template <typename T>
bool small_weight(int64_t in, int64_t out) {
  return std::is_same_v<T, float> && in * out <= kSmallGemmMaxWeight;
}

/// How many row blocks to cut each of `mats` matrices of `rows` rows into, for `work` multiply-adds
/// in all. A function of the shapes only.
int64_t row_blocks(int64_t mats, int64_t rows, double work) {
  if (work < kParallelWork || mats >= kTargetTasks) return 1;
  const int64_t want = (kTargetTasks + mats - 1) / mats;
  return std::max<int64_t>(1, std::min(want, rows / kMinBlockRows));
}

/// Rows [begin, begin + size) of block `b` of `nb` equal blocks of `rows`, each starting at a
/// multiple of `align`: the small kernel's row bands (gemm::kRows), so that only a matrix's last
/// block ends in a narrower band, not every block (64-row blocks of 6-row bands left 4 rows of
/// each to the slower 4-row tile). Blocks are at least kMinBlockRows ≥ align rows, so none is
/// empty.
struct Rows {
  int64_t begin, size;
};
static_assert(kMinBlockRows >= gemm::kRows, "an aligned block must keep at least one row");
Rows block(int64_t rows, int64_t nb, int64_t b, int64_t align = 1) {
  const int64_t r0 = rows * b / nb / align * align;
  const int64_t r1 = b + 1 == nb ? rows : rows * (b + 1) / nb / align * align;
  return {r0, r1 - r0};
}

/// Runs fn(task) for every task in [0, n), on all threads when the work is worth it.
template <typename F>
void run_tasks(int64_t n, double work, const F& fn) {
  parallel_for(n, work >= kParallelWork, fn);
}

/// The batch layout of a · b: out[i] = a[ia(i)] · b[ib(i)] for the `no` output matrices, with
/// the batch axes (at most two, padded on the left with 1) broadcast as torch.matmul does.
struct Plan {
  int64_t N = 0, K = 0, M = 0;
  int64_t na = 1, nb = 1, no = 1;  // matrices in a, b, out
  int64_t ob1 = 1;                 // inner out batch size
  int64_t as0 = 0, as1 = 0;  // a's batch strides (in matrices) per out batch axis; 0 = broadcast
  int64_t bs0 = 0, bs1 = 0;
  Shape out;
  int64_t ia(int64_t i) const { return (i / ob1) * as0 + (i % ob1) * as1; }
  int64_t ib(int64_t i) const { return (i / ob1) * bs0 + (i % ob1) * bs1; }
};

Plan plan(const Shape& sa, const Shape& sb) {
  QKV_CHECK(sa.nd >= 2 && sb.nd >= 2,
            "matmul: needs operands of at least 2 dimensions, got {} · {}", sa, sb);
  QKV_CHECK(sa[-1] == sb[-2], "matmul: inner dimensions differ: {} · {}", sa, sb);
  Plan p;
  p.N = sa[-2];
  p.K = sa[-1];
  p.M = sb[-1];
  const int nba = sa.nd - 2, nbb = sb.nd - 2, nbo = std::max(nba, nbb);
  int64_t a[2] = {1, 1}, b[2] = {1, 1}, o[2] = {1, 1};
  for (int d = 0; d < nba; ++d) a[2 - nba + d] = sa[d];
  for (int d = 0; d < nbb; ++d) b[2 - nbb + d] = sb[d];
  for (int d = 0; d < 2; ++d) {
    QKV_CHECK(a[d] == b[d] || a[d] == 1 || b[d] == 1,
              "matmul: batch dimensions do not broadcast: {} · {}", sa, sb);
    o[d] = std::max(a[d], b[d]);
  }
  p.na = a[0] * a[1];
  p.nb = b[0] * b[1];
  p.no = o[0] * o[1];
  p.ob1 = o[1];
  p.as0 = a[0] == 1 ? 0 : a[1];
  p.as1 = a[1] == 1 ? 0 : 1;
  p.bs0 = b[0] == 1 ? 0 : b[1];
  p.bs1 = b[1] == 1 ? 0 : 1;
  int64_t dims[kMaxDims];
  for (int d = 0; d < nbo; ++d) dims[d] = o[2 - nbo + d];
  dims[nbo] = p.N;
  dims[nbo + 1] = p.M;
  p.out = Shape::of(dims, nbo + 2);
  // One b for every matrix of a (b 2-D, or a batch of one): a's matrices are consecutive rows, so
  // the whole product is ONE GEMM of [na·N, K] · [K, M].
  if (p.nb == 1 && p.no == p.na) {
    p.N *= p.na;
    p.na = p.no = 1;
    p.ob1 = 1;
    p.as0 = p.as1 = 0;
  }
  return p;
}

}  // namespace

// matmul: out[i] = A[ia(i)] · B[ib(i)] for every output matrix i, A [N, K], B [K, M].
// Backward, given G = dL/dout:
//   in the forward pass this was out_nm = Σ_k A_nk B_km, so ∂out_nm/∂A_nk = B_km and
//   ∂out_nm/∂B_km = A_nk; summing over what each element fed (and over every output matrix that a
//   broadcast matrix fed) we now have
//     dA[ja] += Σ_{i: ia(i)=ja} G[i] · B[ib(i)]ᵀ        tasks: row blocks of each dA[ja]
//     dB[jb] += Σ_{i: ib(i)=jb} A[ia(i)]ᵀ · G[i]        tasks: row blocks (K) of each dB[jb]
//   each task sums its i in increasing order, so a broadcast sum never depends on the threads.
template <typename T>
Var<T> matmul(const Var<T>& a, const Var<T>& b) {
  const Plan p = plan(a.shape(), b.shape());
  Tensor<T> y = Tensor<T>::empty(p.out);
  const T* A = a.value().data();
  const T* B = b.value().data();
  T* Y = y.data();
  const int64_t N = p.N, K = p.K, M = p.M;
  const double work = static_cast<double>(p.no) * N * K * M;
  const int64_t nblk = row_blocks(p.no, N, work);
  run_tasks(p.no * nblk, work, [&](int64_t t) {
    const int64_t i = t / nblk;
    const Rows r = block(N, nblk, t % nblk);
    RowsMap<T>(Y + i * N * M + r.begin * M, r.size, M).noalias() =
        ConstRowsMap<T>(A + p.ia(i) * N * K + r.begin * K, r.size, K) *
        ConstRowsMap<T>(B + p.ib(i) * K * M, K, M);
  });
  return make_result<T>(std::move(y), {&a, &b}, "matmul", [](Node<T>& o) {
    const Plan p = plan(o.input_value(0).shape(), o.input_value(1).shape());
    const int64_t N = p.N, K = p.K, M = p.M;
    const double work = static_cast<double>(p.no) * N * K * M;
    const T* A = o.input_value(0).data();
    const T* B = o.input_value(1).data();
    const T* G = o.grad.data();
    if (Tensor<T>* da = o.input_grad(0)) {
      T* dA = da->data();
      const int64_t nblk = row_blocks(p.na, N, work);
      run_tasks(p.na * nblk, work, [&](int64_t t) {
        const int64_t ja = t / nblk;
        const Rows r = block(N, nblk, t % nblk);
        RowsMap<T> dA_r(dA + ja * N * K + r.begin * K, r.size, K);
        for (int64_t i = 0; i < p.no; ++i) {
          if (p.ia(i) != ja) continue;
          dA_r.noalias() += ConstRowsMap<T>(G + i * N * M + r.begin * M, r.size, M) *
                            ConstRowsMap<T>(B + p.ib(i) * K * M, K, M).transpose();
        }
      });
    }
    if (Tensor<T>* db = o.input_grad(1)) {
      T* dB = db->data();
      const int64_t nblk = row_blocks(p.nb, K, work);
      run_tasks(p.nb * nblk, work, [&](int64_t t) {
        const int64_t jb = t / nblk;
        const Rows r = block(K, nblk, t % nblk);
        RowsMap<T> dB_r(dB + jb * K * M + r.begin * M, r.size, M);
        for (int64_t i = 0; i < p.no; ++i) {
          if (p.ib(i) != jb) continue;
          dB_r.noalias() +=
              ConstRowsMap<T>(A + p.ia(i) * N * K, N, K).middleCols(r.begin, r.size).transpose() *
              ConstRowsMap<T>(G + i * N * M, N, M);
        }
      });
    }
  });
}

// linear: Y = X·Wᵀ + b with the leading axes of x flattened into R rows: X [R, in], W [out, in],
// b [out], Y [R, out]. Forward is one GEMM (row blocks of Y as tasks).
// Backward, given G = dL/dY [R, out]:
//   in the forward pass this was Y_ro = Σ_i X_ri W_oi + b_o, so now we have
//     dX = G · W            dX_ri += Σ_o G_ro W_oi        tasks: row blocks of dX
//     dW = Gᵀ · X           dW_oi += Σ_r G_ro X_ri        tasks: row blocks of dW (output units)
//     db = Σ_r G_r·         column sums of G              with dW's row blocks, same tasks
// In float with a weight of at most kSmallGemmMaxWeight elements, all three products run on the
// packing-free kernel (gemm_kernel.h): Y = Wᵀ-panel product with b as C's initial value,
// dX += G · W reading W in place, dW += Gᵀ · X reading G's columns as broadcast scalars.
namespace {

template <typename T>
void linear_backward(Node<T>& o) {
  const Tensor<T>& xv = o.input_value(0);
  const Tensor<T>& wv = o.input_value(1);
  const int64_t in = wv.size(1), out_f = wv.size(0), R = xv.shape().span(0, xv.dim() - 1);
  const double work = static_cast<double>(R) * in * out_f;
  const bool small = small_weight<T>(in, out_f);
  auto G = o.grad.mat(R, out_f);
  auto X = xv.mat(R, in);
  bool fresh = false;  // dX written (=) rather than accumulated: no gradient had reached x yet
  if (Tensor<T>* dx = o.input_grad_to_write(0, &fresh)) {
    auto dX = dx->mat(R, in);
    auto Wm = wv.mat(out_f, in);
    const int64_t nblk = row_blocks(1, R, work);
    run_tasks(nblk, work, [&](int64_t t) {
      const Rows r = block(R, nblk, t, small ? gemm::kRows : 1);
      if (gemm::small_gemm_if(small, r.size, in, out_f, G.data() + r.begin * out_f, out_f, 1,
                              Wm.data(), in, dX.data() + r.begin * in, in, nullptr,
                              fresh ? gemm::Init::kZero : gemm::Init::kAccumulate))
        return;
      if (fresh)
        dX.middleRows(r.begin, r.size).noalias() = G.middleRows(r.begin, r.size) * Wm;
      else
        dX.middleRows(r.begin, r.size).noalias() += G.middleRows(r.begin, r.size) * Wm;
    });
  }
  Tensor<T>* dw = o.input_grad(1);
  Tensor<T>* db = o.inputs.size() > 2 ? o.input_grad(2) : nullptr;
  if (!dw && !db) return;
  const int64_t nblk = row_blocks(1, out_f, work);
  run_tasks(nblk, work, [&](int64_t t) {
    const Rows r = block(out_f, nblk, t);  // not aligned: db's column sums depend on the cut
    // A(o, r) = G[r, o] for the kernel: a_m = 1, a_k = out
    if (dw &&
        !gemm::small_gemm_if(small, r.size, in, R, G.data() + r.begin, 1, out_f, X.data(), in,
                             dw->data() + r.begin * in, in, nullptr, gemm::Init::kAccumulate)) {
      dw->mat(out_f, in).middleRows(r.begin, r.size).noalias() +=
          G.middleCols(r.begin, r.size).transpose() * X;
    }
    if (db) {
      db->vec().segment(r.begin, r.size) +=
          G.middleCols(r.begin, r.size).colwise().sum().transpose();
    }
  });
}

}  // namespace

template <typename T>
Var<T> linear(const Var<T>& x, const Var<T>& W, const Var<T>& b) {
  QKV_CHECK(W.dim() == 2, "linear: weight must be [out, in], got {}", W.shape());
  QKV_CHECK(x.dim() >= 1 && x.size(-1) == W.size(1),
            "linear: input {} does not match weight {} (in = {})", x.shape(), W.shape(), W.size(1));
  const bool has_bias = b.defined();
  QKV_CHECK(!has_bias || (b.dim() == 1 && b.size(0) == W.size(0)),
            "linear: bias {} does not match weight {} (out = {})", b.shape(), W.shape(), W.size(0));
  const int64_t in = W.size(1), out_f = W.size(0), R = x.shape().span(0, x.dim() - 1);
  Shape so = x.shape();
  so[-1] = out_f;
  Tensor<T> y = Tensor<T>::empty(so);
  auto X = x.value().mat(R, in);
  auto Wm = W.value().mat(out_f, in);
  auto Y = y.mat(R, out_f);
  const double work = static_cast<double>(R) * in * out_f;
  const int64_t nblk = row_blocks(1, R, work);
  const bool small = small_weight<T>(in, out_f);
  // The kernel's B is Wᵀ [in, out], row-major: one small copy per call.
  Tensor<T> Wt = small ? Tensor<T>::empty({in, out_f}) : Tensor<T>();
  if (small) Wt.mat(in, out_f) = Wm.transpose();
  const T* bias = has_bias ? b.value().data() : nullptr;
  run_tasks(nblk, work, [&](int64_t t) {
    const Rows r = block(R, nblk, t, small ? gemm::kRows : 1);
    if (gemm::small_gemm_if(small, r.size, out_f, in, X.data() + r.begin * in, in, 1, Wt.data(),
                            out_f, Y.data() + r.begin * out_f, out_f, bias,
                            bias ? gemm::Init::kBias : gemm::Init::kZero))
      return;
    Y.middleRows(r.begin, r.size).noalias() = X.middleRows(r.begin, r.size) * Wm.transpose();
    if (has_bias) Y.middleRows(r.begin, r.size).rowwise() += b.value().vec().transpose();
  });
  if (has_bias) return make_result<T>(std::move(y), {&x, &W, &b}, "linear", linear_backward<T>);
  return make_result<T>(std::move(y), {&x, &W}, "linear", linear_backward<T>);
}

template Var<float> matmul(const Var<float>&, const Var<float>&);
template Var<double> matmul(const Var<double>&, const Var<double>&);
template Var<float> linear(const Var<float>&, const Var<float>&, const Var<float>&);
template Var<double> linear(const Var<double>&, const Var<double>&, const Var<double>&);

}  // namespace qkv
