// qkv explain, the computation: the default example, the --vectors schema, the forward row, the
// hand-derived backward beside central differences, the √d_k study; then the lesson, written once
// against a small Writer interface with text, Markdown and HTML implementations.
#include "apps/explain.h"
#include "apps/terminal.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/rng.h"
#include "plot/plot.h"

namespace qkv::cli {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;
using json = nlohmann::json;

MatrixXd rows_of(std::initializer_list<std::initializer_list<double>> rows) {
  MatrixXd m(static_cast<Eigen::Index>(rows.size()),
             static_cast<Eigen::Index>(rows.begin()->size()));
  Eigen::Index i = 0;
  for (const auto& r : rows) {
    Eigen::Index j = 0;
    for (double v : r) m(i, j++) = v;
    ++i;
  }
  return m;
}

VectorXd vec_of(std::initializer_list<double> values) {
  VectorXd v(static_cast<Eigen::Index>(values.size()));
  Eigen::Index i = 0;
  for (double x : values) v(i++) = x;
  return v;
}

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

MatrixXd stack_x(const std::vector<ExplainWord>& words) {
  MatrixXd X(static_cast<Eigen::Index>(words.size()), words.front().x.size());
  for (size_t i = 0; i < words.size(); ++i) X.row(static_cast<Eigen::Index>(i)) = words[i].x;
  return X;
}

// ---- the --vectors schema ---------------------------------------------------------------------

struct Parser {
  const std::string& source;

  [[noreturn]] void bad(const std::string& what) const { fail("{}: {}", source, what); }

  VectorXd numbers(const json& j, const std::string& what) const {
    if (!j.is_array() || j.empty()) bad(what + " must be a non-empty array of numbers");
    VectorXd v(static_cast<Eigen::Index>(j.size()));
    for (size_t i = 0; i < j.size(); ++i) {
      if (!j[i].is_number()) bad(fmt::format("{}[{}] is not a number", what, i));
      v(static_cast<Eigen::Index>(i)) = j[i].get<double>();
      if (!std::isfinite(v(static_cast<Eigen::Index>(i))))
        bad(fmt::format("{}[{}] is not finite", what, i));
    }
    return v;
  }

  MatrixXd matrix(const json& doc, const char* key, Eigen::Index d) const {
    if (!doc.contains(key))
      bad(fmt::format("missing '{}' (a list of rows, each {} numbers: {} · x)", key, d, key));
    const json& j = doc[key];
    if (!j.is_array() || j.empty()) bad(fmt::format("'{}' must be a non-empty list of rows", key));
    MatrixXd m(static_cast<Eigen::Index>(j.size()), d);
    for (size_t i = 0; i < j.size(); ++i) {
      const VectorXd r = numbers(j[i], fmt::format("'{}' row {}", key, i));
      if (r.size() != d)
        bad(
            fmt::format("'{}' row {} has {} numbers but the x vectors have {} ({} is [rows, d] "
                        "and multiplies x)",
                        key, i, r.size(), d, key));
      m.row(static_cast<Eigen::Index>(i)) = r;
    }
    return m;
  }

  ExplainWord word(const json& j, const std::string& what, Eigen::Index d) const {
    if (!j.is_object() || !j.contains("word") || !j["word"].is_string() || !j.contains("x"))
      bad(what + " must be an object {\"word\": \"...\", \"x\": [numbers]}");
    ExplainWord w{j["word"].get<std::string>(), numbers(j["x"], what + " x")};
    if (w.word.empty()) bad(what + " has an empty \"word\"");
    if (d > 0 && w.x.size() != d)
      bad(fmt::format("{} ('{}') has {} numbers in x but the first word has {}", what, w.word,
                      w.x.size(), d));
    return w;
  }

  std::vector<ExplainWord> words(const json& j, const std::string& what, Eigen::Index d) const {
    if (!j.is_array() || j.empty()) bad(what + " must be a non-empty list of {word, x} objects");
    QKV_CHECK(j.size() <= 32, "{}: {} has {} words; explain shows at most 32", source, what,
              j.size());
    std::vector<ExplainWord> out;
    for (size_t i = 0; i < j.size(); ++i)
      out.push_back(word(j[i], fmt::format("{}[{}]", what, i), d));
    for (const auto& w : out)
      if (w.x.size() != out.front().x.size())
        bad(
            fmt::format("{}: word '{}' has {} numbers in x but '{}' has {}; every x must have "
                        "the same length d",
                        what, w.word, w.x.size(), out.front().word, out.front().x.size()));
    return out;
  }
};

}  // namespace

