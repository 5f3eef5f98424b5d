#include <limits>

#include "autograd/var.h"
#include "core/error.h"

namespace qkv {
namespace {

thread_local bool g_grad_enabled = true;

/// Hands node blocks to std::allocate_shared from the caching pool.
template <typename U>
struct PoolAllocator {
  using value_type = U;
  PoolAllocator() = default;
  template <typename V>
  PoolAllocator(const PoolAllocator<V>&) {}
  U* allocate(size_t n) { return static_cast<U*>(pool::acquire(n * sizeof(U))); }
  void deallocate(U* p, size_t n) noexcept { pool::release(p, n * sizeof(U)); }
  template <typename V>
  bool operator==(const PoolAllocator<V>&) const {
    return true;
  }
  template <typename V>
  bool operator!=(const PoolAllocator<V>&) const {
    return false;
  }
};

uint64_t next_mark() {
  static std::atomic<uint64_t> mark{0};
  return ++mark;
}

}  // namespace

bool grad_enabled() {
  return g_grad_enabled;
}
void set_grad_enabled(bool enabled) {
  g_grad_enabled = enabled;
}

template <typename T>
NodePtr<T> new_node() {
  return std::allocate_shared<Node<T>>(PoolAllocator<Node<T>>());
}

template <typename T>
Var<T>::Var(Tensor<T> value, bool requires_grad) : n_(new_node<T>()) {
  n_->value = std::move(value);
  n_->requires_grad = requires_grad;
}

template <typename T>
Var<T>& Var<T>::requires_grad_(bool on) {
  QKV_CHECK(n_->leaf, "requires_grad_: only a leaf's flag can be set; '{}' is an op result",
            n_->op);
  n_->requires_grad = on;
  return *this;
}

template <typename T>
Var<T>& Var<T>::retain_grad() {
  n_->keep_grad = true;
  return *this;
}

template <typename T>
void Var<T>::zero_grad() {
  if (n_->grad.defined()) n_->grad.zero_();
}

template <typename T>
void Var<T>::backward(bool retain_graph) {
  QKV_CHECK(n_->value.numel() == 1,
            "backward(): the output has shape {}, not a scalar; pass an upstream gradient of that "
            "shape",
            n_->value.shape());
  backward(Tensor<T>::full(n_->value.shape(), T(1)), retain_graph);
}

template <typename T>
void Var<T>::backward(const Tensor<T>& upstream, bool retain_graph) {
  QKV_CHECK(n_->requires_grad,
            "backward(): this value does not require grad (no input of '{}' requires grad)",
            n_->op);
  QKV_CHECK(upstream.shape() == n_->value.shape(),
            "backward(): upstream gradient has shape {} but the output has shape {}",
            upstream.shape(), n_->value.shape());

  // Topological order by an iterative depth-first search: a node is emitted after all its inputs.
  thread_local std::vector<Node<T>*> order;
  thread_local std::vector<std::pair<Node<T>*, size_t>> stack;
  order.clear();
  stack.clear();
  const uint64_t mark = next_mark();
  stack.emplace_back(n_.get(), 0);
  n_->mark = mark;
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      Node<T>* in = node->inputs[next++].get();
      // Leaves are not swept: not visiting them leaves them unwritten (the threads of
      // LeafGradScope share them).
      if (in->requires_grad && !in->leaf && in->mark != mark) {
        in->mark = mark;
        stack.emplace_back(in, 0);
      }
    } else {
      QKV_CHECK(!node->freed,
                "backward(): trying to backward through the graph a second time (the graph of "
                "'{}' was freed by an earlier backward); call the first backward with "
                "retain_graph=true",
                node->op);
      order.push_back(node);
      stack.pop_back();
    }
  }

  // One reversed sweep: each node adds its contribution into its inputs' .grad.
  n_->grad_buffer().add_(upstream);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node<T>* node = *it;
    if (node->leaf) continue;
    if (node->grad.defined() && node->backward) node->backward(*node);
    if (!node->keep_grad) node->grad = Tensor<T>();
  }
  // Free the graph only after the sweep: clearing a node's inputs may destroy an intermediate that
  // only its consumer held. Walking inputs-first, every node destroyed here was already swept.
  if (!retain_graph) {
    for (Node<T>* node : order) {
      if (node->leaf) continue;
      node->backward = nullptr;
      node->inputs.clear();
      for (auto& s : node->saved) s = Tensor<T>();
      node->freed = true;
    }
  }
}

template <typename T>
static Var<T> make_result_impl(Tensor<T> value, const Var<T>* const* inputs, size_t n,
                               const char* op, typename Node<T>::BackwardFn backward) {
  Var<T> out(std::move(value), false);
  Node<T>& node = *out.node();
  node.op = op;
  if (!grad_enabled()) return out;
  bool any = false;
  for (size_t i = 0; i < n; ++i) any = any || inputs[i]->requires_grad();
  if (!any) return out;
  node.leaf = false;
  node.requires_grad = true;
  node.backward = backward;
  for (size_t i = 0; i < n; ++i) node.inputs.push_back(inputs[i]->ptr());
  return out;
}

template <typename T>
Var<T> make_result(Tensor<T> value, std::initializer_list<const Var<T>*> inputs, const char* op,
                   typename Node<T>::BackwardFn backward) {
  return make_result_impl(std::move(value), inputs.begin(), inputs.size(), op, backward);
}

template <typename T>
Var<T> make_result(Tensor<T> value, const std::vector<Var<T>>& inputs, const char* op,
                   typename Node<T>::BackwardFn backward) {
  thread_local std::vector<const Var<T>*> ptrs;
  ptrs.clear();
  for (const auto& v : inputs) ptrs.push_back(&v);
  return make_result_impl(std::move(value), ptrs.data(), ptrs.size(), op, backward);
}

template <typename T>
LeafGradScope<T>*& LeafGradScope<T>::current() {
  thread_local LeafGradScope<T>* scope = nullptr;
  return scope;
}

template <typename T>
Tensor<T>& LeafGradScope<T>::slot(const Node<T>* leaf) {
  for (auto& [node, g] : grads_)
    if (node == leaf) return g;
  return grads_.emplace_back(leaf, Tensor<T>()).second;
}

template <typename T>
const Tensor<T>& LeafGradScope<T>::grad(const Var<T>& leaf) const {
  static const Tensor<T> none;
  for (const auto& [node, g] : grads_)
    if (node == leaf.node()) return g;
  return none;
}

#define QKV_INSTANTIATE(T)                                                                     \
  template class Var<T>;                                                                       \
  template class LeafGradScope<T>;                                                             \
  template NodePtr<T> new_node<T>();                                                           \
  template Var<T> make_result<T>(Tensor<T>, std::initializer_list<const Var<T>*>, const char*, \
                                 Node<T>::BackwardFn);                                         \
  template Var<T> make_result<T>(Tensor<T>, const std::vector<Var<T>>&, const char*,           \
                                 Node<T>::BackwardFn);
QKV_INSTANTIATE(float)
QKV_INSTANTIATE(double)
#undef QKV_INSTANTIATE

}  // namespace qkv
