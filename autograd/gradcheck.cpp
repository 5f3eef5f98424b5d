#include "autograd/gradcheck.h"

#include <cmath>

#include <fmt/format.h>

#include "core/error.h"
#include "core/rng.h"

namespace qkv {
namespace {

/// Folds one (analytic, numeric) comparison into the entry.
void compare(GradcheckEntry& e, const GradcheckOptions& o, double analytic, double numeric,
             int64_t index, int64_t output) {
  const double abs_err = std::abs(analytic - numeric);
  const double rel_err = abs_err / std::max(std::abs(numeric), o.atol);
  const bool ok = abs_err <= o.atol + o.rtol * std::abs(numeric) && std::isfinite(analytic);
  e.checked++;
  // The worst entry is the one that fails by most; among passing ones, the largest error.
  const bool worse = (!ok && e.ok) || (ok == e.ok && abs_err > e.max_abs_err) ||
                     e.worst_index < 0 || !std::isfinite(analytic);
  e.max_abs_err = std::max(e.max_abs_err, abs_err);
  e.max_rel_err = std::max(e.max_rel_err, rel_err);
  if (worse) {
    e.worst_index = index;
    e.worst_output = output;
    e.analytic = analytic;
    e.numeric = numeric;
  }
  e.ok = e.ok && ok;
}

Tensor<double> gaussian(const Shape& shape, Rng& rng) {
  Tensor<double> t = Tensor<double>::empty(shape);
  for (double& x : t) x = rng.normal();
  return t;
}

Tensor<double> forward_value(const std::function<Var<double>()>& f) {
  NoGradGuard no_grad;
  return f().value().clone();
}

double dot(const Tensor<double>& a, const Tensor<double>& b) {
  return a.vec().dot(b.vec());
}

void zero_input_grads(const std::vector<std::pair<std::string, Var<double>>>& inputs) {
  for (const auto& in : inputs) const_cast<Var<double>&>(in.second).zero_grad();
}

void check_full(const std::function<Var<double>()>& f, Var<double>& x, GradcheckEntry& e,
                const std::vector<std::pair<std::string, Var<double>>>& inputs,
                const GradcheckOptions& o) {
  // Analytic Jacobian rows: one backward per output element on one retained graph.
  Var<double> out = f();
  const int64_t M = out.numel(), N = x.numel();
  Mat<double> Ja = Mat<double>::Zero(M, N);
  if (out.requires_grad()) {
    Tensor<double> seed(out.shape());
    for (int64_t m = 0; m < M; ++m) {
      zero_input_grads(inputs);
      seed.zero_();
      seed[m] = 1;
      out.backward(seed, /*retain_graph=*/true);
      if (x.grad().defined()) Ja.row(m) = x.grad().vec().transpose();
    }
  }
  // Numeric Jacobian columns: two forwards per input element.
  Tensor<double>& v = x.value();
  for (int64_t i = 0; i < N; ++i) {
    const double x0 = v[i];
    v[i] = x0 + o.eps;
    Tensor<double> plus = forward_value(f);
    v[i] = x0 - o.eps;
    Tensor<double> minus = forward_value(f);
    v[i] = x0;
    for (int64_t m = 0; m < M; ++m)
      compare(e, o, Ja(m, i), (plus[m] - minus[m]) / (2 * o.eps), i, m);
  }
}

void check_fast(const std::function<Var<double>()>& f, Var<double>& x, GradcheckEntry& e,
                const std::vector<std::pair<std::string, Var<double>>>& inputs,
                const GradcheckOptions& o, Rng& rng) {
  Tensor<double>& v = x.value();
  const Tensor<double> x0 = v.clone();
  for (int k = 0; k < o.fast_directions; ++k) {
    Var<double> out = f();
    const Tensor<double> w = gaussian(out.shape(), rng);  // output projection
    const Tensor<double> u = gaussian(v.shape(), rng);    // input direction
    double analytic = 0;
    if (out.requires_grad()) {
      zero_input_grads(inputs);
      out.backward(w);
      if (x.grad().defined()) analytic = dot(x.grad(), u);
    }
    v.vec() = x0.vec() + o.eps * u.vec();
    const double plus = dot(w, forward_value(f));
    v.vec() = x0.vec() - o.eps * u.vec();
    const double minus = dot(w, forward_value(f));
    v.vec() = x0.vec();
    compare(e, o, analytic, (plus - minus) / (2 * o.eps), k, -1);
  }
}

}  // namespace

GradcheckReport gradcheck(const std::function<Var<double>()>& f,
                          const std::vector<std::pair<std::string, Var<double>>>& inputs,
                          const GradcheckOptions& o) {
  GradcheckReport report;
  Rng rng(o.seed);
  for (const auto& [name, in] : inputs) {
    QKV_CHECK(in.defined(), "gradcheck: input '{}' is undefined", name);
    if (!in.requires_grad()) continue;
    GradcheckEntry e;
    e.name = name;
    e.shape = in.shape();
    Var<double> x = in;
    if (o.fast) {
      check_fast(f, x, e, inputs, o, rng);
    } else {
      check_full(f, x, e, inputs, o);
    }
    report.ok = report.ok && e.ok;
    report.inputs.push_back(std::move(e));
  }
  zero_input_grads(inputs);
  return report;
}

GradcheckReport gradcheck(const std::function<Var<double>()>& f,
                          const std::vector<Var<double>>& inputs, double eps, double atol,
                          double rtol) {
  std::vector<std::pair<std::string, Var<double>>> named;
  for (size_t i = 0; i < inputs.size(); ++i)
    named.emplace_back(fmt::format("input{}", i), inputs[i]);
  GradcheckOptions o;
  o.eps = eps;
  o.atol = atol;
  o.rtol = rtol;
  return gradcheck(f, named, o);
}

std::string GradcheckReport::table() const {
  size_t w = 4;
  for (const auto& e : inputs) w = std::max(w, e.name.size());
  std::string s = fmt::format("{:<{}}  {:<16} {:>12} {:>12}  {}\n", "name", w, "shape",
                              "max abs err", "max rel err", "result");
  for (const auto& e : inputs) {
    s += fmt::format("{:<{}}  {:<16} {:>12.3e} {:>12.3e}  {}", e.name, w, e.shape.str(),
                     e.max_abs_err, e.max_rel_err, e.ok ? "pass" : "FAIL");
    if (!e.ok)
      s += fmt::format("  (worst at element {}: analytic {:.9g}, numeric {:.9g})", e.worst_index,
                       e.analytic, e.numeric);
    s += "\n";
  }
  return s;
}

}  // namespace qkv