ExplainInput default_explain_input() {
  // Made up so that the raw dot products q·k are exactly (1, −1, 0) for (animal, street, it): the
  // scores are (½, −½, 0), and P = (e^½, e^−½, 1) / (e^½ + e^−½ + 1) = (50.6 %, 18.6 %, 30.7 %),
  // which rounds to the classic 51 / 19 / 31 %. Found by a small exhaustive search over
  // entries in {0, ±½, ±1}.
  ExplainInput in;
  in.sentence = "The animal didn't cross the street because it was too tired";
  in.words = {{"animal", vec_of({1.0, 0.0, 0.5, 0.5})},
              {"street", vec_of({0.0, 1.0, 0.5, 0.0})},
              {"it", vec_of({0.0, 0.0, 1.0, 0.5})}};
  in.query = 2;
  in.W_Q = rows_of({{1, 1, 1, -1}, {-1, 0.5, -0.5, -1}, {-0.5, 1, 1, 0}, {1, 0, 0, -1}});
  in.W_K = rows_of({{0.5, -1, 0, 1}, {-1, 0, 1, 0}, {-1, -0.5, 0, 1}, {-1, -0.5, -1, 1}});
  in.W_V = rows_of({{1, 0, 0, 0}, {0, 1, 0.5, 0}, {0, 0, 0.5, 1}, {1, -1, 0, 0}});
  in.target = vec_of({1.0, 0.25, 0.75, 1.0});  // v_animal's numbers, held fixed
  in.cross_sentence = "It was too tired.";
  in.cross_query = in.words[2];
  in.cross_words = {in.words[0], in.words[1]};
  return in;
}

ExplainInput parse_explain_input(const std::string& json_text, const std::string& source) {
  const Parser p{source};
  json doc;
  try {
    doc = json::parse(json_text);
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    p.bad("not valid JSON (" + what + ")");
  }
  if (!doc.is_object()) p.bad("expected a JSON object with 'words', 'query', 'W_Q', 'W_K', 'W_V'");
  static const std::set<std::string> known = {"sentence", "words", "query",  "W_Q",
                                              "W_K",      "W_V",   "target", "cross"};
  for (const auto& [key, value] : doc.items())
    if (!known.count(key))
      p.bad("unknown key '" + key +
            "' (expected sentence, words, query, W_Q, W_K, W_V, target, cross)");

  ExplainInput in;
  in.source = source;
  if (doc.contains("sentence")) {
    if (!doc["sentence"].is_string()) p.bad("'sentence' must be a string");
    in.sentence = doc["sentence"].get<std::string>();
  }
  if (!doc.contains("words")) p.bad("missing 'words' (a list of {\"word\": ..., \"x\": [...]})");
  in.words = p.words(doc["words"], "'words'", 0);
  if (in.words.size() < 2) p.bad("'words' needs at least two words to attend over");
  const Eigen::Index d = in.words.front().x.size();

  if (!doc.contains("query")) p.bad("missing 'query' (the word, from 'words', that attends)");
  if (!doc["query"].is_string()) p.bad("'query' must be a string: one of the words");
  const std::string query = doc["query"].get<std::string>();
  int found = 0;
  for (size_t i = 0; i < in.words.size(); ++i)
    if (in.words[i].word == query) in.query = static_cast<int>(i), ++found;
  if (found == 0) p.bad("'query' is '" + query + "', which is not one of the words");
  if (found > 1) p.bad("'query' is '" + query + "', which appears twice in 'words'");

  in.W_Q = p.matrix(doc, "W_Q", d);
  in.W_K = p.matrix(doc, "W_K", d);
  in.W_V = p.matrix(doc, "W_V", d);
  if (in.W_Q.rows() != in.W_K.rows())
    p.bad(fmt::format("'W_Q' has {} rows but 'W_K' has {}; q·k needs both of length d_k",
                      in.W_Q.rows(), in.W_K.rows()));

  in.target = VectorXd::Zero(in.W_V.rows());
  if (doc.contains("target")) {
    in.target = p.numbers(doc["target"], "'target'");
    if (in.target.size() != in.W_V.rows())
      p.bad(fmt::format("'target' has {} numbers but the values have {} (one per row of W_V)",
                        in.target.size(), in.W_V.rows()));
  }

  if (doc.contains("cross")) {
    const json& c = doc["cross"];
    if (!c.is_object() || !c.contains("query") || !c.contains("words"))
      p.bad("'cross' must be an object with 'query' ({word, x}) and 'words' (list of {word, x})");
    for (const auto& [key, value] : c.items())
      if (key != "sentence" && key != "query" && key != "words")
        p.bad("unknown key 'cross." + key + "' (expected sentence, query, words)");
    if (c.contains("sentence")) {
      if (!c["sentence"].is_string()) p.bad("'cross.sentence' must be a string");
      in.cross_sentence = c["sentence"].get<std::string>();
    }
    in.cross_query = p.word(c["query"], "'cross.query'", d);
    in.cross_words = p.words(c["words"], "'cross.words'", d);
  } else {
    // By default: the query word alone in a second sentence, over the other words.
    in.cross_query = in.words[static_cast<size_t>(in.query)];
    for (size_t i = 0; i < in.words.size(); ++i)
      if (static_cast<int>(i) != in.query) in.cross_words.push_back(in.words[i]);
  }
  return in;
}

