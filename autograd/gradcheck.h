// gradcheck: compares the autograd gradient with central finite differences, in float64, the way
// torch.autograd.gradcheck does (same defaults: eps 1e-6, atol 1e-5, rtol 1e-3).
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.h"

namespace qkv {

struct GradcheckOptions {
  double eps = 1e-6;   // finite-difference step
  double atol = 1e-5;  // an element passes when |analytic − numeric| ≤ atol + rtol·|numeric|
  double rtol = 1e-3;
  /// false: every Jacobian entry (one backward per output element, two forwards per input
  /// element). true: random projections vᵀ·J·u on both sides, for large inputs.
  bool fast = false;
  int fast_directions = 8;  // (u, v) pairs per input in fast mode
  uint64_t seed = 0;        // for the projections
};

/// One input's worst disagreement.
struct GradcheckEntry {
  std::string name;
  Shape shape;
  int64_t checked = 0;        // Jacobian entries (or projections) compared
  double max_abs_err = 0;     // max |analytic − numeric|
  double max_rel_err = 0;     // max |analytic − numeric| / max(|numeric|, atol)
  int64_t worst_index = -1;   // flat input element index (full mode) or direction (fast mode)
  int64_t worst_output = -1;  // flat output element index of that entry (full mode)
  double analytic = 0;        // both values at the worst entry
  double numeric = 0;
  bool ok = true;
};

struct GradcheckReport {
  std::vector<GradcheckEntry> inputs;
  bool ok = true;
  explicit operator bool() const { return ok; }
  /// A table: name, shape, max abs error, max rel error, pass/fail.
  std::string table() const;
};

/// Checks d f() / d input for every input that requires grad. f must rebuild its graph from the
/// inputs on each call (it is called many times, under no-grad for the finite differences); its
/// output may have any shape. Inputs' values are restored exactly afterwards and their .grad
/// zeroed.
GradcheckReport gradcheck(const std::function<Var<double>()>& f,
                          const std::vector<std::pair<std::string, Var<double>>>& inputs,
                          const GradcheckOptions& options = {});

/// The same with inputs named input0, input1, ... and PyTorch's positional tolerances.
GradcheckReport gradcheck(const std::function<Var<double>()>& f,
                          const std::vector<Var<double>>& inputs, double eps = 1e-6,
                          double atol = 1e-5, double rtol = 1e-3);

}  // namespace qkv
