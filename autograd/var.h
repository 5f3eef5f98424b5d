// The autograd engine: define-by-run reverse mode over Tensor<T>.
//
// Every op result is a Node that holds its value, its inputs and a backward function. backward()
// sorts the graph topologically (iteratively, with an explicit stack) and sweeps it once in
// reverse, each node adding its contribution into its inputs' .grad (accumulate, never assign:
// that is what makes a value used twice correct).
//
// Hot-path rules: nodes and buffers come from the caching pool, the backward function is a plain
// function pointer (an op's captureless lambda), tensors it needs are kept in Node::saved and
// small parameters in Node::args, so recording an op costs no system allocation in steady state.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "autograd/kernels.h"
#include "core/pool.h"
#include "core/tensor.h"

namespace qkv {

template <typename T>
struct Node;
template <typename T>
using NodePtr = std::shared_ptr<Node<T>>;

/// Whether ops record a graph on this thread (see NoGradGuard).
bool grad_enabled();
void set_grad_enabled(bool enabled);

/// While alive, ops record nothing: evaluation and optimizer updates.
class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

/// Up to four inputs inline; more (concat) spill to a vector.
template <typename T>
class InputList {
 public:
  void push_back(NodePtr<T> n) {
    if (n_ < inline_.size()) {
      inline_[n_++] = std::move(n);
    } else {
      more_.push_back(std::move(n));
    }
  }
  size_t size() const { return n_ + more_.size(); }
  bool empty() const { return size() == 0; }
  const NodePtr<T>& operator[](size_t i) const { return i < n_ ? inline_[i] : more_[i - n_]; }
  void clear() {
    for (size_t i = 0; i < n_; ++i) inline_[i].reset();
    n_ = 0;
    more_.clear();
  }

 private:
  std::array<NodePtr<T>, 4> inline_{};
  size_t n_ = 0;
  std::vector<NodePtr<T>> more_;
};

template <typename T>
struct Node {
  using BackwardFn = void (*)(Node& out);

  Tensor<T> value;
  Tensor<T> grad;  // dL/d(value); allocated zeroed on the first accumulation
  bool requires_grad = false;
  bool leaf = true;        // created by the user, not by an op
  bool freed = false;      // backward() already released this node's graph
  bool keep_grad = false;  // keep .grad on a non-leaf (retain_grad)
  const char* op = "leaf";
  BackwardFn backward = nullptr;
  InputList<T> inputs;
  std::array<Tensor<T>, 4> saved{};  // tensors the backward reads (e.g. softmax's output)
  std::array<double, 4> args{};      // small op parameters (axes, scalars)
  uint64_t mark = 0;                 // visit mark of the topological sort

  /// Where this node's gradient accumulates: .grad, or for a leaf on a thread inside a
  /// LeafGradScope the scope's buffer for it.
  Tensor<T>& grad_slot();
  /// The gradient buffer, zero-filled on first use (on all threads when it is large).
  Tensor<T>& grad_buffer() {
    Tensor<T>& g = grad_slot();
    if (!g.defined()) {
      g = Tensor<T>::empty(value.shape());
      T* p = g.data();
      for_chunks(g.numel(), [p](int64_t i, int64_t n) {
        std::memset(p + i, 0, static_cast<size_t>(n) * sizeof(T));
      });
    }
    return g;
  }
  /// Input i's gradient buffer when input i requires grad, else nullptr (so its work is skipped).
  Tensor<T>* input_grad(size_t i) {
    Node& in = *inputs[i];
    return in.requires_grad ? &in.grad_buffer() : nullptr;
  }
  /// As input_grad, for an op that writes every element of input i's gradient in one go: when
  /// no gradient has reached input i yet, its buffer is allocated without the zero-fill and
  /// *fresh is set, and the op assigns (=) where it would accumulate (+=). The same bits (0 + x
  /// is x), one pass over the buffer fewer. An op whose inputs may be one node must ask for each
  /// only after it has written the one before (the second then finds the buffer not fresh).
  Tensor<T>* input_grad_to_write(size_t i, bool* fresh) {
    Node& in = *inputs[i];
    *fresh = false;
    if (!in.requires_grad) return nullptr;
    Tensor<T>& g = in.grad_slot();
    if (!g.defined()) {
      g = Tensor<T>::empty(in.value.shape());
      *fresh = true;
    }
    return &g;
  }
  const Tensor<T>& input_value(size_t i) const { return inputs[i]->value; }
};

/// A handle to a node of the graph: a value, and (when it requires grad) its gradient.
template <typename T>
class Var {
 public:
  Var() = default;
  /// A leaf holding `value`.
  explicit Var(Tensor<T> value, bool requires_grad = false);
  explicit Var(NodePtr<T> node) : n_(std::move(node)) {}

