// Module<T>: a node of the model tree with named parameters and named submodules, as in
// PyTorch's C++ frontend. named_parameters() joins names with dots, in registration order:
// "blocks.0.attn.W_Q.weight". Parameters are Var<T> leaves that require grad.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.h"
#include "core/error.h"
#include "core/tensor.h"

namespace qkv {

template <typename T>
class Module {
 public:
  using NamedParameters = std::vector<std::pair<std::string, Var<T>>>;

  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  Module(Module&&) = default;
  Module& operator=(Module&&) = default;

  /// Registers a parameter: a leaf holding `value` (its own storage) that requires grad. The name
  /// must be non-empty, contain no '.', and be new to this module (parameter or submodule).
  /// Returns a handle sharing the parameter's node (keep it as a member).
  Var<T> register_parameter(const std::string& name, const Tensor<T>& value);
  /// Registers a submodule under `name` (same rules) and returns it.
  template <typename M>
  M& register_module(const std::string& name, std::unique_ptr<M> module) {
    M& ref = *module;
    add_module(name, std::unique_ptr<Module<T>>(std::move(module)));
    return ref;
  }

  /// Every parameter of this module and its submodules, dotted names, registration order.
  NamedParameters named_parameters() const;
  /// The same parameters without names.
  std::vector<Var<T>> parameters() const;
  /// The parameter with this dotted name; throws qkv::Error naming it when absent.
  Var<T> parameter(const std::string& name) const;
  /// Every module below this one (not itself), with its path relative to this one, depth first
  /// in registration order.
  std::vector<std::pair<std::string, Module<T>*>> named_modules();
  /// Direct submodules, in registration order.
  std::vector<std::pair<std::string, Module<T>*>> children() const;

  /// This module's dotted path in the tree it was registered into ("" for a root).
  const std::string& path() const { return path_; }
  /// path(), or "(root)" for a root: for error messages.
  std::string display_path() const { return path_.empty() ? "(root)" : path_; }

  /// Training mode (dropout active) for this module and every submodule.
  void train(bool on = true);
  /// Evaluation mode: train(false).
  void eval() { train(false); }
  bool training() const { return training_; }

  /// Sets every parameter's .grad to zero (where one exists).
  void zero_grad();
  /// Total number of scalar parameters.
  int64_t num_parameters() const;

  /// Overwrites every parameter, converting from float. Names and shapes must match exactly:
  /// a missing, unexpected, repeated or wrongly shaped entry throws qkv::Error naming the
  /// parameter, before anything is changed.
  void load_parameters(const std::vector<std::pair<std::string, Tensor<float>>>& params);
  /// Every parameter as float32 copies, dotted names, registration order.
  std::vector<std::pair<std::string, Tensor<float>>> export_parameters() const;
  /// Copies (and converts) every parameter of `other`, a module of the same structure in another
  /// scalar type (a float-trained model into a float64 one, for gradchecking it). Names and
  /// shapes are checked as load_parameters does.
  template <typename U>
  void copy_parameters_from(const Module<U>& other) {
    std::vector<std::pair<std::string, Tensor<T>>> values;
    for (const auto& [name, p] : other.named_parameters())
      values.emplace_back(name, p.value().template to<T>());
    assign(values);
  }

 protected:
  /// Called by train() on each module after its flag changes (for modules with extra state).
  virtual void on_train(bool /*on*/) {}

 private:
  struct Entry {
    std::string name;
    Var<T> param;                      // defined for a parameter
    std::unique_ptr<Module<T>> child;  // set for a submodule
  };

  void check_new_name(const std::string& name, const char* what) const;
  void add_module(const std::string& name, std::unique_ptr<Module<T>> module);
  void set_path(const std::string& path);
  void collect(const std::string& prefix, NamedParameters& out) const;
  void assign(const std::vector<std::pair<std::string, Tensor<T>>>& values);

  std::vector<Entry> entries_;
  std::string path_;
  bool training_ = true;
};

extern template class Module<float>;
extern template class Module<double>;

}  // namespace qkv
