// Broadcasting, internal to the autograd ops: shape inference, a strided walk over up to four
// axes, and the kernels the elementwise ops and reductions are built from.
//
// NumPy rules: shapes are aligned at the right; an axis of size 1 (or a missing leading axis)
// stretches to the other operand's size. The walk coalesces the output's axes wherever every
// operand stays contiguous across them, so that
//   same shapes                 [B,T,C] ⊕ [B,T,C]  → one axis, in chunks on all threads
//   leading-axis broadcast      [B,T,C] ⊕ [T,C]    → rows [B] × [T·C], the row an Eigen expression
//                               [B,T,C] ⊕ [C]      → rows [B·T] × [C]
//   trailing-axis broadcast     [B,T,C] ⊕ [B,T,1]  → rows [B·T] × [C], the [B,T,1] side a constant
//   anything else               [2,1,3] ⊕ [4,1]    → an odometer over the outer axes, Eigen inside
// The innermost coalesced axis has stride 1 (the operand walks along it) or 0 (it is constant
// along it), so each row is a Map or a Constant and no index arithmetic happens per element.
// Nothing here allocates: plans live on the stack.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include <Eigen/Core>

#include "autograd/kernels.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace qkv::bcast {

template <typename T>
using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
template <typename T>
using ArrMap = Eigen::Map<Arr<T>>;
template <typename T>
using ConstArrMap = Eigen::Map<const Arr<T>>;

/// The shape a and b broadcast to; throws "op: cannot broadcast [2, 3] with [4]".
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);
/// True when `from` broadcasts to exactly `to` (from's axes are 1 or equal to to's, right-aligned).
bool broadcasts_to(const Shape& from, const Shape& to);

/// How to walk an output shape with N operands that broadcast to it: `nd` coalesced axes
/// (outermost first; the last is walked by Eigen), and each operand's element stride per axis,
/// 0 where it broadcasts. The output itself is contiguous: row r starts at r·n().
template <size_t N>
struct Plan {
  int nd = 1;
  std::array<int64_t, kMaxDims> size{};
  std::array<std::array<int64_t, kMaxDims>, N> stride{};

  int64_t n() const { return size[static_cast<size_t>(nd - 1)]; }
  int64_t rows() const {
    int64_t r = 1;
    for (int i = 0; i + 1 < nd; ++i) r *= size[static_cast<size_t>(i)];
    return r;
  }
  /// Operand k's stride along the innermost axis: 1 (walks) or 0 (constant).
  int64_t inner(size_t k) const { return stride[k][static_cast<size_t>(nd - 1)]; }
};

/// Plans the walk of `out` for operands of shapes `in`, each of which must broadcast to `out`.
template <size_t N>
Plan<N> make_plan(const Shape& out, const std::array<Shape, N>& in) {
  // Collected innermost first; axes where out has size 1 are skipped (nothing to walk).
  std::array<int64_t, kMaxDims> size{};
  std::array<std::array<int64_t, kMaxDims>, N> st{};
  std::array<int64_t, N> run;  // each operand's contiguous stride of the current axis
  run.fill(1);
  int nd = 0;
  for (int ax = out.nd - 1; ax >= 0; --ax) {
    const int64_t n = out.d[static_cast<size_t>(ax)];
    std::array<int64_t, N> s{};
    bool merges = nd > 0;
    for (size_t k = 0; k < N; ++k) {
      const int ia = ax - (out.nd - in[k].nd);
      const int64_t m = ia >= 0 ? in[k].d[static_cast<size_t>(ia)] : 1;
      s[k] = m == 1 ? 0 : run[k];
      run[k] *= m;
      if (nd > 0)
        merges = merges &&
                 s[k] == st[k][static_cast<size_t>(nd - 1)] * size[static_cast<size_t>(nd - 1)];
    }
    if (n == 1) continue;
    if (merges) {
      size[static_cast<size_t>(nd - 1)] *= n;  // keeps the inner axis's strides
      continue;
    }
    size[static_cast<size_t>(nd)] = n;
    for (size_t k = 0; k < N; ++k) st[k][static_cast<size_t>(nd)] = s[k];
    ++nd;
  }
  Plan<N> p;
  if (nd == 0) {  // a single element
    p.nd = 1;
    p.size[0] = 1;
    return p;
  }
  p.nd = nd;
  for (int i = 0; i < nd; ++i) {
    const auto src = static_cast<size_t>(nd - 1 - i), dst = static_cast<size_t>(i);
    p.size[dst] = size[src];
    for (size_t k = 0; k < N; ++k) p.stride[k][dst] = st[k][src];
  }
  return p;
}

