// qkv explain's numbers, in float64: forward row, backward beside finite differences, √d_k study.
#include <algorithm>
#include <cmath>
#include <functional>

#include "apps/explain.h"
#include "core/error.h"
#include "core/rng.h"

namespace qkv::cli {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;

VectorXd softmax(const VectorXd& s) {
  const VectorXd e = (s.array() - s.maxCoeff()).exp();
  return e / e.sum();
}

/// Central differences of a scalar function at `at`, one entry at a time.
MatrixXd central_differences(const MatrixXd& at, const std::function<double(const MatrixXd&)>& f,
                             double eps) {
  MatrixXd g(at.rows(), at.cols());
  MatrixXd p = at;
  for (Eigen::Index i = 0; i < at.rows(); ++i)
    for (Eigen::Index j = 0; j < at.cols(); ++j) {
      p(i, j) = at(i, j) + eps;
      const double up = f(p);
      p(i, j) = at(i, j) - eps;
      const double down = f(p);
      p(i, j) = at(i, j);
      g(i, j) = (up - down) / (2 * eps);
    }
  return g;
}

MatrixXd stack_x(const std::vector<ExplainWord>& words) {
  MatrixXd X(static_cast<Eigen::Index>(words.size()), words.front().x.size());
  for (size_t i = 0; i < words.size(); ++i) X.row(static_cast<Eigen::Index>(i)) = words[i].x;
  return X;
}

}  // namespace

std::vector<std::string> labelled(const std::string& prefix, const std::vector<ExplainWord>& w) {
  std::vector<std::string> out;
  for (const auto& x : w) out.push_back(prefix + x.word);
  return out;
}

