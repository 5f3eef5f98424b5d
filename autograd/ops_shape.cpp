// Shape ops: reshape, permute/transpose, slice, concat, split, select_positions.
//
// They move elements without arithmetic, so each backward is the same move run the other way,
// accumulating: the gradient of an element goes back to wherever that element came from.
#include <algorithm>
#include <string>

#include "autograd/kernels.h"
#include "autograd/ops.h"

namespace qkv {
namespace {

std::string dims_str(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

template <typename T>
using StridedRow = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>, 0, Eigen::InnerStride<>>;
template <typename T>
using StridedRowOut = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>, 0, Eigen::InnerStride<>>;

/// Walks a permutation of `in` (out axis i = in axis perm[i]) in the output's row-major order:
/// fn(out_offset, in_offset, n, in_stride) per output row of n elements, whose input elements lie
/// in_stride apart. The rows are cut into blocks of about kElementChunk elements that run on all
/// threads when there are several: each row is one call, and rows never share an element, on
/// the input side either (a permutation is a bijection), so the backward may accumulate through
/// the same walk.
template <typename Fn>
void permute_walk(const Shape& in, const std::array<int, kMaxDims>& perm, Fn&& fn) {
  const int nd = in.nd;
  if (nd == 0) {
    fn(int64_t{0}, int64_t{0}, int64_t{1}, int64_t{1});
    return;
  }
  if (in.numel() == 0) return;
  std::array<int64_t, kMaxDims> in_stride{}, size{}, stride{};
  int64_t run = 1;
  for (int i = nd - 1; i >= 0; --i) {
    in_stride[static_cast<size_t>(i)] = run;
    run *= in[i];
  }
  for (int i = 0; i < nd; ++i) {
    size[static_cast<size_t>(i)] = in[perm[static_cast<size_t>(i)]];
    stride[static_cast<size_t>(i)] = in_stride[static_cast<size_t>(perm[static_cast<size_t>(i)])];
  }
  const int64_t n = size[static_cast<size_t>(nd - 1)];
  const int64_t s = stride[static_cast<size_t>(nd - 1)];
  const int64_t rows = in.numel() / n;
  // Output rows [r0, r1): the odometer over the outer output axes starts from r0's digits.
  auto walk = [&](int64_t r0, int64_t r1) {
    std::array<int64_t, kMaxDims> idx{};
    int64_t off = 0;
    for (int64_t ax = nd - 2, rem = r0; ax >= 0; --ax) {
      const auto a = static_cast<size_t>(ax);
      idx[a] = rem % size[a];
      rem /= size[a];
      off += idx[a] * stride[a];
    }
    for (int64_t r = r0; r < r1; ++r) {
      fn(r * n, off, n, s);
      for (int ax = nd - 2; ax >= 0; --ax) {
        const auto a = static_cast<size_t>(ax);
        off += stride[a];
        if (++idx[a] < size[a]) break;
        off -= stride[a] * size[a];
        idx[a] = 0;
      }
    }
  };
  const int64_t per_block = std::max<int64_t>(1, kElementChunk / n);
  const int64_t blocks = (rows + per_block - 1) / per_block;
  parallel_for(blocks, true,
               [&](int64_t b) { walk(b * per_block, std::min(rows, (b + 1) * per_block)); });
}

template <typename T>
Var<T> permute_impl(const Var<T>& a, const std::array<int, kMaxDims>& perm, const char* op) {
  const Shape& s = a.shape();
  Shape out_shape = s;
  for (int i = 0; i < s.nd; ++i)
    out_shape.d[static_cast<size_t>(i)] = s[perm[static_cast<size_t>(i)]];
  Tensor<T> y = Tensor<T>::empty(out_shape);
  const T* px = a.value().data();
  T* py = y.data();
  permute_walk(s, perm, [&](int64_t o, int64_t i, int64_t n, int64_t st) {
    if (st == 1) {
      Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(py + o, n) =
          Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(px + i, n);
    } else {
      Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(py + o, n) =
          StridedRow<T>(px + i, n, Eigen::InnerStride<>(st));
    }
  });
  Var<T> out = make_result<T>(std::move(y), {&a}, op, [](Node<T>& o) {
    Tensor<T>* dx = o.input_grad(0);
    if (!dx) return;
    std::array<int, kMaxDims> perm{};
    for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int>(o.args[i]);
    const T* pg = o.grad.data();
    T* pd = dx->data();
    permute_walk(dx->shape(), perm, [&](int64_t og, int64_t i, int64_t n, int64_t st) {
      StridedRowOut<T>(pd + i, n, Eigen::InnerStride<>(st)) +=
          Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(pg + og, n);
    });
  });
  for (size_t i = 0; i < perm.size(); ++i) out.node()->args[i] = perm[i];
  return out;
}

// slice: y = a[..., start:end, ...] along `axis`. Viewing a as [outer, mid·inner] (axes before,
// the axis with those after), y is a block of columns: y = A[:, start·inner : end·inner].
// Backward: dx[:, that block] += g.   args: [0] axis, [1] start.
template <typename T>
Var<T> slice_impl(const Var<T>& a, int axis, int64_t start, int64_t end, const char* op) {
  const Shape& s = a.shape();
  QKV_CHECK(axis >= -s.nd && axis < s.nd, "{}: axis {} is out of range for shape {}", op, axis, s);
  const int ax = axis < 0 ? axis + s.nd : axis;
  QKV_CHECK(0 <= start && start <= end && end <= s[ax],
            "{}: range [{}, {}) is out of bounds for axis {} of shape {}", op, start, end, axis, s);
  Shape out_shape = s;
  out_shape[ax] = end - start;
  const int64_t outer = s.span(0, ax), mid = s[ax], inner = s.span(ax + 1, s.nd);
  const int64_t len = end - start;
  Tensor<T> y = Tensor<T>::empty(out_shape);
  if (y.numel() > 0)
    y.mat(outer, len * inner) =
        a.value().mat(outer, mid * inner).middleCols(start * inner, len * inner);
  Var<T> out = make_result<T>(std::move(y), {&a}, op, [](Node<T>& o) {
    Tensor<T>* dx = o.input_grad(0);
    if (!dx || o.grad.numel() == 0) return;
    const Shape& s = dx->shape();
    const int ax = static_cast<int>(o.args[0]);
    const int64_t start = static_cast<int64_t>(o.args[1]);
    const int64_t outer = s.span(0, ax), mid = s[ax], inner = s.span(ax + 1, s.nd);
    const int64_t len = o.grad.shape()[ax];
    dx->mat(outer, mid * inner).middleCols(start * inner, len * inner) +=
        o.grad.mat(outer, len * inner);
  });
  out.node()->args[0] = ax;
  out.node()->args[1] = static_cast<double>(start);
  return out;
}

}  // namespace

// reshape: the same elements in the same order, so dx = g (viewed at a's shape). The value is a
// view sharing a's storage (no copy); no op writes into its inputs, so the sharing is safe.
template <typename T>
Var<T> reshape(const Var<T>& a, std::vector<int64_t> shape) {
  QKV_CHECK(shape.size() <= static_cast<size_t>(kMaxDims), "reshape: at most {} dimensions, got {}",
            kMaxDims, dims_str(shape));
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      QKV_CHECK(infer < 0, "reshape: only one dimension may be -1, got {}", dims_str(shape));
      infer = static_cast<int>(i);
    } else {
      QKV_CHECK(shape[i] >= 0, "reshape: invalid dimension {} in {}", shape[i], dims_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    QKV_CHECK(known != 0 && a.numel() % known == 0, "reshape: cannot view {} ({} elements) as {}",
              a.shape(), a.numel(), dims_str(shape));
    shape[static_cast<size_t>(infer)] = a.numel() / known;
  }
  const Shape s = Shape::of(shape.data(), static_cast<int>(shape.size()));
  QKV_CHECK(s.numel() == a.numel(), "reshape: cannot view {} ({} elements) as {} ({} elements)",
            a.shape(), a.numel(), s, s.numel());
  return make_result<T>(a.value().reshape(s), {&a}, "reshape", [](Node<T>& o) {
    if (Tensor<T>* dx = o.input_grad(0)) dx->vec() += o.grad.vec();
  });
}

template <typename T>
Var<T> permute(const Var<T>& a, const std::vector<int>& axes) {
  const int nd = a.dim();
  QKV_CHECK(static_cast<int>(axes.size()) == nd,
            "permute: {} axes given for shape {} of {} dimensions", axes.size(), a.shape(), nd);
  std::array<int, kMaxDims> perm{};
  uint32_t seen = 0;
  for (int i = 0; i < nd; ++i) {
    const int ax = axes[static_cast<size_t>(i)];
    QKV_CHECK(ax >= -nd && ax < nd, "permute: axis {} is out of range for shape {}", ax, a.shape());
    const int norm = ax < 0 ? ax + nd : ax;
    QKV_CHECK(!(seen & (1u << norm)), "permute: axis {} appears twice for shape {}", ax, a.shape());
    seen |= 1u << norm;
    perm[static_cast<size_t>(i)] = norm;
  }
  return permute_impl(a, perm, "permute");
}

template <typename T>
Var<T> transpose(const Var<T>& a, int axis0, int axis1) {
  const int nd = a.dim();
  QKV_CHECK(axis0 >= -nd && axis0 < nd && axis1 >= -nd && axis1 < nd,
            "transpose: axes ({}, {}) are out of range for shape {}", axis0, axis1, a.shape());
  std::array<int, kMaxDims> perm{};
  for (int i = 0; i < nd; ++i) perm[static_cast<size_t>(i)] = i;
  std::swap(perm[static_cast<size_t>(axis0 < 0 ? axis0 + nd : axis0)],
            perm[static_cast<size_t>(axis1 < 0 ? axis1 + nd : axis1)]);
  return permute_impl(a, perm, "transpose");
}

template <typename T>
Var<T> slice(const Var<T>& a, int axis, int64_t start, int64_t end) {
  return slice_impl(a, axis, start, end, "slice");
}

// concat: parts joined along `axis`. Viewing each part p as [outer, len_p·inner], y's columns are
// the parts' columns side by side; backward hands each part its block of g's columns.
// args: [0] axis (offsets are recomputed from the inputs' shapes).
template <typename T>
Var<T> concat(const std::vector<Var<T>>& parts, int axis) {
  QKV_CHECK(!parts.empty(), "concat: no parts to join");
  const Shape& s0 = parts[0].shape();
  QKV_CHECK(axis >= -s0.nd && axis < s0.nd, "concat: axis {} is out of range for shape {}", axis,
            s0);
  const int ax = axis < 0 ? axis + s0.nd : axis;
  Shape out_shape = s0;
  out_shape[ax] = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const Shape& s = parts[i].shape();
    bool ok = s.nd == s0.nd;
    for (int d = 0; ok && d < s.nd; ++d) ok = d == ax || s[d] == s0[d];
    QKV_CHECK(ok, "concat: part {} has shape {} but part 0 has shape {}; only axis {} may differ",
              i, s, s0, axis);
    out_shape[ax] += s[ax];
  }
  const int64_t outer = s0.span(0, ax), inner = s0.span(ax + 1, s0.nd);
  const int64_t total = out_shape[ax] * inner;
  Tensor<T> y = Tensor<T>::empty(out_shape);
  if (y.numel() > 0) {
    auto Y = y.mat(outer, total);
    int64_t off = 0;
    for (const Var<T>& p : parts) {
      const int64_t w = p.size(ax) * inner;
      if (w > 0) Y.middleCols(off, w) = p.value().mat(outer, w);
      off += w;
    }
  }
  Var<T> out = make_result<T>(std::move(y), parts, "concat", [](Node<T>& o) {
    const int ax = static_cast<int>(o.args[0]);
    const Shape& s = o.grad.shape();
    const int64_t outer = s.span(0, ax), inner = s.span(ax + 1, s.nd);
    if (o.grad.numel() == 0) return;
    const auto G = o.grad.mat(outer, s[ax] * inner);
    int64_t off = 0;
    for (size_t i = 0; i < o.inputs.size(); ++i) {
      const int64_t w = o.input_value(i).size(ax) * inner;
      if (Tensor<T>* dx = o.input_grad(i); dx && w > 0) dx->mat(outer, w) += G.middleCols(off, w);
      off += w;
    }
  });
  out.node()->args[0] = ax;
  return out;
}

// split: n equal slices along `axis` (each its own node, so each part's gradient flows alone).
template <typename T>
std::vector<Var<T>> split(const Var<T>& a, int axis, int n) {
  const Shape& s = a.shape();
  QKV_CHECK(axis >= -s.nd && axis < s.nd, "split: axis {} is out of range for shape {}", axis, s);
  const int ax = axis < 0 ? axis + s.nd : axis;
  QKV_CHECK(n > 0 && s[ax] % n == 0,
            "split: axis {} of shape {} (size {}) does not split into {} "
            "equal parts",
            axis, s, s[ax], n);
  const int64_t len = s[ax] / n;
  std::vector<Var<T>> parts;
  parts.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) parts.push_back(slice_impl(a, ax, i * len, (i + 1) * len, "split"));
  return parts;
}

