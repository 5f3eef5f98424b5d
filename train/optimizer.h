// Optimizers over a list of named parameters, each matching the update formulas of its
// torch.optim counterpart (PyTorch 1.13 / 2.x, single-tensor, non-fused path):
//
//   SGD   g ← g + wd·p                         (L2, when weight_decay > 0)
//         b ← μ·b + g                          (dampening 0; first step b = g, as b starts at 0)
//         d ← nesterov ? g + μ·b : b           (d = g when μ = 0)
//         p ← p − lr·d
//   Adam  g ← g + wd·p                         (L2, coupled, as torch.optim.Adam)
//         m ← β₁·m + (1−β₁)·g;   v ← β₂·v + (1−β₂)·g²
//         p ← p − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)      (ε after the square root)
//   AdamW p ← p·(1 − lr·wd)                    (decoupled, before the Adam update; no L2 term)
//         then Adam as above with wd = 0
//
// The step count t is global (the number of step() calls). A parameter whose gradient is undefined
// is skipped, but t still advances; PyTorch keeps a count per parameter, so the two differ only for
// a parameter that misses steps. State (m, v, momentum) is allocated zeroed at construction, so
// step() allocates nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/var.h"
#include "core/tensor.h"

namespace qkv {

/// Parameters as (canonical name, leaf) pairs, in Module::named_parameters() order.
template <typename T>
using OptimParams = std::vector<std::pair<std::string, Var<T>>>;

/// An optimizer's whole state, for checkpoints (docs/checkpoint-format.md, /optimizer).
template <typename T>
struct OptimizerState {
  std::string type;        ///< "sgd" | "adam" | "adamw"
  nlohmann::json hparams;  ///< flat object of numbers and bools (lr, beta1, …)
  int64_t step = 0;        ///< number of step() calls so far
  /// slot ("m", "v", "momentum") → (parameter name, tensor of the parameter's shape), param order.
  std::map<std::string, std::vector<std::pair<std::string, Tensor<T>>>> slots;
};

template <typename T>
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// "sgd", "adam" or "adamw".
  virtual std::string type() const = 0;
  /// Updates every parameter whose gradient is defined, recording no graph; advances steps().
  void step();
  /// Zeroes every defined gradient (keeping its buffer).
  void zero_grad();

  double lr() const { return lr_; }
  /// Sets the learning rate for the following steps (schedules call this before each step).
  void set_lr(double lr);
  int64_t steps() const { return step_; }
  const OptimParams<T>& params() const { return params_; }
  /// The hyper-parameters as a flat JSON object (what export_state() writes).
  virtual nlohmann::json hparams() const = 0;
  /// Slot names in a fixed order ({"m", "v"} or {"momentum"}; SGD without momentum has none).
  const std::vector<std::string>& slot_names() const { return slot_names_; }
  /// Slot `slot` of parameter `name` (for inspection and tests).
  const Tensor<T>& slot(const std::string& slot, const std::string& name) const;

  /// A deep copy of the state: type, hyper-parameters, step, every slot of every parameter.
  OptimizerState<T> export_state() const;
  /// Restores a state written by export_state() (or by h5py with the same layout). Validates the
  /// type, hyper-parameters (unknown keys ignored, missing ones keep their current values), that
  /// every slot holds every parameter with its shape and nothing else; throws qkv::Error naming
  /// the problem and leaves this optimizer unchanged on failure.
  void import_state(const OptimizerState<T>& state);

 protected:
  Optimizer(OptimParams<T> params, double lr, std::vector<std::string> slot_names);
  /// Precomputes per-step scalars (bias corrections); step_ is already the new count.
  virtual void begin_step() {}
  /// Updates parameter i in place from its gradient g.
  virtual void update(size_t i, Tensor<T>& p, const Tensor<T>& g) = 0;
  /// Validates hyper-parameters `h` (missing keys keep their current values; unknown keys are
  /// ignored) and returns the slot names the optimizer has with them; throws qkv::Error.
  virtual std::vector<std::string> check_hparams(const nlohmann::json& h) const = 0;
  /// Applies `h`, already accepted by check_hparams().
  virtual void apply_hparams(const nlohmann::json& h) = 0;
  /// Re-sizes the slot list (SGD gains or loses its momentum slot with μ).
  void set_slots(std::vector<std::string> names);

