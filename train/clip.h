// Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_, and a finder for the first
// non-finite gradient (to name the culprit when a step diverges).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "train/optimizer.h"

namespace qkv {

/// The L2 norm of all defined gradients together, √(Σ_params Σ g²), accumulated in double.
template <typename T>
double grad_norm(const OptimParams<T>& params);

/// Scales every defined gradient by min(1, max_norm / (norm + 1e-6)) and returns the total norm
/// before clipping (torch.nn.utils.clip_grad_norm_). max_norm <= 0 disables the scaling (the norm
/// is still returned). A non-finite norm leaves the gradients untouched (the caller should skip
/// the step; see first_nonfinite_grad).
template <typename T>
double clip_grad_norm(const OptimParams<T>& params, double max_norm);
template <typename T>
double clip_grad_norm(const std::vector<Var<T>>& params, double max_norm);

/// The name of the first parameter (in list order) whose gradient has a NaN or ±inf, if any.
template <typename T>
std::optional<std::string> first_nonfinite_grad(const OptimParams<T>& params);

}  // namespace qkv