ExplainInput load_explain_input(const std::string& path) {
  std::ifstream f(path);
  QKV_CHECK(f.good(),
            "--vectors {}: cannot open the file; give a JSON file (see qkv explain "
            "--help)",
            path);
  std::stringstream s;
  s << f.rdbuf();
  return parse_explain_input(s.str(), "--vectors " + path);
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

// ---- the lesson -------------------------------------------------------------------------------

namespace {

using Labels = std::vector<std::string>;

/// Columns a UTF-8 string takes in a terminal (one per code point; good enough for labels).
size_t display_width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string pad_left(const std::string& s, size_t width) {
  const size_t w = display_width(s);
  return w >= width ? s : std::string(width - w, ' ') + s;
}

std::string pad_right(const std::string& s, size_t width) {
  const size_t w = display_width(s);
  return w >= width ? s : s + std::string(width - w, ' ');
}

std::string num(double v, int precision) {
  std::string s = fmt::format("{:.{}f}", v, precision);
  if (s.find_first_not_of("-0.") == std::string::npos && s[0] == '-') s.erase(0, 1);  // no "-0.00"
  return s;
}

std::string err(double e) {
  return fmt::format("{:.1e}", e);
}

/// The lesson's building blocks; each format implements them.
class Writer {
 public:
  virtual ~Writer() = default;
  virtual void title(const std::string& text) = 0;
  virtual void heading(const std::string& text) = 0;
  virtual void para(const std::string& text) = 0;
  /// Formulas or worked arithmetic, one per line, shown verbatim.
  virtual void math(const std::vector<std::string>& lines) = 0;
  virtual void matrix(const std::string& caption, const Labels& rows, const Labels& cols,
                      const MatrixXd& m, int precision) = 0;
  /// A backward block: analytic beside finite differences, and the max difference.
  virtual void checked(const CheckedBlock& b) = 0;
  /// Probabilities as labelled bars.
  virtual void bars(const std::string& caption, const Labels& labels, const VectorXd& p) = 0;
  virtual void table(const Labels& header, const std::vector<Labels>& rows) = 0;
  /// A picture: only the HTML page shows these.
  virtual void heatmap(const std::string& /*caption*/, const Labels& /*rows*/,
                       const Labels& /*cols*/, const MatrixXd& /*m*/) {}
  virtual void svg(const std::string& /*caption*/, const std::string& /*svg*/) {}
  virtual std::string finish() = 0;
};

constexpr int kBackwardPrecision = 6;

// ---- text ----

/// Aligned lines: a label column, then right-aligned numbers under their column labels.
std::vector<std::string> matrix_lines(const Labels& rows, const Labels& cols, const MatrixXd& m,
                                      int precision) {
  size_t lw = 0, cw = 0;
  for (const auto& r : rows) lw = std::max(lw, display_width(r));
  for (const auto& c : cols) cw = std::max(cw, display_width(c));
  for (Eigen::Index i = 0; i < m.size(); ++i) cw = std::max(cw, num(m.data()[i], precision).size());
  std::vector<std::string> out;
  std::string head = std::string(lw, ' ');
  for (const auto& c : cols) head += "  " + pad_left(c, cw);
  out.push_back(head);
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    std::string line = pad_right(rows[static_cast<size_t>(i)], lw);
    for (Eigen::Index j = 0; j < m.cols(); ++j)
      line += "  " + pad_left(num(m(i, j), precision), cw);
    out.push_back(line);
  }
  return out;
}

std::vector<std::string> bar_lines(const Labels& labels, const VectorXd& p) {
  size_t lw = 0;
  for (const auto& l : labels) lw = std::max(lw, display_width(l));
  std::vector<std::string> out;
  for (size_t i = 0; i < labels.size(); ++i) {
    const double v = p(static_cast<Eigen::Index>(i));
    out.push_back(pad_right(labels[i], lw) + fmt::format("  {:5.1f} %  ", 100 * v) + bar(v, 40));
  }
  return out;
}

class TextWriter : public Writer {
 public:
  void title(const std::string& text) override {
    out_ += text + "\n" + std::string(display_width(text), '=') + "\n\n";
  }
  void heading(const std::string& text) override {
    out_ += text + "\n" + std::string(display_width(text), '-') + "\n\n";
  }
  void para(const std::string& text) override {
    // Wrapped at 96 columns.
    std::istringstream words(text);
    std::string word, line;
    while (words >> word) {
      if (!line.empty() && display_width(line) + 1 + display_width(word) > 96) {
        out_ += line + "\n";
        line.clear();
      }
      line += (line.empty() ? "" : " ") + word;
    }
    out_ += line + "\n\n";
  }
  void math(const std::vector<std::string>& lines) override {
    for (const auto& l : lines) out_ += "    " + l + "\n";
    out_ += "\n";
  }
  void matrix(const std::string& caption, const Labels& rows, const Labels& cols, const MatrixXd& m,
              int precision) override {
    out_ += caption + "\n";
    for (const auto& l : matrix_lines(rows, cols, m, precision)) out_ += "    " + l + "\n";
    out_ += "\n";
  }
  void checked(const CheckedBlock& b) override {
    out_ += b.name + ":  " + b.formula + "\n";
    if (b.analytic.rows() == 1) {  // a vector: analytic above finite difference
      MatrixXd both(2, b.analytic.cols());
      both << b.analytic, b.numeric;
      for (const auto& l :
           matrix_lines({"analytic", "finite diff."}, b.col_labels, both, kBackwardPrecision))
        out_ += "    " + l + "\n";
      out_ += "    max |analytic − finite difference| = " + err(b.max_abs_err()) + "\n\n";
      return;
    }
    const auto a = matrix_lines(b.row_labels, b.col_labels, b.analytic, kBackwardPrecision);
    const auto n = matrix_lines(b.row_labels, b.col_labels, b.numeric, kBackwardPrecision);
    const size_t aw = display_width(a.front());
    if (4 + 2 * aw + 3 <= 100) {  // side by side
      out_ += "    " + pad_right("analytic", aw) + "   finite difference\n";
      for (size_t i = 0; i < a.size(); ++i)
        out_ += "    " + pad_right(a[i], aw) + " │ " + n[i] + "\n";
    } else {
      out_ += "  analytic\n";
      for (const auto& l : a) out_ += "    " + l + "\n";
      out_ += "  finite difference\n";
      for (const auto& l : n) out_ += "    " + l + "\n";
    }
    out_ += "    max |analytic − finite difference| = " + err(b.max_abs_err()) + "\n\n";
  }
  void bars(const std::string& caption, const Labels& labels, const VectorXd& p) override {
    out_ += caption + "\n";
    for (const auto& l : bar_lines(labels, p)) out_ += "    " + l + "\n";
    out_ += "\n";
  }
  void table(const Labels& header, const std::vector<Labels>& rows) override {
    std::vector<size_t> w(header.size());
    for (size_t j = 0; j < header.size(); ++j) w[j] = display_width(header[j]);
    for (const auto& r : rows)
      for (size_t j = 0; j < r.size(); ++j) w[j] = std::max(w[j], display_width(r[j]));
    auto line = [&](const Labels& r) {
      std::string s = "   ";
      for (size_t j = 0; j < r.size(); ++j)
        s += " " + (j == 0 ? pad_right(r[j], w[j]) : pad_left(r[j], w[j]));
      return s + "\n";
    };
    out_ += line(header);
    size_t total = 0;
    for (size_t x : w) total += x + 1;
    out_ += "    " + std::string(total - 1, '-') + "\n";
    for (const auto& r : rows) out_ += line(r);
    out_ += "\n";
  }
  std::string finish() override { return out_; }

 private:
  std::string out_;
};

// ---- markdown ----

std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

class MarkdownWriter : public Writer {
 public:
  void title(const std::string& text) override { out_ += "# " + text + "\n\n"; }
  void heading(const std::string& text) override { out_ += "## " + text + "\n\n"; }
  void para(const std::string& text) override { out_ += text + "\n\n"; }
  void math(const std::vector<std::string>& lines) override {
    out_ += "```text\n";
    for (const auto& l : lines) out_ += l + "\n";
    out_ += "```\n\n";
  }
  void matrix(const std::string& caption, const Labels& rows, const Labels& cols, const MatrixXd& m,
              int precision) override {
    out_ += "**" + caption + "**\n\n";
    std::vector<Labels> body;
    for (Eigen::Index i = 0; i < m.rows(); ++i) {
      Labels r{rows[static_cast<size_t>(i)]};
      for (Eigen::Index j = 0; j < m.cols(); ++j) r.push_back(num(m(i, j), precision));
      body.push_back(r);
    }
    Labels header{""};
    header.insert(header.end(), cols.begin(), cols.end());
    table(header, body);
  }
  void checked(const CheckedBlock& b) override {
    out_ += "**" + b.name + "**: " + b.formula +
            " — each row analytic, then its finite "
            "difference (FD)\n\n";
    std::vector<Labels> body;
    for (Eigen::Index i = 0; i < b.analytic.rows(); ++i)
      for (const bool fd : {false, true}) {
        Labels r{fd ? "FD" : b.row_labels[static_cast<size_t>(i)]};
        const MatrixXd& m = fd ? b.numeric : b.analytic;
        for (Eigen::Index j = 0; j < m.cols(); ++j) r.push_back(num(m(i, j), kBackwardPrecision));
        body.push_back(r);
      }
    Labels header{""};
    header.insert(header.end(), b.col_labels.begin(), b.col_labels.end());
    table(header, body);
    out_ += "max |analytic − FD| = " + err(b.max_abs_err()) + "\n\n";
  }
  void bars(const std::string& caption, const Labels& labels, const VectorXd& p) override {
    out_ += "**" + caption + "**\n\n```text\n";
    for (const auto& l : bar_lines(labels, p)) out_ += l + "\n";
    out_ += "```\n\n";
  }
  void table(const Labels& header, const std::vector<Labels>& rows) override {
    std::string sep = "|";
    out_ += "|";
    for (size_t j = 0; j < header.size(); ++j) {
      out_ += " " + md_cell(header[j]) + " |";
      sep += j == 0 ? " --- |" : " ---: |";
    }
    out_ += "\n" + sep + "\n";
    for (const auto& r : rows) {
      out_ += "|";
      for (const auto& c : r) out_ += " " + md_cell(c) + " |";
      out_ += "\n";
    }
    out_ += "\n";
  }
  std::string finish() override { return out_; }

 private:
  std::string out_;
};

// ---- html ----

std::string strip_xml_declaration(const std::string& svg) {
  const size_t at = svg.find("<svg");
  return at == std::string::npos ? svg : svg.substr(at);
}

/// A horizontal bar chart of probabilities, as inline SVG.
std::string bars_svg(const Labels& labels, const VectorXd& p) {
  const int row = 28, label_w = 110, bar_w = 360;
  const int h = row * static_cast<int>(labels.size()) + 10;
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"14\">",
      label_w + bar_w + 80, h);
  for (size_t i = 0; i < labels.size(); ++i) {
    const double v = std::clamp(p(static_cast<Eigen::Index>(i)), 0.0, 1.0);
    const int y = 5 + row * static_cast<int>(i);
    s += fmt::format(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>"
        "<rect x=\"{}\" y=\"{}\" width=\"{:.2f}\" height=\"{}\" fill=\"#3b6ea5\">"
        "<title>{} {:.1f} %</title></rect>"
        "<text x=\"{:.2f}\" y=\"{}\">{:.1f} %</text>",
        label_w - 8, y + 18, xml_escape(labels[i]), label_w, y + 4, v * bar_w, row - 8,
        xml_escape(labels[i]), 100 * v, label_w + v * bar_w + 6, y + 18, 100 * v);
  }
  return s + "</svg>";
}

