#include "train/clip.h"

#include <cmath>

namespace qkv {
namespace {

template <typename T>
double sum_squares(const Tensor<T>& g) {
  if (!g.defined()) return 0.0;
  return g.vec().template cast<double>().squaredNorm();
}

template <typename T>
void scale(Tensor<T>& g, double coef) {
  if (g.defined()) g.vec() *= T(coef);
}

/// clip_coef = max_norm / (norm + 1e-6), clamped to at most 1; 1 means "leave as is".
double clip_coef(double norm, double max_norm) {
  if (max_norm <= 0 || !std::isfinite(norm)) return 1.0;
  return std::min(1.0, max_norm / (norm + 1e-6));
}

}  // namespace

template <typename T>
double grad_norm(const OptimParams<T>& params) {
  double ss = 0;
  for (const auto& p : params) ss += sum_squares(p.second.grad());
  return std::sqrt(ss);
}

template <typename T>
double clip_grad_norm(const OptimParams<T>& params, double max_norm) {
  const double norm = grad_norm(params);
  const double coef = clip_coef(norm, max_norm);
  if (coef < 1.0) {
    for (const auto& p : params) {
      Var<T> v = p.second;  // a handle to the same node
      scale(v.grad(), coef);
    }
  }
  return norm;
}

template <typename T>
double clip_grad_norm(const std::vector<Var<T>>& params, double max_norm) {
  double ss = 0;
  for (const Var<T>& v : params) ss += sum_squares(v.grad());
  const double norm = std::sqrt(ss);
  const double coef = clip_coef(norm, max_norm);
  if (coef < 1.0) {
    for (Var<T> v : params) scale(v.grad(), coef);
  }
  return norm;
}

template <typename T>
std::optional<std::string> first_nonfinite_grad(const OptimParams<T>& params) {
  for (const auto& p : params)
    if (!p.second.grad().all_finite()) return p.first;
  return std::nullopt;
}

template double grad_norm(const OptimParams<float>&);
template double grad_norm(const OptimParams<double>&);
template double clip_grad_norm(const OptimParams<float>&, double);
template double clip_grad_norm(const OptimParams<double>&, double);
template double clip_grad_norm(const std::vector<Var<float>>&, double);
template double clip_grad_norm(const std::vector<Var<double>>&, double);
template std::optional<std::string> first_nonfinite_grad(const OptimParams<float>&);
template std::optional<std::string> first_nonfinite_grad(const OptimParams<double>&);

}  // namespace qkv
