// qkv explain's lesson script: the nine sections, written once against the Writer interface.
#include <cmath>

#include "apps/explain_writer.h"
#include "core/error.h"
#include "plot/plot.h"

namespace qkv::cli {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;

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
    w = make_text_writer();
  else if (format == "markdown")
    w = make_markdown_writer();
  else if (format == "html")
    w = make_html_writer();
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