class HtmlWriter : public Writer {
 public:
  void title(const std::string& text) override {
    title_ = text;
    body_ += "<h1>" + xml_escape(text) + "</h1>\n";
  }
  void heading(const std::string& text) override { body_ += "<h2>" + xml_escape(text) + "</h2>\n"; }
  void para(const std::string& text) override { body_ += "<p>" + xml_escape(text) + "</p>\n"; }
  void math(const std::vector<std::string>& lines) override {
    body_ += "<pre>";
    for (const auto& l : lines) body_ += xml_escape(l) + "\n";
    body_ += "</pre>\n";
  }
  void matrix(const std::string& caption, const Labels& rows, const Labels& cols, const MatrixXd& m,
              int precision) override {
    body_ += "<table><caption>" + xml_escape(caption) + "</caption>\n<tr><th></th>";
    for (const auto& c : cols) body_ += "<th>" + xml_escape(c) + "</th>";
    body_ += "</tr>\n";
    for (Eigen::Index i = 0; i < m.rows(); ++i) {
      body_ += "<tr><th>" + xml_escape(rows[static_cast<size_t>(i)]) + "</th>";
      for (Eigen::Index j = 0; j < m.cols(); ++j)
        body_ += "<td>" + num(m(i, j), precision) + "</td>";
      body_ += "</tr>\n";
    }
    body_ += "</table>\n";
  }
  void checked(const CheckedBlock& b) override {
    body_ += "<table class=\"checked\"><caption>" + xml_escape(b.name + ": " + b.formula) +
             " <span class=\"fd\">(finite difference below each value)</span></caption>\n"
             "<tr><th></th>";
    for (const auto& c : b.col_labels) body_ += "<th>" + xml_escape(c) + "</th>";
    body_ += "</tr>\n";
    for (Eigen::Index i = 0; i < b.analytic.rows(); ++i) {
      body_ += "<tr><th>" + xml_escape(b.row_labels[static_cast<size_t>(i)]) + "</th>";
      for (Eigen::Index j = 0; j < b.analytic.cols(); ++j)
        body_ += "<td>" + num(b.analytic(i, j), kBackwardPrecision) + "<br/><span class=\"fd\">" +
                 num(b.numeric(i, j), kBackwardPrecision) + "</span></td>";
      body_ += "</tr>\n";
    }
    body_ +=
        "</table>\n<p class=\"err\">max |analytic − finite difference| = " + err(b.max_abs_err()) +
        "</p>\n";
  }
  void bars(const std::string& caption, const Labels& labels, const VectorXd& p) override {
    svg(caption, bars_svg(labels, p));
  }
  void table(const Labels& header, const std::vector<Labels>& rows) override {
    body_ += "<table>\n<tr>";
    for (const auto& h : header) body_ += "<th>" + xml_escape(h) + "</th>";
    body_ += "</tr>\n";
    for (const auto& r : rows) {
      body_ += "<tr>";
      for (const auto& c : r) body_ += "<td>" + xml_escape(c) + "</td>";
      body_ += "</tr>\n";
    }
    body_ += "</table>\n";
  }
  void heatmap(const std::string& caption, const Labels& rows, const Labels& cols,
               const MatrixXd& m) override {
    HeatmapOptions o;
    o.title = caption;
    o.row_labels = rows;
    o.col_labels = cols;
    o.x_label = "key";
    o.y_label = "query";
    o.cell = 64;
    o.annotate = true;
    std::vector<double> values;
    for (Eigen::Index i = 0; i < m.rows(); ++i)
      for (Eigen::Index j = 0; j < m.cols(); ++j) values.push_back(m(i, j));
    svg(caption, heatmap_svg(values, m.rows(), m.cols(), o));
  }
  void svg(const std::string& caption, const std::string& svg) override {
    body_ += "<figure>" + strip_xml_declaration(svg) + "<figcaption>" + xml_escape(caption) +
             "</figcaption></figure>\n";
  }
  std::string finish() override {
    return "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n"
           "<head><meta charset=\"utf-8\"/><title>" +
           xml_escape(title_) +
           "</title>\n<style>\n"
           "body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.45}\n"
           "table{border-collapse:collapse;margin:0.8em 0}\n"
           "th,td{border:1px solid #ccc;padding:0.2em 0.6em;text-align:right;"
           "font-family:monospace}\n"
           "caption{text-align:left;font-weight:bold;padding:0.3em 0}\n"
           ".fd{color:#777;font-size:90%}\n.err{font-family:monospace;color:#2a7a2a}\n"
           "pre{background:#f6f6f6;padding:0.6em}\nfigure{margin:1em 0}\n"
           "</style></head>\n<body>\n" +
           body_ + "</body>\n</html>\n";
  }

