#include "nn/module.h"

#include <unordered_map>

#include <fmt/format.h>

namespace qkv {
namespace {

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

}  // namespace

template <typename T>
void Module<T>::check_new_name(const std::string& name, const char* what) const {
  QKV_CHECK(!name.empty(), "Module '{}': cannot register a {} with an empty name", display_path(),
            what);
  QKV_CHECK(name.find('.') == std::string::npos,
            "Module '{}': cannot register {} '{}': names must not contain '.'", display_path(),
            what, name);
  for (const Entry& e : entries_)
    QKV_CHECK(e.name != name,
              "Module '{}': cannot register {} '{}': the name is already taken by a {}",
              display_path(), what, name, e.child ? "submodule" : "parameter");
}

template <typename T>
Var<T> Module<T>::register_parameter(const std::string& name, const Tensor<T>& value) {
  check_new_name(name, "parameter");
  QKV_CHECK(value.defined(), "Module '{}': parameter '{}' has no value", display_path(), name);
  entries_.push_back(Entry{name, Var<T>(value.clone(), /*requires_grad=*/true), nullptr});
  return entries_.back().param;
}

template <typename T>
void Module<T>::add_module(const std::string& name, std::unique_ptr<Module<T>> module) {
  check_new_name(name, "submodule");
  QKV_CHECK(module != nullptr, "Module '{}': submodule '{}' is null", display_path(), name);
  module->set_path(join(path_, name));
  module->train(training_);
  entries_.push_back(Entry{name, Var<T>(), std::move(module)});
}

template <typename T>
void Module<T>::set_path(const std::string& path) {
  path_ = path;
  for (Entry& e : entries_)
    if (e.child) e.child->set_path(join(path_, e.name));
}

template <typename T>
void Module<T>::collect(const std::string& prefix, NamedParameters& out) const {
  for (const Entry& e : entries_) {
    if (e.child) {
      e.child->collect(join(prefix, e.name), out);
    } else {
      out.emplace_back(join(prefix, e.name), e.param);
    }
  }
}

template <typename T>
typename Module<T>::NamedParameters Module<T>::named_parameters() const {
  NamedParameters out;
  collect("", out);
  return out;
}

template <typename T>
std::vector<Var<T>> Module<T>::parameters() const {
  std::vector<Var<T>> out;
  for (auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

template <typename T>
Var<T> Module<T>::parameter(const std::string& name) const {
  for (auto& [n, p] : named_parameters())
    if (n == name) return p;
  fail("Module '{}': no parameter named '{}'", display_path(), name);
}

template <typename T>
std::vector<std::pair<std::string, Module<T>*>> Module<T>::children() const {
  std::vector<std::pair<std::string, Module<T>*>> out;
  for (const Entry& e : entries_)
    if (e.child) out.emplace_back(e.name, e.child.get());
  return out;
}

template <typename T>
std::vector<std::pair<std::string, Module<T>*>> Module<T>::named_modules() {
  std::vector<std::pair<std::string, Module<T>*>> out;
  for (const Entry& e : entries_) {
    if (!e.child) continue;
    out.emplace_back(e.name, e.child.get());
    for (auto& [sub, m] : e.child->named_modules()) out.emplace_back(join(e.name, sub), m);
  }
  return out;
}

template <typename T>
void Module<T>::train(bool on) {
  training_ = on;
  on_train(on);
  for (Entry& e : entries_)
    if (e.child) e.child->train(on);
}

template <typename T>
void Module<T>::zero_grad() {
  for (auto& [name, p] : named_parameters())
    if (p.grad().defined()) p.grad().zero_();
}

template <typename T>
int64_t Module<T>::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, p] : named_parameters()) n += p.numel();
  return n;
}

template <typename T>
void Module<T>::assign(const std::vector<std::pair<std::string, Tensor<T>>>& values) {
  NamedParameters params = named_parameters();
  std::unordered_map<std::string, size_t> given;
  for (size_t i = 0; i < values.size(); ++i) {
    const std::string& name = values[i].first;
    QKV_CHECK(given.emplace(name, i).second, "load_parameters: parameter '{}' is given twice",
              name);
  }
  for (const auto& [name, p] : params) {
    auto it = given.find(name);
    QKV_CHECK(it != given.end(), "load_parameters: missing parameter '{}' (shape {})", name,
              p.shape());
    const Tensor<T>& v = values[it->second].second;
    QKV_CHECK(v.defined() && v.shape() == p.shape(),
              "load_parameters: parameter '{}' has shape {}, the model expects {}", name,
              v.defined() ? v.shape().str() : std::string("(undefined)"), p.shape());
    given.erase(it);
  }
  if (!given.empty()) {
    // Report the first unexpected name in the order given.
    size_t first = values.size();
    for (const auto& [name, i] : given) first = std::min(first, i);
    fail("load_parameters: unexpected parameter '{}' (the model has no parameter of that name)",
         values[first].first);
  }
  // Every check passed: copy in place, so Vars held elsewhere (optimizers) see the new values.
  std::unordered_map<std::string, const Tensor<T>*> by_name;
  for (const auto& [name, v] : values) by_name.emplace(name, &v);
  for (auto& [name, p] : params) p.value().vec() = by_name.at(name)->vec();
}

template <typename T>
void Module<T>::load_parameters(const std::vector<std::pair<std::string, Tensor<float>>>& params) {
  std::vector<std::pair<std::string, Tensor<T>>> values;
  values.reserve(params.size());
  for (const auto& [name, v] : params)
    values.emplace_back(name, v.defined() ? v.template to<T>() : Tensor<T>());
  assign(values);
}

template <typename T>
std::vector<std::pair<std::string, Tensor<float>>> Module<T>::export_parameters() const {
  std::vector<std::pair<std::string, Tensor<float>>> out;
  for (const auto& [name, p] : named_parameters())
    out.emplace_back(name, p.value().template to<float>());
  return out;
}

template class Module<float>;
template class Module<double>;

}  // namespace qkv