/// Calls fn(out_offset, operand_offsets) for each row of the plan, in row-major order.
template <size_t N, typename Fn>
void for_each_row(const Plan<N>& p, Fn&& fn) {
  const int64_t n = p.n(), rows = p.rows();
  std::array<int64_t, kMaxDims> idx{};
  std::array<int64_t, N> off{};
  for (int64_t r = 0; r < rows; ++r) {
    fn(r * n, off);
    for (int ax = p.nd - 2; ax >= 0; --ax) {  // the odometer
      const auto a = static_cast<size_t>(ax);
      for (size_t k = 0; k < N; ++k) off[k] += p.stride[k][a];
      if (++idx[a] < p.size[a]) break;
      for (size_t k = 0; k < N; ++k) off[k] -= p.stride[k][a] * p.size[a];
      idx[a] = 0;
    }
  }
}

/// Calls k(row) with n elements from p as an Eigen array: a Map when stride is 1, a Constant of *p
/// when it is 0.
template <typename T, typename K>
void with_row(const T* p, int64_t stride, int64_t n, K&& k) {
  if (stride != 0) {
    k(ConstArrMap<T>(p, n));
  } else {
    k(Arr<T>::Constant(n, *p));
  }
}

/// out = f(A, B) elementwise, a and b broadcast to out's shape. f takes Eigen arrays and returns
/// an array expression.
template <typename T, typename F>
void map2(const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& out, F f) {
  const T* pa = a.data();
  const T* pb = b.data();
  T* po = out.data();
  if (out.numel() == 0) return;
  if (a.shape() == out.shape() && b.shape() == out.shape()) {
    for_chunks(out.numel(), [&](int64_t i, int64_t n) {
      ArrMap<T>(po + i, n) = f(ConstArrMap<T>(pa + i, n), ConstArrMap<T>(pb + i, n));
    });
    return;
  }
  const Plan<2> p = make_plan<2>(out.shape(), {a.shape(), b.shape()});
  const int64_t n = p.n(), sa = p.inner(0), sb = p.inner(1);
  for_each_row(p, [&](int64_t o, const std::array<int64_t, 2>& off) {
    with_row(pa + off[0], sa, n, [&](const auto& A) {
      with_row(pb + off[1], sb, n, [&](const auto& B) { ArrMap<T>(po + o, n) = f(A, B); });
    });
  });
}

/// dst += scale · src over n elements in the same order, on all threads in chunks.
template <typename T>
void add_scaled(T* dst, const T* src, int64_t n, T scale) {
  for_chunks(n, [&](int64_t i, int64_t k) {
    ArrMap<T>(dst + i, k) += scale * ConstArrMap<T>(src + i, k);
  });
}

/// dst += scale · src, src broadcast to dst's shape (the backward of a reduction).
template <typename T>
void broadcast_add(Tensor<T>& dst, const Tensor<T>& src, T scale) {
  if (dst.numel() == 0) return;
  if (src.numel() == dst.numel()) {  // same elements in the same order
    add_scaled(dst.data(), src.data(), dst.numel(), scale);
    return;
  }
  const T* ps = src.data();
  T* pd = dst.data();
  const Plan<1> p = make_plan<1>(dst.shape(), {src.shape()});
  const int64_t n = p.n(), ss = p.inner(0);
  for_each_row(p, [&](int64_t o, const std::array<int64_t, 1>& off) {
    with_row(ps + off[0], ss, n, [&](const auto& S) { ArrMap<T>(pd + o, n) += scale * S; });
  });
}