 private:
  std::string title_, body_;
};

// ---- the lesson, once for every format ----

Labels words_of(const std::vector<ExplainWord>& w) {
  return labelled("", w);
}

void forward_lesson(const ExplainReport& r, Writer& w) {
  const ExplainInput& in = r.input;
  const AttentionRow& a = r.row;
  const Labels words = words_of(in.words);
  const std::string qw = in.words[static_cast<size_t>(in.query)].word;
  const Eigen::Index d = a.X.cols(), dk = a.q.size(), dv = a.out.size();
  const double root = std::sqrt(static_cast<double>(dk));

  w.heading("1. The words and the weights");
  w.para(fmt::format(
      "Each word starts as an embedding x, here d = {} numbers. Attention gives every word "
      "three roles, each made by a weight matrix: a query q = W_Q·x (what am I looking for?), a "
      "key k = W_K·x (what do I offer?) and a value v = W_V·x (what do I pass on if chosen?). "
      "We follow one query, '{}', reading the sentence to find out what it refers to.",
      d, qw));
  w.matrix("x (one row per word)", words, components("x", d), a.X, 2);
  w.matrix(fmt::format("W_Q [d_k = {}, d = {}]", dk, d), components("q", dk), components("x", d),
           in.W_Q, 2);
  w.matrix(fmt::format("W_K [d_k = {}, d = {}]", dk, d), components("k", dk), components("x", d),
           in.W_K, 2);
  w.matrix(fmt::format("W_V [d_v = {}, d = {}]", dv, d), components("v", dv), components("x", d),
           in.W_V, 2);

  w.heading("2. Queries, keys and values");
  w.para(
      fmt::format("Multiply: the query of '{}', and a key and a value for every word ('{}' "
                  "included: in self-attention a word also looks at itself).",
                  qw, qw));
  w.math({"q   = W_Q · x_" + qw, "k_j = W_K · x_j", "v_j = W_V · x_j"});
  w.matrix("q", {"q_" + qw}, components("", dk), a.q.transpose(), 4);
  w.matrix("K (row j is k_j)", labelled("k_", in.words), components("", dk), a.K, 4);
  w.matrix("V (row j is v_j)", labelled("v_", in.words), components("", dv), a.V, 4);

  w.heading("3. Dot products q·k");
  w.para(
      "How well does each key answer the query? Their dot product: large when they point the "
      "same way, negative when they disagree.");
  std::vector<std::string> lines;
  for (size_t j = 0; j < in.words.size(); ++j) {
    const auto J = static_cast<Eigen::Index>(j);
    std::string terms;
    for (Eigen::Index i = 0; i < dk; ++i)
      terms += (i ? " + " : "") + fmt::format("({})·({})", num(a.q(i), 2), num(a.K(J, i), 2));
    lines.push_back(fmt::format("q·k_{} = {} = {}", in.words[j].word, terms, num(a.qk(J), 4)));
  }
  w.math(lines);

  w.heading(fmt::format("4. Divide by √d_k = {}", num(root, 4)));
  w.para(fmt::format(
      "q·k is a sum of d_k = {} products. If the entries of q and k were random with unit "
      "variance, each product would have variance 1 and the sum variance d_k: the scores' spread "
      "grows like √d_k. Dividing by √d_k keeps the scores S at unit scale whatever the head size, "
      "so the softmax below stays soft and its gradient does not vanish (section 8 shows it with "
      "numbers).",
      dk));
  lines.clear();
  for (size_t j = 0; j < in.words.size(); ++j) {
    const auto J = static_cast<Eigen::Index>(j);
    lines.push_back(fmt::format("S_{} = {} / {} = {}", in.words[j].word, num(a.qk(J), 4),
                                num(root, 4), num(a.S(J), 4)));
  }
  w.math(lines);

  w.heading("5. Softmax: scores become weights");
  w.para(
      "Exponentiate each score and divide by the total: every weight is positive and together "
      "they sum to 1, so P says how much of each word's value the query takes.");
  const VectorXd e = a.S.array().exp();
  lines = {"P_j = exp(S_j) / Σ_i exp(S_i)"};
  for (size_t j = 0; j < in.words.size(); ++j) {
    const auto J = static_cast<Eigen::Index>(j);
    lines.push_back(fmt::format("exp(S_{}) = {}    P_{} = {} / {} = {}  ({:.1f} %)",
                                in.words[j].word, num(e(J), 4), in.words[j].word, num(e(J), 4),
                                num(e.sum(), 4), num(a.P(J), 4), 100 * a.P(J)));
  }
  lines.push_back(fmt::format("Σ_j P_j = {}", num(a.P.sum(), 6)));
  w.math(lines);
  w.bars(fmt::format("P: where '{}' looks", qw), words, a.P);
  w.heatmap(fmt::format("P, the row of '{}'", qw), {qw}, words, a.P.transpose());

  w.heading("6. The weighted sum of the values: the refreshed '" + qw + "'");
  Eigen::Index top = 0;
  a.P.maxCoeff(&top);
  w.para(
      fmt::format("The output is the values mixed in proportion P. '{}' now carries mostly "
                  "what '{}' carries: this is how attention lets a pronoun pick up its "
                  "referent.",
                  qw, in.words[static_cast<size_t>(top)].word));
  lines = {"out = Σ_j P_j · v_j"};
  for (size_t j = 0; j < in.words.size(); ++j) {
    const auto J = static_cast<Eigen::Index>(j);
    std::string v;
    for (Eigen::Index i = 0; i < dv; ++i) v += (i ? ", " : "") + num(a.V(J, i), 4);
    lines.push_back(fmt::format("  {} · ({})", num(a.P(J), 4), v));
  }
  std::string o;
  for (Eigen::Index i = 0; i < dv; ++i) o += (i ? ", " : "") + num(a.out(i), 4);
  lines.push_back("out = (" + o + ")");
  w.math(lines);
}