  bool defined() const { return n_ != nullptr; }
  const Tensor<T>& value() const { return n_->value; }
  /// Mutable value, for in-place updates of leaves (optimizers, gradcheck's perturbations).
  Tensor<T>& value() { return n_->value; }
  /// dL/d(this); undefined until a backward reaches it.
  const Tensor<T>& grad() const { return n_->grad; }
  Tensor<T>& grad() { return n_->grad; }
  const Shape& shape() const { return n_->value.shape(); }
  int dim() const { return n_->value.dim(); }
  int64_t size(int axis) const { return n_->value.size(axis); }
  int64_t numel() const { return n_->value.numel(); }
  T item() const { return n_->value.item(); }
  const char* op() const { return n_->op; }

  bool requires_grad() const { return n_->requires_grad; }
  bool is_leaf() const { return n_->leaf; }
  /// Marks a leaf as needing (or not) its gradient.
  Var& requires_grad_(bool on = true);
  /// Keeps this non-leaf's .grad after backward (for inspection).
  Var& retain_grad();
  /// Sets .grad to zero (keeping its buffer).
  void zero_grad();
  /// A new leaf sharing this value, outside the graph.
  Var detach() const { return Var(n_->value, false); }

  /// Backpropagates from a scalar: seeds dL/d(this) = 1.
  void backward(bool retain_graph = false);
  /// Backpropagates with upstream gradient `upstream` (same shape as the value).
  void backward(const Tensor<T>& upstream, bool retain_graph = false);

  Node<T>* node() const { return n_.get(); }
  const NodePtr<T>& ptr() const { return n_; }

 private:
  NodePtr<T> n_;
};

/// While alive, the gradients that a backward on this thread sends to leaves (parameters) go
/// into this scope's own buffers instead of the leaves' .grad: several threads can then run
/// forward and backward of different examples through one model at once, each into its own
/// gradients (train/thread_shards.h sums them). Values are shared and only read. Non-leaf nodes
/// belong to one thread's graph and are unaffected.
template <typename T>
class LeafGradScope {
 public:
  LeafGradScope() : prev_(current()) { current() = this; }
  ~LeafGradScope() { current() = prev_; }
  LeafGradScope(const LeafGradScope&) = delete;
  LeafGradScope& operator=(const LeafGradScope&) = delete;

  /// The gradient this scope holds for `leaf` (undefined when no backward reached it).
  const Tensor<T>& grad(const Var<T>& leaf) const;
  /// The buffer for `leaf`, created undefined on first use.
  Tensor<T>& slot(const Node<T>* leaf);
  /// The scope active on this thread, or nullptr.
  static LeafGradScope*& current();

 private:
  LeafGradScope* prev_;
  // Few leaves: a linear search. A deque, so that a slot handed out stays put as others are added.
  std::deque<std::pair<const Node<T>*, Tensor<T>>> grads_;
};

template <typename T>
Tensor<T>& Node<T>::grad_slot() {
  if (leaf)
    if (LeafGradScope<T>* s = LeafGradScope<T>::current()) return s->slot(this);
  return grad;
}

/// Allocates a node from the caching pool.
template <typename T>
NodePtr<T> new_node();

/// Records an op result: `value`, computed from `inputs`, whose gradient `backward` propagates.
/// When grad is disabled or no input requires grad the result is a constant leaf and nothing is
/// recorded. Returns the result; set saved tensors / args on result.node() after.
template <typename T>
Var<T> make_result(Tensor<T> value, std::initializer_list<const Var<T>*> inputs, const char* op,
                   typename Node<T>::BackwardFn backward);
template <typename T>
Var<T> make_result(Tensor<T> value, const std::vector<Var<T>>& inputs, const char* op,
                   typename Node<T>::BackwardFn backward);

/// True when the result of make_result will propagate gradients (worth saving tensors for).
template <typename T>
bool records(const Var<T>& result) {
  return !result.node()->leaf;
}

}  // namespace qkv