// select_positions: y[b, :] = x[b, p_b, :] for x [B, T, C] — a row gather.
// Backward scatters each row back: dx[b, p_b, :] += g[b, :].
// saved[0]: the positions as values of T (exact: T < 2²⁴).
template <typename T>
Var<T> select_positions(const Var<T>& x, const IndexTensor& positions) {
  QKV_CHECK(x.dim() == 3, "select_positions: x must be [B, T, C], got shape {}", x.shape());
  const int64_t B = x.size(0), Tn = x.size(1), C = x.size(2);
  QKV_CHECK(positions.shape == Shape({B}) && positions.numel() == B,
            "select_positions: positions has shape {} but x {} needs [{}]", positions.shape,
            x.shape(), B);
  Tensor<T> pos = Tensor<T>::empty({B});
  for (int64_t b = 0; b < B; ++b) {
    const int32_t p = positions[b];
    QKV_CHECK(p >= 0 && p < Tn,
              "select_positions: position {} of example {} is out of range for T = {}", p, b, Tn);
    pos[b] = static_cast<T>(p);
  }
  Tensor<T> y = Tensor<T>::empty({B, C});
  if (y.numel() > 0) {
    const auto X = x.value().mat(B * Tn, C);
    auto Y = y.mat(B, C);
    for (int64_t b = 0; b < B; ++b) Y.row(b) = X.row(b * Tn + positions[b]);
  }
  Var<T> out = make_result<T>(std::move(y), {&x}, "select_positions", [](Node<T>& o) {
    Tensor<T>* dx = o.input_grad(0);
    if (!dx || dx->numel() == 0) return;
    const int64_t B = dx->size(0), Tn = dx->size(1), C = dx->size(2);
    auto dX = dx->mat(B * Tn, C);
    const auto G = o.grad.mat(B, C);
    const Tensor<T>& pos = o.saved[0];
    for (int64_t b = 0; b < B; ++b) dX.row(b * Tn + static_cast<int64_t>(pos[b])) += G.row(b);
  });
  if (records(out)) out.node()->saved[0] = std::move(pos);
  return out;
}

#define QKV_INSTANTIATE(T)                                         \
  template Var<T> reshape(const Var<T>&, std::vector<int64_t>);    \
  template Var<T> permute(const Var<T>&, const std::vector<int>&); \
  template Var<T> transpose(const Var<T>&, int, int);              \
  template Var<T> slice(const Var<T>&, int, int64_t, int64_t);     \
  template Var<T> concat(const std::vector<Var<T>>&, int);         \
  template std::vector<Var<T>> split(const Var<T>&, int, int);     \
  template Var<T> select_positions(const Var<T>&, const IndexTensor&);
QKV_INSTANTIATE(float)
QKV_INSTANTIATE(double)
#undef QKV_INSTANTIATE

}  // namespace qkv