void backward_lesson(const ExplainReport& r, Writer& w) {
  const ExplainInput& in = r.input;
  const AttentionRow& a = r.row;
  const std::string qw = in.words[static_cast<size_t>(in.query)].word;
  std::string t;
  for (Eigen::Index i = 0; i < in.target.size(); ++i) t += (i ? ", " : "") + num(in.target(i), 4);

  w.heading("7. The backward pass");
  w.para(fmt::format(
      "Now a loss, and its gradient flowing back through every step. Take L = ½‖out − target‖² "
      "with target = ({}), held fixed; here L = {}. Each gradient below is computed twice: by "
      "the hand-derived formula (left) and by central differences in float64, (L(θ + ε) − "
      "L(θ − ε)) / 2ε with ε = {:g}, perturbing that quantity alone and recomputing everything "
      "downstream of it (right).",
      t, num(r.loss, 6), r.eps));
  w.para("The output: L = ½‖out − target‖², so its gradient is simply the error.");
  w.checked(r.block("dL/dout"));
  w.para(
      "out = Σ_j P_j v_j is linear in both P and V: a weight's gradient is the dot product of "
      "dout with that word's value, and a value's gradient is dout scaled by its weight.");
  w.checked(r.block("dL/dP"));
  w.checked(r.block("dL/dV"));
  w.para(
      "The softmax couples all scores: raising one score raises its own weight and lowers all "
      "the others. Its Jacobian ∂P_i/∂S_j = P_i (δ_ij − P_j), i.e. J = diag(P) − P Pᵀ, written "
      "out for this row (each column checked by perturbing one score):");
  w.checked(r.block("dP/dS"));
  w.para(
      "The chain rule through the softmax is dS = Jᵀ · dP. Multiplying out J gives the O(n) "
      "rule used in practice, which never forms J: dS_j = P_j (dP_j − ⟨dP, P⟩). The "
      "subtracted term is the weighted average of dP; dropping it is a classic bug, and the "
      "finite differences catch it.");
  w.math({fmt::format("⟨dP, P⟩ = Σ_j dP_j P_j = {}", num(r.dot_dP_P, kBackwardPrecision))});
  w.checked(r.block("dL/dS (Jacobian)"));
  w.checked(r.block("dL/dS (O(n) rule)"));
  const CheckedBlock& dS = r.block("dL/dS (O(n) rule)");
  Eigen::Index lo = 0;
  dS.analytic.row(0).minCoeff(&lo);
  w.para(fmt::format(
      "dL/dS is most negative for '{}': raising that score lowers the loss the "
      "most, so a gradient step moves '{}' towards '{}'.",
      in.words[static_cast<size_t>(lo)].word, qw, in.words[static_cast<size_t>(lo)].word));
  w.para(
      "S_j = q·k_j / √d_k: the query's gradient gathers the keys weighted by dS, and each key's "
      "gradient is the query scaled by its dS_j — both divided by √d_k, the same factor as in "
      "the forward pass.");
  w.checked(r.block("dL/dq"));
  w.checked(r.block("dL/dK"));
  w.para(
      fmt::format("Finally the weights. q = W_Q·x_{0}, so dW_Q is the outer product dq·x_{0}ᵀ. "
                  "W_K and W_V are used once per word, so their gradients add up one outer "
                  "product per word.",
                  qw));
  w.checked(r.block("dL/dW_Q"));
  if ((a.x_q.array() == 0).any())
    w.para(
        fmt::format("The columns of dW_Q where x_{} is 0 are 0: a weight learns only from the "
                    "inputs it multiplied.",
                    qw));
  w.checked(r.block("dL/dW_K"));
  w.checked(r.block("dL/dW_V"));
  w.para(
      fmt::format("And the embeddings, which an earlier layer would receive: each word's x made "
                  "its key and its value, and x_{0} also made the query, so '{0}' collects "
                  "gradient along three paths.",
                  qw));
  w.checked(r.block("dL/dX"));

  std::vector<Labels> rows;
  for (const auto& b : r.backward)
    rows.push_back(
        {b.name, fmt::format("{}×{}", b.analytic.rows(), b.analytic.cols()), err(b.max_abs_err())});
  w.para(
      fmt::format("Summary: every hand-derived gradient against its finite difference. The "
                  "worst disagreement is {}, at the level of float64 rounding over ε.",
                  err(r.max_abs_err())));
  w.table({"gradient", "shape", "max |analytic − FD|"}, rows);
}