/// Adds the rows of an expression into dx: elementwise when dx walks the row, summed into one
/// element when dx is constant along it.
template <typename T, typename E>
void add_row(T* px, int64_t sx, int64_t n, const E& e) {
  if (sx != 0) {
    ArrMap<T>(px, n) += e;
  } else {
    *px += e.sum();
  }
}

/// dx += scale · g summed over the axes along which x was broadcast to g's shape.
template <typename T>
void reduce_add(Tensor<T>& dx, const Tensor<T>& g, T scale) {
  if (g.numel() == 0) return;
  if (dx.numel() == g.numel()) {
    add_scaled(dx.data(), g.data(), g.numel(), scale);
    return;
  }
  if (dx.numel() == 1) {
    dx[0] += scale * g.vec().sum();
    return;
  }
  const T* pg = g.data();
  T* px = dx.data();
  const Plan<1> p = make_plan<1>(g.shape(), {dx.shape()});
  const int64_t n = p.n(), sx = p.inner(0);
  for_each_row(p, [&](int64_t o, const std::array<int64_t, 1>& off) {
    add_row(px + off[0], sx, n, scale * ConstArrMap<T>(pg + o, n));
  });
}

/// dx += f(G, Y) summed over x's broadcast axes; x and y broadcast to g's shape.
template <typename T, typename F>
void reduce_add1(Tensor<T>& dx, const Tensor<T>& g, const Tensor<T>& y, F f) {
  const int64_t m = g.numel();
  if (m == 0) return;
  const T* pg = g.data();
  const T* py = y.data();
  T* px = dx.data();
  if (dx.numel() == m && y.numel() == m) {
    for_chunks(m, [&](int64_t i, int64_t n) {
      ArrMap<T>(px + i, n) += f(ConstArrMap<T>(pg + i, n), ConstArrMap<T>(py + i, n));
    });
    return;
  }
  const Plan<2> p = make_plan<2>(g.shape(), {dx.shape(), y.shape()});
  const int64_t n = p.n(), sx = p.inner(0), sy = p.inner(1);
  for_each_row(p, [&](int64_t o, const std::array<int64_t, 2>& off) {
    const ConstArrMap<T> G(pg + o, n);
    with_row(py + off[1], sy, n, [&](const auto& Y) { add_row(px + off[0], sx, n, f(G, Y)); });
  });
}

/// dx += f(G, Y, Z) summed over x's broadcast axes; x, y and z broadcast to g's shape.
template <typename T, typename F>
void reduce_add2(Tensor<T>& dx, const Tensor<T>& g, const Tensor<T>& y, const Tensor<T>& z, F f) {
  const int64_t m = g.numel();
  if (m == 0) return;
  const T* pg = g.data();
  const T* py = y.data();
  const T* pz = z.data();
  T* px = dx.data();
  if (dx.numel() == m && y.numel() == m && z.numel() == m) {
    for_chunks(m, [&](int64_t i, int64_t n) {
      ArrMap<T>(px + i, n) +=
          f(ConstArrMap<T>(pg + i, n), ConstArrMap<T>(py + i, n), ConstArrMap<T>(pz + i, n));
    });
    return;
  }
  const Plan<3> p = make_plan<3>(g.shape(), {dx.shape(), y.shape(), z.shape()});
  const int64_t n = p.n(), sx = p.inner(0), sy = p.inner(1), sz = p.inner(2);
  for_each_row(p, [&](int64_t o, const std::array<int64_t, 3>& off) {
    const ConstArrMap<T> G(pg + o, n);
    with_row(py + off[1], sy, n, [&](const auto& Y) {
      with_row(pz + off[2], sz, n, [&](const auto& Z) { add_row(px + off[0], sx, n, f(G, Y, Z)); });
    });
  });
}

}  // namespace qkv::bcast
