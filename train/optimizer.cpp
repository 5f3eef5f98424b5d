#include "train/optimizer.h"

#include <cmath>
#include <set>

#include "autograd/kernels.h"
#include "core/error.h"
#include "core/json_reader.h"

namespace qkv {
namespace {

using json = nlohmann::json;

/// A parameter's buffer as an Eigen array, for coefficient-wise update formulas.
template <typename T>
using ArrMap = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>, Eigen::Aligned64>;
template <typename T>
using ConstArrMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>, Eigen::Aligned64>;

template <typename T>
ArrMap<T> arr(Tensor<T>& t) {
  return ArrMap<T>(t.data(), t.numel());
}
template <typename T>
ConstArrMap<T> arr(const Tensor<T>& t) {
  return ConstArrMap<T>(t.data(), t.numel());
}

void check_object(const json& h, const std::string& type) {
  QKV_CHECK(h.is_object() || h.is_null(),
            "{} optimizer: hyper-parameters must be a JSON object, got {}", type, h.dump());
}

/// h[key] as a finite number (core/json_reader.h's rule), or `current` when absent.
double number(const json& h, const char* key, double current, const std::string& type) {
  JsonReader(type + " optimizer", h).number(key, current);
  QKV_CHECK(std::isfinite(current), "{} optimizer: '{}' must be finite, got {}", type, key,
            current);
  return current;
}

/// h[key] as true or false, or `current` when absent.
bool boolean(const json& h, const char* key, bool current, const std::string& type) {
  JsonReader(type + " optimizer", h).boolean(key, current);
  return current;
}

void check_range(bool ok, const std::string& type, const char* key, double value,
                 const char* range) {
  QKV_CHECK(ok, "{} optimizer: {} = {} is out of range (must be {})", type, key, value, range);
}

/// Rejects keys that make_optimizer does not know (a typo in a config).
void check_keys(const json& h, const std::string& type, const std::set<std::string>& known) {
  if (!h.is_object()) return;
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (known.count(it.key())) continue;
    std::string list;
    for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
    fail("{} optimizer: unknown hyper-parameter '{}' (known: {})", type, it.key(), list);
  }
}

bool is_ln_component(const std::string& c) {
  if (c.size() < 2 || c.compare(0, 2, "ln") != 0) return false;
  if (c.size() == 2) return true;
  if (c[2] == '_') return c.size() > 3;
  for (size_t i = 2; i < c.size(); ++i)
    if (c[i] < '0' || c[i] > '9') return false;
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Optimizer: parameters, slots, step loop, state export/import.

template <typename T>
Optimizer<T>::Optimizer(OptimParams<T> params, double lr, std::vector<std::string> slot_names)
    : params_(std::move(params)), lr_(lr) {
  std::set<std::string> seen;
  for (const auto& [name, var] : params_) {
    QKV_CHECK(var.defined(), "optimizer: parameter '{}' is an undefined Var", name);
    QKV_CHECK(var.is_leaf(), "optimizer: parameter '{}' is the result of op '{}', not a leaf", name,
              var.op());
    QKV_CHECK(seen.insert(name).second, "optimizer: parameter name '{}' appears twice", name);
  }
  set_slots(std::move(slot_names));
}

template <typename T>
void Optimizer<T>::set_slots(std::vector<std::string> names) {
  std::vector<std::vector<Tensor<T>>> slots;
  for (const std::string& name : names) {
    size_t s = 0;
    while (s < slot_names_.size() && slot_names_[s] != name) ++s;
    if (s < slot_names_.size()) {
      slots.push_back(std::move(slots_[s]));
      continue;
    }
    std::vector<Tensor<T>> fresh;
    fresh.reserve(params_.size());
    for (const auto& p : params_) fresh.emplace_back(p.second.shape());
    slots.push_back(std::move(fresh));
  }
  slot_names_ = std::move(names);
  slots_ = std::move(slots);
}

template <typename T>
void Optimizer<T>::set_lr(double lr) {
  QKV_CHECK(std::isfinite(lr) && lr >= 0, "{} optimizer: set_lr({}): must be finite and >= 0",
            type(), lr);
  lr_ = lr;
}

template <typename T>
void Optimizer<T>::step() {
  NoGradGuard no_grad;
  ++step_;
  begin_step();
  for (size_t i = 0; i < params_.size(); ++i) {
    Var<T>& v = params_[i].second;
    const Tensor<T>& g = v.grad();
    if (!g.defined()) continue;
    QKV_CHECK(g.shape() == v.shape(),
              "{} optimizer: gradient of '{}' has shape {}, the parameter has {}", type(),
              params_[i].first, g.shape(), v.shape());
    update(i, v.value(), g);
  }
}

template <typename T>
void Optimizer<T>::zero_grad() {
  for (auto& p : params_) p.second.zero_grad();
}

template <typename T>
const Tensor<T>& Optimizer<T>::slot(const std::string& slot, const std::string& name) const {
  for (size_t s = 0; s < slot_names_.size(); ++s) {
    if (slot_names_[s] != slot) continue;
    for (size_t i = 0; i < params_.size(); ++i)
      if (params_[i].first == name) return slots_[s][i];
    fail("{} optimizer: no parameter named '{}'", type(), name);
  }
  fail("{} optimizer: no slot named '{}'", type(), slot);
}

template <typename T>
OptimizerState<T> Optimizer<T>::export_state() const {
  OptimizerState<T> st;
  st.type = type();
  st.hparams = hparams();
  st.step = step_;
  for (size_t s = 0; s < slot_names_.size(); ++s) {
    auto& list = st.slots[slot_names_[s]];
    for (size_t i = 0; i < params_.size(); ++i)
      list.emplace_back(params_[i].first, slots_[s][i].clone());
  }
  return st;
}

template <typename T>
void Optimizer<T>::import_state(const OptimizerState<T>& st) {
  const std::string me = type();
  QKV_CHECK(st.type == me, "optimizer state is for '{}', but this optimizer is '{}'", st.type, me);
  check_object(st.hparams, me);
  QKV_CHECK(st.step >= 0, "{} optimizer state: step {} is negative", me, st.step);
  const std::vector<std::string> expected = check_hparams(st.hparams);
  std::string expected_list;
  for (const std::string& e : expected) expected_list += (expected_list.empty() ? "" : ", ") + e;
  if (expected_list.empty()) expected_list = "none";

  // Validate everything before changing anything: sources[s][i] is slot s of parameter i.
  std::vector<std::vector<const Tensor<T>*>> sources(expected.size());
  for (const auto& [slot, list] : st.slots) {
    size_t s = 0;
    while (s < expected.size() && expected[s] != slot) ++s;
    QKV_CHECK(s < expected.size(), "{} optimizer state: unexpected slot '{}' (expected: {})", me,
              slot, expected_list);
    sources[s].assign(params_.size(), nullptr);
    for (const auto& [name, t] : list) {
      size_t i = 0;
      while (i < params_.size() && params_[i].first != name) ++i;
      QKV_CHECK(i < params_.size(),
                "{} optimizer state: slot '{}' holds parameter '{}', which the model does not have",
                me, slot, name);
      QKV_CHECK(sources[s][i] == nullptr, "{} optimizer state: slot '{}' holds '{}' twice", me,
                slot, name);
      QKV_CHECK(t.defined(), "{} optimizer state: slot '{}' of '{}' is an undefined tensor", me,
                slot, name);
      QKV_CHECK(t.shape() == params_[i].second.shape(),
                "{} optimizer state: slot '{}' of '{}' has shape {}, the parameter has {}", me,
                slot, name, t.shape(), params_[i].second.shape());
      QKV_CHECK(t.all_finite(), "{} optimizer state: slot '{}' of '{}' has non-finite values", me,
                slot, name);
      sources[s][i] = &t;
    }
  }
  for (size_t s = 0; s < expected.size(); ++s) {
    QKV_CHECK(!sources[s].empty(), "{} optimizer state: slot '{}' is missing", me, expected[s]);
    for (size_t i = 0; i < params_.size(); ++i)
      QKV_CHECK(sources[s][i] != nullptr,
                "{} optimizer state: slot '{}' has no entry for parameter '{}'", me, expected[s],
                params_[i].first);
  }

  apply_hparams(st.hparams);  // sets slot_names_ == expected
  for (size_t s = 0; s < expected.size(); ++s)
    for (size_t i = 0; i < params_.size(); ++i) arr(slots_[s][i]) = arr(*sources[s][i]);
  step_ = st.step;
}

// ---------------------------------------------------------------------------------------------
// SGD, as torch.optim.SGD with dampening 0.

template <typename T>
Sgd<T>::Sgd(OptimParams<T> params, const SgdOptions& options)
    : Optimizer<T>(std::move(params), options.lr, {}) {
  json h = {{"lr", options.lr},
            {"momentum", options.momentum},
            {"nesterov", options.nesterov},
            {"weight_decay", options.weight_decay}};
  opt_ = parse(h);
  this->set_lr(opt_.lr);
  this->set_slots(check_hparams(h));
}

template <typename T>
SgdOptions Sgd<T>::parse(const json& h) const {
  const std::string me = "sgd";
  SgdOptions o = opt_;
  o.lr = number(h, "lr", this->lr_, me);
  o.momentum = number(h, "momentum", o.momentum, me);
  o.nesterov = boolean(h, "nesterov", o.nesterov, me);
  o.weight_decay = number(h, "weight_decay", o.weight_decay, me);
  double dampening = number(h, "dampening", 0.0, me);
  check_range(o.lr >= 0, me, "lr", o.lr, ">= 0");
  check_range(o.momentum >= 0, me, "momentum", o.momentum, ">= 0");
  check_range(o.weight_decay >= 0, me, "weight_decay", o.weight_decay, ">= 0");
  QKV_CHECK(dampening == 0, "sgd optimizer: dampening = {} is not supported (only 0)", dampening);
  QKV_CHECK(!o.nesterov || o.momentum > 0, "sgd optimizer: nesterov needs momentum > 0");
  return o;
}

template <typename T>
std::vector<std::string> Sgd<T>::check_hparams(const json& h) const {
  return parse(h).momentum > 0 ? std::vector<std::string>{"momentum"} : std::vector<std::string>{};
}

template <typename T>
void Sgd<T>::apply_hparams(const json& h) {
  opt_ = parse(h);
  this->lr_ = opt_.lr;
  this->set_slots(opt_.momentum > 0 ? std::vector<std::string>{"momentum"}
                                    : std::vector<std::string>{});
}

template <typename T>
json Sgd<T>::hparams() const {
  return {{"lr", this->lr_},
          {"momentum", opt_.momentum},
          {"dampening", 0.0},
          {"nesterov", opt_.nesterov},
          {"weight_decay", opt_.weight_decay}};
}

template <typename T>
void Sgd<T>::update(size_t i, Tensor<T>& p, const Tensor<T>& g) {
  ArrMap<T> P = arr(p);
  ConstArrMap<T> G = arr(g);
  const T lr = T(this->lr_), mu = T(opt_.momentum), wd = T(opt_.weight_decay);
  // D is the (L2-regularised) gradient d_p, an expression evaluated where it is used.
  auto run = [&](const auto& D) {
    if (opt_.momentum == 0) {
      P += -lr * D;
      return;
    }
    ArrMap<T> B = arr(this->slots_[0][i]);
    B = mu * B + D;  // b starts at 0, so the first step gives b = d_p, as PyTorch's clone
    if (opt_.nesterov) {
      P += -lr * (D + mu * B);
    } else {
      P += -lr * B;
    }
  };
  if (opt_.weight_decay != 0) {
    run(G + wd * P);
  } else {
    run(G);
  }
}

// ---------------------------------------------------------------------------------------------
// Adam and AdamW, as torch.optim.Adam / AdamW (amsgrad off, maximize off).

template <typename T>
Adam<T>::Adam(OptimParams<T> params, const AdamOptions& options)
    : Adam(std::move(params), options, /*decoupled=*/false) {}

template <typename T>
Adam<T>::Adam(OptimParams<T> params, const AdamOptions& options, bool decoupled)
    : Optimizer<T>(std::move(params), options.lr, {"m", "v"}),
      decays_(this->params_.size(), 1),
      opt_(options),
      decoupled_(decoupled) {
  opt_ = parse(json{{"lr", options.lr},
                    {"beta1", options.beta1},
                    {"beta2", options.beta2},
                    {"eps", options.eps},
                    {"weight_decay", options.weight_decay}});
  this->set_lr(opt_.lr);
}

template <typename T>
AdamOptions Adam<T>::parse(const json& h) const {
  const std::string me = decoupled_ ? "adamw" : "adam";
  AdamOptions o = opt_;
  o.lr = number(h, "lr", this->lr_, me);
  o.beta1 = number(h, "beta1", o.beta1, me);
  o.beta2 = number(h, "beta2", o.beta2, me);
  // PyTorch's spelling; it wins over beta1/beta2.
  if (h.is_object() && h.contains("betas")) {
    const json& b = h["betas"];
    QKV_CHECK(b.is_array() && b.size() == 2 && b[0].is_number() && b[1].is_number(),
              "{} optimizer: 'betas' must be two numbers, got {}", me, b.dump());
    o.beta1 = b[0].get<double>();
    o.beta2 = b[1].get<double>();
  }
  o.eps = number(h, "eps", o.eps, me);
  o.weight_decay = number(h, "weight_decay", o.weight_decay, me);
  check_range(o.lr >= 0, me, "lr", o.lr, ">= 0");
  check_range(o.beta1 >= 0 && o.beta1 < 1, me, "beta1", o.beta1, "in [0, 1)");
  check_range(o.beta2 >= 0 && o.beta2 < 1, me, "beta2", o.beta2, "in [0, 1)");
  check_range(o.eps >= 0, me, "eps", o.eps, ">= 0");
  check_range(o.weight_decay >= 0, me, "weight_decay", o.weight_decay, ">= 0");
  QKV_CHECK(!boolean(h, "amsgrad", false, me), "{} optimizer: amsgrad is not supported", me);
  return o;
}

template <typename T>
std::vector<std::string> Adam<T>::check_hparams(const json& h) const {
  parse(h);
  return {"m", "v"};
}

template <typename T>
void Adam<T>::apply_hparams(const json& h) {
  opt_ = parse(h);
  this->lr_ = opt_.lr;
}

template <typename T>
json Adam<T>::hparams() const {
  return {{"lr", this->lr_},
          {"beta1", opt_.beta1},
          {"beta2", opt_.beta2},
          {"eps", opt_.eps},
          {"weight_decay", opt_.weight_decay}};
}

template <typename T>
void Adam<T>::begin_step() {
  // Bias corrections in double, as PyTorch computes them in Python floats.
  const double t = static_cast<double>(this->step_);
  const double bc1 = 1.0 - std::pow(opt_.beta1, t);
  const double bc2 = 1.0 - std::pow(opt_.beta2, t);
  step_size_ = this->lr_ / bc1;
  bc2_sqrt_ = std::sqrt(bc2);
}

template <typename T>
void Adam<T>::update(size_t i, Tensor<T>& p, const Tensor<T>& g) {
  const T b1 = T(opt_.beta1), b2 = T(opt_.beta2);
  const T c1 = T(1 - opt_.beta1), c2 = T(1 - opt_.beta2);
  const bool decay = opt_.weight_decay != 0 && decays_[i];
  T* m = this->slots_[0][i].data();
  T* v = this->slots_[1][i].data();
  // Element by element, so in chunks on all threads (for_chunks: the same bits for any count).
  for_chunks(p.numel(), [&](int64_t b, int64_t n) {
    ArrMap<T> P(p.data() + b, n), M(m + b, n), V(v + b, n);
    ConstArrMap<T> G(g.data() + b, n);
    // m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²  (D: the gradient, L2-regularised for Adam)
    auto moments = [&](const auto& D) {
      M = b1 * M + c1 * D;
      V = b2 * V + c2 * (D * D);
    };
    if (decoupled_) {
      if (decay) P *= T(1 - this->lr_ * opt_.weight_decay);  // AdamW: p ← p(1 − lr·wd) first
      moments(G);
    } else if (decay) {
      moments(G + T(opt_.weight_decay) * P);
    } else {
      moments(G);
    }
    // p ← p − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)
    P += T(-step_size_) * (M / (V.sqrt() / T(bc2_sqrt_) + T(opt_.eps)));
  });
}

bool adamw_default_decays(const std::string& name) {
  const std::string bias = ".bias";
  if (name == "bias" || (name.size() >= bias.size() &&
                         name.compare(name.size() - bias.size(), bias.size(), bias) == 0))
    return false;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('.', start);
    if (end == std::string::npos) end = name.size();
    const std::string c = name.substr(start, end - start);
    if (is_ln_component(c) || c == "tok_emb" || c == "pos_emb") return false;
    start = end + 1;
  }
  return true;
}

template <typename T>
AdamW<T>::AdamW(OptimParams<T> params, const AdamWOptions& options)
    : Adam<T>(
          std::move(params),
          AdamOptions{options.lr, options.beta1, options.beta2, options.eps, options.weight_decay},
          /*decoupled=*/true) {
  for (size_t i = 0; i < this->params_.size(); ++i) {
    const std::string& name = this->params_[i].first;
    this->decays_[i] = options.decays ? options.decays(name) : adamw_default_decays(name);
  }
}

template <typename T>
bool AdamW<T>::decays(const std::string& name) const {
  for (size_t i = 0; i < this->params_.size(); ++i)
    if (this->params_[i].first == name) return this->decays_[i] != 0;
  return false;
}

template <typename T>
std::unique_ptr<Optimizer<T>> make_optimizer(const std::string& type, OptimParams<T> params,
                                             const json& h) {
  check_object(h, type);
  if (type == "sgd") {
    check_keys(h, type, {"lr", "momentum", "dampening", "nesterov", "weight_decay"});
    SgdOptions o;
    o.lr = number(h, "lr", o.lr, type);
    o.momentum = number(h, "momentum", o.momentum, type);
    o.nesterov = boolean(h, "nesterov", o.nesterov, type);
    o.weight_decay = number(h, "weight_decay", o.weight_decay, type);
    const double dampening = number(h, "dampening", 0.0, type);
    QKV_CHECK(dampening == 0, "sgd optimizer: dampening = {} is not supported (only 0)", dampening);
    return std::make_unique<Sgd<T>>(std::move(params), o);
  }
  if (type == "adam" || type == "adamw") {
    check_keys(h, type, {"lr", "beta1", "beta2", "betas", "eps", "weight_decay", "amsgrad"});
    QKV_CHECK(!h.contains("betas") || (!h.contains("beta1") && !h.contains("beta2")),
              "{} optimizer: give either 'betas' or 'beta1'/'beta2', not both", type);
    std::unique_ptr<Optimizer<T>> opt;
    if (type == "adam") {
      opt = std::make_unique<Adam<T>>(std::move(params));
    } else {
      opt = std::make_unique<AdamW<T>>(std::move(params));
    }
    OptimizerState<T> st = opt->export_state();  // zero slots, default hyper-parameters
    for (auto it = h.begin(); h.is_object() && it != h.end(); ++it) st.hparams[it.key()] = *it;
    if (h.contains("betas")) {  // PyTorch's spelling, as import_state knows only beta1/beta2
      const json& b = h["betas"];
      QKV_CHECK(b.is_array() && b.size() == 2 && b[0].is_number() && b[1].is_number(),
                "{} optimizer: 'betas' must be two numbers, got {}", type, b.dump());
      st.hparams["beta1"] = b[0];
      st.hparams["beta2"] = b[1];
      st.hparams.erase("betas");
    }
    opt->import_state(st);
    return opt;
  }
  fail("unknown optimizer '{}' (valid: sgd, adam, adamw)", type);
}

template class Optimizer<float>;
template class Optimizer<double>;
template class Sgd<float>;
template class Sgd<double>;
template class Adam<float>;
template class Adam<double>;
template class AdamW<float>;
template class AdamW<double>;
template std::unique_ptr<Optimizer<float>> make_optimizer(const std::string&, OptimParams<float>,
                                                          const json&);
template std::unique_ptr<Optimizer<double>> make_optimizer(const std::string&, OptimParams<double>,
                                                           const json&);

}  // namespace qkv