void scaling_lesson(const ExplainReport& r, Writer& w) {
  w.heading("8. What √d_k prevents");
  w.para(fmt::format(
      "Draw q and {} keys with independent N(0, 1) entries, {} times for each size d, and compare "
      "raw scores q·k with scaled scores q·k/√d. Without the scaling the spread of the scores "
      "grows like √d, the softmax saturates (the largest weight approaches 1, the rest 0), and "
      "its Jacobian diag(P) − P Pᵀ — the factor every gradient through the softmax is multiplied "
      "by — shrinks towards 0: learning stalls. With the scaling nothing depends on d.",
      r.scaling_keys, r.scaling_trials));
  std::vector<Labels> rows;
  for (const auto& s : r.scaling)
    rows.push_back({std::to_string(s.d), num(std::sqrt(double(s.d)), 1), num(s.std_unscaled, 2),
                    num(s.std_scaled, 2), num(s.max_p_unscaled, 3), num(s.max_p_scaled, 3),
                    num(s.jac_unscaled, 3), num(s.jac_scaled, 3)});
  w.table({"d", "√d", "std(q·k)", "std(q·k/√d)", "max P (raw)", "max P (scaled)", "‖J‖ (raw)",
           "‖J‖ (scaled)"},
          rows);
  std::vector<PlotSeries> series(4);
  series[0].name = "max P, raw q·k";
  series[1].name = "max P, q·k/√d";
  series[2].name = "‖J‖_F, raw q·k";
  series[3].name = "‖J‖_F, q·k/√d";
  for (const auto& s : r.scaling) {
    const double x = std::log2(double(s.d));
    const double ys[] = {s.max_p_unscaled, s.max_p_scaled, s.jac_unscaled, s.jac_scaled};
    for (size_t i = 0; i < 4; ++i) series[i].x.push_back(x), series[i].y.push_back(ys[i]);
  }
  LineChartOptions o;
  o.title = "softmax saturation as d grows";
  o.x_label = "log2 d";
  w.svg("Mean largest weight and mean Jacobian norm, raw versus scaled scores.",
        line_chart_svg(series, o));
}

