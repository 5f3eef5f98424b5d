// qkv explain: the classic worked example of self-attention ("The animal didn't cross the street
// because it was too tired"), forward and backward, with every number — and every gradient beside
// its finite-difference estimate. Input (explain_input.cpp), computation (explain_compute.cpp), the
// lesson (explain_lesson.cpp) and its renderers (explain_render_*.cpp) live in files of their own.
//
// Notation (one query row; rows of X, K, V are words):
//   x_q [d]      the query word's embedding       X [n, d]   the words' embeddings
//   q = W_Q·x_q  [d_k]                            K = X·W_Kᵀ [n, d_k],  V = X·W_Vᵀ [n, d_v]
//   S = K·q / √d_k  [n]    P = softmax(S)  [n]    out = Vᵀ·P  [d_v]
//   L = ½‖out − target‖²
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Dense>

namespace qkv::cli {

/// A word and its embedding x.
struct ExplainWord {
  std::string word;
  Eigen::VectorXd x;
};

/// Everything the lesson is computed from: the default example or a --vectors file.
struct ExplainInput {
  std::string source = "the built-in example";  ///< where it came from, for messages
  std::string sentence;                         ///< shown at the top
  std::vector<ExplainWord> words;               ///< keys and values (the sentence's words)
  int query = 0;                                ///< index of the query word in `words`
  Eigen::MatrixXd W_Q, W_K, W_V;                ///< [d_k, d], [d_k, d], [d_v, d]
  Eigen::VectorXd target;                       ///< [d_v]; L = ½‖out − target‖²
  // Cross-attention: a query from a second sentence over `cross_words` (same W_Q, W_K, W_V).
  std::string cross_sentence;
  ExplainWord cross_query;
  std::vector<ExplainWord> cross_words;
};

/// The built-in example: d = d_k = d_v = 4, "it" attends ≈ 51 % animal, 31 % itself, 19 % street.
ExplainInput default_explain_input();
/// Parses the --vectors JSON schema (see docs/explain.md); throws qkv::Error naming `source`.
ExplainInput parse_explain_input(const std::string& json_text, const std::string& source);
/// Reads and parses a --vectors file; throws qkv::Error naming the file and the problem.
ExplainInput load_explain_input(const std::string& path);

/// One query row of attention, forward.
struct AttentionRow {
  Eigen::VectorXd x_q;  ///< [d]
  Eigen::MatrixXd X;    ///< [n, d]
  Eigen::VectorXd q;    ///< [d_k]
  Eigen::MatrixXd K;    ///< [n, d_k]
  Eigen::MatrixXd V;    ///< [n, d_v]
  Eigen::VectorXd qk;   ///< [n] raw dot products q·k_j
  Eigen::VectorXd S;    ///< [n] qk / √d_k
  Eigen::VectorXd P;    ///< [n] softmax(S), sums to 1
  Eigen::VectorXd out;  ///< [d_v] Σ_j P_j v_j
};

/// softmax(W_Q·x_q · (X·W_Kᵀ)ᵀ / √d_k) · X·W_Vᵀ, keeping every intermediate.
AttentionRow attend_row(const Eigen::VectorXd& x_q, const Eigen::MatrixXd& X,
                        const Eigen::MatrixXd& W_Q, const Eigen::MatrixXd& W_K,
                        const Eigen::MatrixXd& W_V);

/// A backward-pass quantity: the hand-derived value and its central-difference estimate.
struct CheckedBlock {
  std::string name;     ///< e.g. "dL/dW_Q"
  std::string formula;  ///< how the analytic value is computed
  std::vector<std::string> row_labels, col_labels;
  Eigen::MatrixXd analytic, numeric;
  /// max |analytic − numeric| over the block.
  double max_abs_err() const;
};

/// How the softmax backward turns dL/dP into dL/dS, given P (both [n]).
using SoftmaxBackwardRule = Eigen::VectorXd (*)(const Eigen::VectorXd& P,
                                                const Eigen::VectorXd& dP);
/// The O(n) rule dS = P ⊙ (dP − ⟨dP, P⟩).
Eigen::VectorXd softmax_backward_rule(const Eigen::VectorXd& P, const Eigen::VectorXd& dP);

/// Spread of the scores, saturation of the softmax and the size of its Jacobian, at one d.
struct ScalingRow {
  int d = 0;
  double std_unscaled = 0, std_scaled = 0;      ///< standard deviation of q·k and of q·k/√d
  double max_p_unscaled = 0, max_p_scaled = 0;  ///< mean over trials of max_j P_j
  double jac_unscaled = 0, jac_scaled = 0;      ///< mean ‖diag(P) − P Pᵀ‖_F
};

struct ExplainReport {
  ExplainInput input;
  AttentionRow row;  ///< the query word's row
  double loss = 0;
  double eps = 0;                      ///< the finite-difference step
  std::vector<CheckedBlock> backward;  ///< in lesson order; see block()
  double dot_dP_P = 0;                 ///< ⟨dP, P⟩, the term the O(n) rule subtracts
  Eigen::MatrixXd P_all;               ///< [n, n] every word as the query (the self-attention map)
  std::vector<ScalingRow> scaling;
  int scaling_keys = 0, scaling_trials = 0;
  AttentionRow cross;  ///< cross-attention row (empty when there is none)

  /// The block named `name`; throws qkv::Error when there is none.
  const CheckedBlock& block(const std::string& name) const;
  /// The worst max_abs_err over all backward blocks.
  double max_abs_err() const;
};

/// Computes the lesson in float64: forward, hand-derived backward (using `rule` for the softmax)
/// beside central differences with step `eps`, the √d_k study and the cross-attention row.
ExplainReport build_explain_report(const ExplainInput& input,
                                   SoftmaxBackwardRule rule = softmax_backward_rule,
                                   double eps = 1e-6);

/// The √d_k study: for each d, `trials` draws of q and `keys` keys with N(0, 1) entries.
std::vector<ScalingRow> scaling_study(const std::vector<int>& dims, int keys, int trials,
                                      uint64_t seed);

/// Labels "PREFIX" + each word ("k_animal", …).
std::vector<std::string> labelled(const std::string& prefix, const std::vector<ExplainWord>& words);
/// Labels PREFIX1 … PREFIXn ("x1", "x2", …).
std::vector<std::string> components(const std::string& prefix, Eigen::Index n);

/// The lesson as plain text, Markdown, or one self-contained HTML page (inline SVG, no scripts).
std::string render_explain(const ExplainReport& report, const std::string& format);

}  // namespace qkv::cli