  OptimParams<T> params_;
  std::vector<std::string> slot_names_;
  std::vector<std::vector<Tensor<T>>> slots_;  // slots_[s][i]: slot s of parameter i
  double lr_;
  int64_t step_ = 0;
};

struct SgdOptions {
  double lr = 1e-3;
  double momentum = 0.0;      ///< μ; 0 = plain SGD
  bool nesterov = false;      ///< needs momentum > 0 (as PyTorch)
  double weight_decay = 0.0;  ///< L2 added to the gradient
};

template <typename T>
class Sgd : public Optimizer<T> {
 public:
  Sgd(OptimParams<T> params, const SgdOptions& options = {});
  std::string type() const override { return "sgd"; }
  nlohmann::json hparams() const override;
  const SgdOptions& options() const { return opt_; }

 protected:
  void update(size_t i, Tensor<T>& p, const Tensor<T>& g) override;
  std::vector<std::string> check_hparams(const nlohmann::json& h) const override;
  void apply_hparams(const nlohmann::json& h) override;

 private:
  SgdOptions parse(const nlohmann::json& h) const;
  SgdOptions opt_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  ///< Adam: L2 added to the gradient; AdamW: see AdamWOptions
};

template <typename T>
class Adam : public Optimizer<T> {
 public:
  Adam(OptimParams<T> params, const AdamOptions& options = {});
  std::string type() const override { return "adam"; }
  nlohmann::json hparams() const override;
  const AdamOptions& options() const { return opt_; }

 protected:
  /// Adam's parameters with `decoupled` weight decay (AdamW) instead of L2.
  Adam(OptimParams<T> params, const AdamOptions& options, bool decoupled);
  void begin_step() override;
  void update(size_t i, Tensor<T>& p, const Tensor<T>& g) override;
  std::vector<std::string> check_hparams(const nlohmann::json& h) const override;
  void apply_hparams(const nlohmann::json& h) override;
  /// Whether parameter i is decayed (AdamW's per-name rule; Adam decays all).
  std::vector<char> decays_;

 private:
  AdamOptions parse(const nlohmann::json& h) const;
  AdamOptions opt_;
  bool decoupled_;
  double step_size_ = 0, bc2_sqrt_ = 1;
};

/// AdamW's default rule: true unless the name ends in ".bias", has a LayerNorm component ("ln",
/// "ln1", "ln2", "ln_f", "ln_x", …: "ln" then nothing, digits or "_…"), or a "tok_emb" / "pos_emb"
/// component.
bool adamw_default_decays(const std::string& name);

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;  ///< decoupled: p ← p·(1 − lr·wd), as torch.optim.AdamW
  /// Which parameters are decayed, by name; empty = adamw_default_decays. [](auto&){return true;}
  /// decays everything, as torch.optim.AdamW over one parameter group.
  std::function<bool(const std::string&)> decays;
};

template <typename T>
class AdamW : public Adam<T> {
 public:
  AdamW(OptimParams<T> params, const AdamWOptions& options = {});
  std::string type() const override { return "adamw"; }
  /// Whether `name` is weight-decayed (false for names not in params()).
  bool decays(const std::string& name) const;
};

/// Builds an optimizer by type ("sgd" | "adam" | "adamw") from a flat hparams object (the keys of
/// hparams(); missing keys take the defaults above, unknown keys are an error here).
template <typename T>
std::unique_ptr<Optimizer<T>> make_optimizer(
    const std::string& type, OptimParams<T> params,
    const nlohmann::json& hparams = nlohmann::json::object());

}  // namespace qkv
