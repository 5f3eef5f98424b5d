// Tensor<T>: a dense, row-major, contiguous array of up to four dimensions over float (training)
// or double (gradient checking). The same code is instantiated for both.
//
// Storage is reference-counted and drawn from the caching pool (core/pool.h); copies share it,
// clone() copies it. Arithmetic goes through Eigen maps over the buffer (mat(), vec()).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "core/error.h"
#include "core/pool.h"
#include "core/shape.h"

namespace qkv {

/// Row-major Eigen matrix and map typedefs, stated once.
template <typename T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using MatMap = Eigen::Map<Mat<T>, Eigen::Aligned64>;
template <typename T>
using ConstMatMap = Eigen::Map<const Mat<T>, Eigen::Aligned64>;
template <typename T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
template <typename T>
using VecMap = Eigen::Map<Vec<T>, Eigen::Aligned64>;
template <typename T>
using ConstVecMap = Eigen::Map<const Vec<T>, Eigen::Aligned64>;
/// Unaligned maps, for rows and blocks inside a buffer.
template <typename T>
using RowsMap = Eigen::Map<Mat<T>>;
template <typename T>
using ConstRowsMap = Eigen::Map<const Mat<T>>;

template <typename T>
class Tensor {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "Tensor is instantiated for float and double");

 public:
  using Scalar = T;

  /// An undefined tensor (no storage); defined() is false.
  Tensor() = default;
  /// A zero-filled tensor of the given shape.
  explicit Tensor(const Shape& shape) : Tensor(empty(shape)) { zero_(); }

  /// Uninitialised storage of the given shape (for ops that overwrite every element).
  static Tensor empty(const Shape& shape) {
    Tensor t;
    t.shape_ = shape;
    // numel() checks its own overflow; the byte count (at most 2^63 · 8) is checked here.
    size_t bytes = 0;
    if (__builtin_mul_overflow(static_cast<size_t>(shape.numel()), sizeof(T), &bytes) ||
        __builtin_add_overflow(bytes, sizeof(Header), &bytes))
      fail("a tensor of shape {} needs more bytes than a 64-bit count can hold", shape);
    void* p = pool::acquire(bytes);
    t.header_ = new (p) Header{{1}, bytes};
    return t;
  }
  static Tensor zeros(const Shape& shape) { return Tensor(shape); }
  static Tensor full(const Shape& shape, T value) {
    Tensor t = empty(shape);
    t.fill_(value);
    return t;
  }
  static Tensor scalar(T value) { return full(Shape{}, value); }
  /// A tensor holding `values` (row-major); their count must match the shape.
  static Tensor from(const Shape& shape, const std::vector<T>& values) {
    QKV_CHECK(static_cast<int64_t>(values.size()) == shape.numel(),
              "Tensor::from: {} values for shape {} ({} elements)", values.size(), shape,
              shape.numel());
    Tensor t = empty(shape);
    if (!values.empty()) std::memcpy(t.data(), values.data(), values.size() * sizeof(T));
    return t;
  }

  Tensor(const Tensor& o) : header_(o.header_), shape_(o.shape_) { retain(); }
  Tensor(Tensor&& o) noexcept : header_(std::exchange(o.header_, nullptr)), shape_(o.shape_) {}
  Tensor& operator=(const Tensor& o) {
    if (this != &o) {
      o.retain();
      release();
      header_ = o.header_;
      shape_ = o.shape_;
    }
    return *this;
  }
  Tensor& operator=(Tensor&& o) noexcept {
    if (this != &o) {
      release();
      header_ = std::exchange(o.header_, nullptr);
      shape_ = o.shape_;
    }
    return *this;
  }
  ~Tensor() { release(); }

  bool defined() const { return header_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int dim() const { return shape_.nd; }
  int64_t size(int axis) const { return shape_[axis]; }
  int64_t numel() const { return shape_.numel(); }

  T* data() { return header_ ? reinterpret_cast<T*>(header_ + 1) : nullptr; }
  const T* data() const { return header_ ? reinterpret_cast<const T*>(header_ + 1) : nullptr; }
  T* begin() { return data(); }
  T* end() { return data() + numel(); }
  const T* begin() const { return data(); }
  const T* end() const { return data() + numel(); }
  T& operator[](int64_t i) { return data()[i]; }
  const T& operator[](int64_t i) const { return data()[i]; }
  /// The only element of a one-element tensor.
  T item() const {
    QKV_CHECK(defined() && numel() == 1, "item(): tensor of shape {} has {} elements, not 1",
              shape_, numel());
    return data()[0];
  }

  /// A view with another shape over the same storage; the element count must match.
  Tensor reshape(const Shape& shape) const {
    QKV_CHECK(shape.numel() == numel(), "reshape: cannot view {} ({} elements) as {} ({})", shape_,
              numel(), shape, shape.numel());
    Tensor t = *this;
    t.shape_ = shape;
    return t;
  }
  /// A copy with its own storage.
  Tensor clone() const {
    if (!defined()) return Tensor();
    Tensor t = empty(shape_);
    std::memcpy(t.data(), data(), static_cast<size_t>(numel()) * sizeof(T));
    return t;
  }
  /// The same values in another scalar type.
  template <typename U>
  Tensor<U> to() const {
    Tensor<U> t = Tensor<U>::empty(shape_);
    for (int64_t i = 0; i < numel(); ++i) t[i] = static_cast<U>(data()[i]);
    return t;
  }
  std::vector<T> to_vector() const { return std::vector<T>(begin(), end()); }

  void fill_(T value) { std::fill(begin(), end(), value); }
  void zero_() {
    if (defined()) std::memset(data(), 0, static_cast<size_t>(numel()) * sizeof(T));
  }
  /// this += other, elementwise; shapes must be equal.
  void add_(const Tensor& other) {
    QKV_CHECK(other.shape_ == shape_, "add_: shapes {} and {} differ", shape_, other.shape_);
    vec().noalias() += other.vec();
  }
  /// True when every element is finite.
  bool all_finite() const { return !defined() || vec().allFinite(); }

  /// The buffer as a (numel) column vector.
  VecMap<T> vec() { return VecMap<T>(data(), numel()); }
  ConstVecMap<T> vec() const { return ConstVecMap<T>(data(), numel()); }
  /// The buffer as a matrix of rows × cols (row-major); rows·cols must equal numel().
  MatMap<T> mat(int64_t rows, int64_t cols) {
    check_mat(rows, cols);
    return MatMap<T>(data(), rows, cols);
  }
  ConstMatMap<T> mat(int64_t rows, int64_t cols) const {
    check_mat(rows, cols);
    return ConstMatMap<T>(data(), rows, cols);
  }
  /// All leading axes flattened into rows, the last axis as columns.
  MatMap<T> mat() { return mat(numel() / last(), last()); }
  ConstMatMap<T> mat() const { return mat(numel() / last(), last()); }

 private:
  struct alignas(64) Header {
    std::atomic<int32_t> refs;
    size_t bytes;
  };
  static_assert(sizeof(Header) == 64, "data must start 64-byte aligned");

  int64_t last() const { return shape_.nd == 0 ? 1 : shape_[-1]; }
  void check_mat(int64_t rows, int64_t cols) const {
    QKV_CHECK(rows * cols == numel(), "mat: cannot view {} as {}x{}", shape_, rows, cols);
  }
  void retain() const {
    if (header_) header_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  void release() {
    if (header_ && header_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      size_t bytes = header_->bytes;
      header_->~Header();
      pool::release(header_, bytes);
    }
    header_ = nullptr;
  }

  Header* header_ = nullptr;
  Shape shape_;
};

}  // namespace qkv