std::vector<std::string> components(const std::string& prefix, Eigen::Index n) {
  std::vector<std::string> out;
  for (Eigen::Index i = 1; i <= n; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

// ---- forward ----------------------------------------------------------------------------------

AttentionRow attend_row(const VectorXd& x_q, const MatrixXd& X, const MatrixXd& W_Q,
                        const MatrixXd& W_K, const MatrixXd& W_V) {
  AttentionRow r;
  r.x_q = x_q;
  r.X = X;
  r.q.noalias() = W_Q * x_q;
  r.K.noalias() = X * W_K.transpose();
  r.V.noalias() = X * W_V.transpose();
  r.qk.noalias() = r.K * r.q;
  r.S = r.qk / std::sqrt(static_cast<double>(W_Q.rows()));
  r.P = softmax(r.S);
  r.out.noalias() = r.V.transpose() * r.P;
  return r;
}

// ---- backward ---------------------------------------------------------------------------------

// Softmax backward, one row, g = dL/dP:
//   ∂P_j/∂S_k = P_j (δ_jk − P_k)           (J = diag(P) − P Pᵀ, symmetric)
//   dL/dS_k  = Σ_j g_j P_j (δ_jk − P_k) = P_k (g_k − ⟨g, P⟩)      O(n), never forms J
VectorXd softmax_backward_rule(const VectorXd& P, const VectorXd& dP) {
  return P.array() * (dP.array() - dP.dot(P));
}

double CheckedBlock::max_abs_err() const {
  return analytic.size() == 0 ? 0.0 : (analytic - numeric).cwiseAbs().maxCoeff();
}

const CheckedBlock& ExplainReport::block(const std::string& name) const {
  for (const auto& b : backward)
    if (b.name == name) return b;
  fail("explain: no backward block named '{}'", name);
}

double ExplainReport::max_abs_err() const {
  double m = 0;
  for (const auto& b : backward) m = std::max(m, b.max_abs_err());
  return m;
}

std::vector<ScalingRow> scaling_study(const std::vector<int>& dims, int keys, int trials,
                                      uint64_t seed) {
  std::vector<ScalingRow> rows;
  Rng rng(seed);
  for (int d : dims) {
    ScalingRow row;
    row.d = d;
    double sum2 = 0;
    for (int t = 0; t < trials; ++t) {
      VectorXd q(d);
      MatrixXd K(keys, d);
      for (Eigen::Index i = 0; i < d; ++i) q(i) = rng.normal();
      for (Eigen::Index i = 0; i < K.size(); ++i) K.data()[i] = rng.normal();
      const VectorXd s = K * q;
      sum2 += s.squaredNorm();
      for (const bool scaled : {false, true}) {
        const VectorXd P = softmax(scaled ? VectorXd(s / std::sqrt(double(d))) : s);
        const MatrixXd J = MatrixXd(P.asDiagonal()) - P * P.transpose();
        (scaled ? row.max_p_scaled : row.max_p_unscaled) += P.maxCoeff() / trials;
        (scaled ? row.jac_scaled : row.jac_unscaled) += J.norm() / trials;
      }
    }
    // q·k has mean 0, so its spread is the root mean square.
    row.std_unscaled = std::sqrt(sum2 / (double(trials) * keys));
    row.std_scaled = row.std_unscaled / std::sqrt(double(d));
    rows.push_back(row);
  }
  return rows;
}

ExplainReport build_explain_report(const ExplainInput& input, SoftmaxBackwardRule rule,
                                   double eps) {
  ExplainReport rep;
  rep.input = input;
  rep.eps = eps;
  const MatrixXd X = stack_x(input.words);
  const VectorXd x_q = input.words[static_cast<size_t>(input.query)].x;
  const MatrixXd &W_Q = input.W_Q, &W_K = input.W_K, &W_V = input.W_V;
  const VectorXd& t = input.target;
  const double scale = std::sqrt(static_cast<double>(W_Q.rows()));
  const AttentionRow r = attend_row(x_q, X, W_Q, W_K, W_V);
  rep.row = r;

  // The loss from each stage, everything upstream of that stage held fixed: the finite
  // differences perturb exactly the quantity whose gradient the formula gives.
  auto L_out = [&](const VectorXd& out) { return 0.5 * (out - t).squaredNorm(); };
  auto L_PV = [&](const VectorXd& P, const MatrixXd& V) { return L_out(V.transpose() * P); };
  auto L_S = [&](const VectorXd& S) { return L_PV(softmax(S), r.V); };
  auto L_qKV = [&](const VectorXd& q, const MatrixXd& K, const MatrixXd& V) {
    return L_PV(softmax(K * q / scale), V);
  };
  auto L_W = [&](const MatrixXd& wq, const MatrixXd& wk, const MatrixXd& wv) {
    const AttentionRow a = attend_row(x_q, X, wq, wk, wv);
    return L_out(a.out);
  };
  rep.loss = L_out(r.out);

  const auto words = labelled("", input.words);
  const auto v_rows = labelled("v_", input.words);
  const auto k_rows = labelled("k_", input.words);
  const auto S_rows = labelled("S_", input.words);
  const auto P_rows = labelled("P_", input.words);
  const std::string qw = input.words[static_cast<size_t>(input.query)].word;
  auto add = [&](std::string name, std::string formula, std::vector<std::string> rows,
                 std::vector<std::string> cols, MatrixXd analytic, MatrixXd numeric) {
    rep.backward.push_back({std::move(name), std::move(formula), std::move(rows), std::move(cols),
                            std::move(analytic), std::move(numeric)});
  };

  // Backward, given L = ½‖out − target‖² and out = Vᵀ P:
  //   dout = out − target
  const VectorXd dout = r.out - t;
  add("dL/dout", "out − target", {"dL/dout"}, components("", dout.size()), dout.transpose(),
      central_differences(
          r.out, [&](const MatrixXd& o) { return L_out(o.col(0)); }, eps)
          .transpose());

  //   out = Σ_j P_j v_j, so dP_j = ⟨dout, v_j⟩ and dv_j = P_j dout  (dV = P doutᵀ)
  const VectorXd dP = r.V * dout;
  const MatrixXd dV = r.P * dout.transpose();
  add("dL/dP", "dP_j = dout · v_j", {"dL/dP"}, words, dP.transpose(),
      central_differences(
          r.P, [&](const MatrixXd& P) { return L_PV(P.col(0), r.V); }, eps)
          .transpose());
  add("dL/dV", "dv_j = P_j · dout", v_rows, components("", dV.cols()), dV,
      central_differences(
          r.V, [&](const MatrixXd& V) { return L_PV(r.P, V); }, eps));

  //   P = softmax(S): J = diag(P) − P Pᵀ, checked column by column (∂P/∂S_k)
  const MatrixXd J = MatrixXd(r.P.asDiagonal()) - r.P * r.P.transpose();
  MatrixXd J_fd(J.rows(), J.cols());
  for (Eigen::Index k = 0; k < J.cols(); ++k) {
    VectorXd up = r.S, down = r.S;
    up(k) += eps;
    down(k) -= eps;
    J_fd.col(k) = (softmax(up) - softmax(down)) / (2 * eps);
  }
  add("dP/dS", "J = diag(P) − P Pᵀ", P_rows, S_rows, J, J_fd);

  //   dS = Jᵀ dP (J is symmetric) = P ⊙ (dP − ⟨dP, P⟩)
  const MatrixXd dS_fd = central_differences(
                             r.S, [&](const MatrixXd& S) { return L_S(S.col(0)); }, eps)
                             .transpose();
  const VectorXd dS_full = J.transpose() * dP;
  const VectorXd dS = rule(r.P, dP);
  rep.dot_dP_P = dP.dot(r.P);
  add("dL/dS (Jacobian)", "dS = Jᵀ · dP", {"dL/dS"}, words, dS_full.transpose(), dS_fd);
  add("dL/dS (O(n) rule)", "dS = P ⊙ (dP − ⟨dP, P⟩)", {"dL/dS"}, words, dS.transpose(), dS_fd);

  //   S_j = q · k_j / √d_k, so dq = Σ_j dS_j k_j / √d_k and dk_j = dS_j q / √d_k
  const VectorXd dq = r.K.transpose() * dS / scale;
  const MatrixXd dK = dS * r.q.transpose() / scale;
  add("dL/dq", "dq = Σ_j dS_j k_j / √d_k", {"dL/dq"}, components("", dq.size()), dq.transpose(),
      central_differences(
          r.q, [&](const MatrixXd& q) { return L_qKV(q.col(0), r.K, r.V); }, eps)
          .transpose());
  add("dL/dK", "dk_j = dS_j q / √d_k", k_rows, components("", dK.cols()), dK,
      central_differences(
          r.K, [&](const MatrixXd& K) { return L_qKV(r.q, K, r.V); }, eps));

  //   q = W_Q x_q, k_j = W_K x_j, v_j = W_V x_j:
  //   dW_Q = dq x_qᵀ;  dW_K = Σ_j dk_j x_jᵀ = dKᵀ X;  dW_V = dVᵀ X
  const MatrixXd dW_Q = dq * x_q.transpose();
  const MatrixXd dW_K = dK.transpose() * X;
  const MatrixXd dW_V = dV.transpose() * X;
  const auto x_cols = components("x", X.cols());
  add("dL/dW_Q", "dW_Q = dq · x_" + qw + "ᵀ", components("q", dW_Q.rows()), x_cols, dW_Q,
      central_differences(
          W_Q, [&](const MatrixXd& w) { return L_W(w, W_K, W_V); }, eps));
  add("dL/dW_K", "dW_K = Σ_j dk_j · x_jᵀ", components("k", dW_K.rows()), x_cols, dW_K,
      central_differences(
          W_K, [&](const MatrixXd& w) { return L_W(W_Q, w, W_V); }, eps));
  add("dL/dW_V", "dW_V = Σ_j dv_j · x_jᵀ", components("v", dW_V.rows()), x_cols, dW_V,
      central_differences(
          W_V, [&](const MatrixXd& w) { return L_W(W_Q, W_K, w); }, eps));

  //   x_j feeds k_j and v_j, and the query word's x also feeds q (self-attention):
  //   dx_j = W_Kᵀ dk_j + W_Vᵀ dv_j (+ W_Qᵀ dq for the query word)   i.e. dX = dK W_K + dV W_V
  MatrixXd dX = dK * W_K + dV * W_V;
  dX.row(input.query) += (W_Q.transpose() * dq).transpose();
  add("dL/dX", "dx_j = W_Kᵀ dk_j + W_Vᵀ dv_j (+ W_Qᵀ dq for '" + qw + "')",
      labelled("x_", input.words), x_cols, dX,
      central_differences(
          X,
          [&](const MatrixXd& x) {
            const AttentionRow a = attend_row(x.row(input.query).transpose(), x, W_Q, W_K, W_V);
            return L_out(a.out);
          },
          eps));

  // Every word as the query: the full self-attention map.
  rep.P_all.resize(X.rows(), X.rows());
  for (Eigen::Index i = 0; i < X.rows(); ++i)
    rep.P_all.row(i) = attend_row(X.row(i).transpose(), X, W_Q, W_K, W_V).P.transpose();

  rep.scaling_keys = 8;
  rep.scaling_trials = 1000;
  rep.scaling = scaling_study({4, 16, 64, 256, 1024}, rep.scaling_keys, rep.scaling_trials, 0);

  if (!input.cross_words.empty())
    rep.cross = attend_row(input.cross_query.x, stack_x(input.cross_words), W_Q, W_K, W_V);
  return rep;
}

}  // namespace qkv::cli