void cross_lesson(const ExplainReport& r, Writer& w) {
  const ExplainInput& in = r.input;
  w.heading("9. Self-attention and cross-attention");
  w.para(
      "In self-attention Q, K and V all come from the same sequence X: Q = X·W_Qᵀ, "
      "K = X·W_Kᵀ, V = X·W_Vᵀ, and every word attends over every word. The map below is P for "
      "every word of the sentence as the query (rows sum to 1).");
  const Labels words = words_of(in.words);
  w.matrix("P, self-attention (row: query, column: key)", words, words, r.P_all, 4);
  w.heatmap("self-attention P", words, words, r.P_all);
  if (r.cross.P.size() == 0) return;
  const Labels keys = words_of(in.cross_words);
  const std::string qw = in.cross_query.word;
  std::string src;
  for (size_t i = 0; i < keys.size(); ++i) src += (i ? ", " : "") + keys[i];
  w.para(fmt::format(
      "Cross-attention is the same mechanics with Q from one sequence and K, V from another — "
      "in a translation model the decoder's words query the encoder's. Here '{}' in the second "
      "sentence{} queries the words of the first ({}): q = W_Q·x_{}, K = X₁·W_Kᵀ, V = X₁·W_Vᵀ. "
      "Same dot products, same √d_k, same softmax, same weighted sum, same backward pass — only "
      "the rows of K and V changed.",
      qw, in.cross_sentence.empty() ? "" : " (\"" + in.cross_sentence + "\")", src, qw));
  std::vector<std::string> lines;
  for (size_t j = 0; j < keys.size(); ++j) {
    const auto J = static_cast<Eigen::Index>(j);
    lines.push_back(fmt::format("S_{} = q·k_{} / √d_k = {} / {} = {}    P_{} = {}", keys[j],
                                keys[j], num(r.cross.qk(J), 4),
                                num(std::sqrt(double(r.cross.q.size())), 4), num(r.cross.S(J), 4),
                                keys[j], num(r.cross.P(J), 4)));
  }
  std::string o;
  for (Eigen::Index i = 0; i < r.cross.out.size(); ++i)
    o += (i ? ", " : "") + num(r.cross.out(i), 4);
  lines.push_back("out = Σ_j P_j · v_j = (" + o + ")");
  w.math(lines);
  w.bars(fmt::format("P: '{}' over the first sentence", qw), keys, r.cross.P);
}

/// The sentence in quotes, ending with a full stop, and a space; "" when there is none.
std::string quoted_sentence(const std::string& s) {
  if (s.empty()) return "";
  const char last = s.back();
  return "\"" + s + (last == '.' || last == '!' || last == '?' ? "" : ".") + "\" ";
}

}  // namespace

std::string render_explain(const ExplainReport& r, const std::string& format) {
  std::unique_ptr<Writer> w;
  if (format == "text")
    w = std::make_unique<TextWriter>();
  else if (format == "markdown")
    w = std::make_unique<MarkdownWriter>();
  else if (format == "html")
    w = std::make_unique<HtmlWriter>();
  else
    fail("--format '{}': expected text, markdown or html", format);

  w->title("Attention, step by step");
  const std::string qw = r.input.words[static_cast<size_t>(r.input.query)].word;
  w->para(fmt::format(
      "{}Attention(Q, K, V) = softmax(Q·Kᵀ/√d_k)·V, one row of it, by hand: the query is '{}'. "
      "Every number is computed in float64 from {}.",
      quoted_sentence(r.input.sentence), qw, r.input.source));
  forward_lesson(r, *w);
  backward_lesson(r, *w);
  scaling_lesson(r, *w);
  cross_lesson(r, *w);
  return w->finish();
}

}  // namespace qkv::cli
