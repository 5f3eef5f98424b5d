// qkv explain: the worked example's numbers (≈ 51 / 31 / 19 %), every backward block against its
// float64 finite difference, a deliberately broken softmax backward that the comparison must
// catch, agreement with qkv's own autograd, the √d_k study, the three renderings, the --vectors
// schema's error messages, and the program run as a user runs it (QKV_BIN).
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "apps/explain.h"
#include "autograd/ops.h"
#include "core/rng.h"
#include "run_qkv.h"
#include "test_files.h"
#include "test_xml.h"

namespace qkv::cli {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;
using test::count_of;
using test::error_of;
using test::temp_folder;
using test::temp_path;
using test::xml_problem;

const char* kBlocks[] = {"dL/dout",           "dL/dP", "dL/dV", "dP/dS",   "dL/dS (Jacobian)",
                         "dL/dS (O(n) rule)", "dL/dq", "dL/dK", "dL/dW_Q", "dL/dW_K",
                         "dL/dW_V",           "dL/dX"};

// ---- forward ----------------------------------------------------------------------------------

TEST(ExplainForward, ItAttends51ToAnimal31ToItself19ToStreet) {
  const ExplainReport r = build_explain_report(default_explain_input());
  ASSERT_EQ(r.input.words[0].word, "animal");
  ASSERT_EQ(r.input.words[1].word, "street");
  ASSERT_EQ(r.input.words[2].word, "it");
  EXPECT_EQ(r.input.query, 2);
  // q·k = (1, −1, 0) exactly, so S = (½, −½, 0) and P = (e^½, e^−½, 1) / Σ.
  EXPECT_NEAR(r.row.qk(0), 1.0, 1e-15);
  EXPECT_NEAR(r.row.qk(1), -1.0, 1e-15);
  EXPECT_NEAR(r.row.qk(2), 0.0, 1e-15);
  const double z = std::exp(0.5) + std::exp(-0.5) + 1;
  EXPECT_NEAR(r.row.P(0), std::exp(0.5) / z, 1e-15);
  EXPECT_EQ(std::lround(100 * r.row.P(0)), 51);
  EXPECT_EQ(std::lround(100 * r.row.P(2)), 31);
  EXPECT_EQ(std::lround(100 * r.row.P(1)), 19);
  EXPECT_NEAR(r.row.P.sum(), 1.0, 1e-15);
  // out = Σ_j P_j v_j.
  const VectorXd out = r.row.P(0) * r.row.V.row(0).transpose() +
                       r.row.P(1) * r.row.V.row(1).transpose() +
                       r.row.P(2) * r.row.V.row(2).transpose();
  EXPECT_LT((out - r.row.out).cwiseAbs().maxCoeff(), 1e-15);
}

TEST(ExplainForward, CrossAttentionIsTheSameRowOverTheFirstSentence) {
  const ExplainReport r = build_explain_report(default_explain_input());
  ASSERT_EQ(r.cross.P.size(), 2);
  EXPECT_NEAR(r.cross.P(0), std::exp(0.5) / (std::exp(0.5) + std::exp(-0.5)), 1e-15);
  EXPECT_NEAR(r.cross.P.sum(), 1.0, 1e-15);
  // The self-attention map's row for 'it' is the lesson's row; every row sums to 1.
  EXPECT_LT((r.P_all.row(2).transpose() - r.row.P).cwiseAbs().maxCoeff(), 1e-15);
  for (Eigen::Index i = 0; i < r.P_all.rows(); ++i) EXPECT_NEAR(r.P_all.row(i).sum(), 1.0, 1e-15);
}

// ---- backward ---------------------------------------------------------------------------------

void expect_all_blocks_agree(const ExplainReport& r) {
  ASSERT_EQ(r.backward.size(), std::size(kBlocks));
  for (const char* name : kBlocks) {
    const CheckedBlock& b = r.block(name);
    EXPECT_EQ(b.analytic.rows(), b.numeric.rows()) << name;
    EXPECT_EQ(b.analytic.cols(), b.numeric.cols()) << name;
    EXPECT_EQ(static_cast<Eigen::Index>(b.row_labels.size()), b.analytic.rows()) << name;
    EXPECT_EQ(static_cast<Eigen::Index>(b.col_labels.size()), b.analytic.cols()) << name;
    EXPECT_LE(b.max_abs_err(), 1e-6) << name;
    EXPECT_GT(b.numeric.cwiseAbs().maxCoeff(), 1e-3) << name << " is trivially zero";
  }
}

TEST(ExplainBackward, EveryBlockAgreesWithItsFiniteDifference) {
  const ExplainReport r = build_explain_report(default_explain_input());
  expect_all_blocks_agree(r);
  EXPECT_LE(r.max_abs_err(), 1e-6);
  // The Jacobian is symmetric with rows summing to 0 (P sums to 1 whatever S does).
  const MatrixXd& J = r.block("dP/dS").analytic;
  EXPECT_LT((J - J.transpose()).cwiseAbs().maxCoeff(), 1e-15);
  EXPECT_LT(J.rowwise().sum().cwiseAbs().maxCoeff(), 1e-15);
  // Both routes to dL/dS agree.
  EXPECT_LT((r.block("dL/dS (Jacobian)").analytic - r.block("dL/dS (O(n) rule)").analytic)
                .cwiseAbs()
                .maxCoeff(),
            1e-15);
}

/// Random words and weights of unequal sizes: n = 5 words, d = 6, d_k = 3, d_v = 2.
ExplainInput random_input(uint64_t seed) {
  Rng rng(seed);
  auto randn = [&](Eigen::Index r, Eigen::Index c) {
    MatrixXd m(r, c);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = rng.normal();
    return m;
  };
  ExplainInput in;
  for (int i = 0; i < 5; ++i) in.words.push_back({"w" + std::to_string(i), randn(6, 1).col(0)});
  in.query = 3;
  in.W_Q = randn(3, 6);
  in.W_K = randn(3, 6);
  in.W_V = randn(2, 6);
  in.target = randn(2, 1).col(0);
  in.cross_query = in.words[3];
  in.cross_words = {in.words[0], in.words[1]};
  return in;
}

TEST(ExplainBackward, AgreesOnRandomShapesToo) {
  for (uint64_t seed : {1, 2, 3}) {
    SCOPED_TRACE(seed);
    expect_all_blocks_agree(build_explain_report(random_input(seed)));
  }
}

// The classic bug: dS = P ⊙ dP, without the − ⟨dP, P⟩ term.
VectorXd forgot_the_centering(const VectorXd& P, const VectorXd& dP) {
  return P.array() * dP.array();
}

TEST(ExplainBackward, DroppingTheCenteringTermIsCaughtByFiniteDifferences) {
  const ExplainReport r = build_explain_report(default_explain_input(), forgot_the_centering);
  // Everything downstream of the broken rule disagrees with its finite difference by far more
  // than the 1e-6 the correct backward meets...
  for (const char* name : {"dL/dS (O(n) rule)", "dL/dq", "dL/dK", "dL/dW_Q", "dL/dW_K", "dL/dX"})
    EXPECT_GT(r.block(name).max_abs_err(), 1e-2) << name;
  EXPECT_GT(r.max_abs_err(), 1e-2);
  // ...while what does not use it (and the full-Jacobian route) still agrees.
  for (const char* name : {"dL/dout", "dL/dP", "dL/dV", "dP/dS", "dL/dS (Jacobian)", "dL/dW_V"})
    EXPECT_LE(r.block(name).max_abs_err(), 1e-6) << name;
  // And the rendered lesson shows it.
  const std::string text = render_explain(r, "text");
  EXPECT_NE(text.find("max |analytic − finite difference| = " +
                      fmt::format("{:.1e}", r.block("dL/dS (O(n) rule)").max_abs_err())),
            std::string::npos);
}

/// M as a float64 autograd leaf [rows, cols].
Var<double> leaf(const MatrixXd& m, bool requires_grad) {
  Tensor<double> t = Tensor<double>::empty({m.rows(), m.cols()});
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) t[i * m.cols() + j] = m(i, j);
  return Var<double>(t, requires_grad);
}

MatrixXd to_matrix(const Tensor<double>& t, Eigen::Index rows, Eigen::Index cols) {
  MatrixXd m(rows, cols);
  for (Eigen::Index i = 0; i < rows; ++i)
    for (Eigen::Index j = 0; j < cols; ++j) m(i, j) = t[i * cols + j];
  return m;
}

// The hand-derived dW_Q, dW_K, dW_V equal what qkv's engine computes through its fused attention
// and through the composed one (matmul, softmax).
TEST(ExplainBackward, MatchesQkvAutograd) {
  for (const ExplainInput& in : {default_explain_input(), random_input(4)}) {
    const ExplainReport r = build_explain_report(in);
    const Eigen::Index n = r.row.X.rows(), dk = in.W_Q.rows(), dv = in.W_V.rows();
    for (const bool fused : {true, false}) {
      SCOPED_TRACE(fused ? "scaled_dot_product_attention" : "attention_composed");
      Var<double> W_Q = leaf(in.W_Q, true), W_K = leaf(in.W_K, true), W_V = leaf(in.W_V, true);
      const Var<double> X = leaf(r.row.X, false), x_q = leaf(r.row.x_q.transpose(), false);
      const Var<double> target = leaf(in.target.transpose(), false);
      auto heads = [](const Var<double>& m, int64_t rows, int64_t cols) {
        return reshape(m, {1, 1, rows, cols});
      };
      const Var<double> Q = heads(matmul(x_q, transpose(W_Q, 0, 1)), 1, dk);
      const Var<double> K = heads(matmul(X, transpose(W_K, 0, 1)), n, dk);
      const Var<double> V = heads(matmul(X, transpose(W_V, 0, 1)), n, dv);
      const Var<double> out =
          fused ? scaled_dot_product_attention(Q, K, V) : attention_composed(Q, K, V);
      const Var<double> e = reshape(out, {1, dv}) - target;
      Var<double> loss = sum(e * e) * 0.5;
      EXPECT_NEAR(loss.value().item(), r.loss, 1e-12);
      loss.backward();
      EXPECT_LT((to_matrix(W_Q.grad(), dk, in.W_Q.cols()) - r.block("dL/dW_Q").analytic)
                    .cwiseAbs()
                    .maxCoeff(),
                1e-12);
      EXPECT_LT((to_matrix(W_K.grad(), dk, in.W_K.cols()) - r.block("dL/dW_K").analytic)
                    .cwiseAbs()
                    .maxCoeff(),
                1e-12);
      EXPECT_LT((to_matrix(W_V.grad(), dv, in.W_V.cols()) - r.block("dL/dW_V").analytic)
                    .cwiseAbs()
                    .maxCoeff(),
                1e-12);
    }
  }
}

// ---- the √d_k study ---------------------------------------------------------------------------

TEST(ExplainScaling, RawScoresSpreadLikeSqrtDAndSaturateWhileScaledOnesStayPut) {
  const std::vector<ScalingRow> rows = scaling_study({4, 16, 64, 256, 1024}, 8, 2000, 0);
  ASSERT_EQ(rows.size(), 5u);
  for (size_t i = 0; i < rows.size(); ++i) {
    const ScalingRow& s = rows[i];
    SCOPED_TRACE(s.d);
    EXPECT_NEAR(s.std_unscaled / std::sqrt(double(s.d)), 1.0, 0.05);
    EXPECT_NEAR(s.std_scaled, 1.0, 0.05);
    EXPECT_NEAR(s.max_p_scaled, rows[0].max_p_scaled, 0.03);
    EXPECT_NEAR(s.jac_scaled, rows[0].jac_scaled, 0.03);
    if (i > 0) {
      EXPECT_GT(s.max_p_unscaled, rows[i - 1].max_p_unscaled);
      EXPECT_LT(s.jac_unscaled, rows[i - 1].jac_unscaled);
    }
  }
  EXPECT_GT(rows.back().max_p_unscaled, 0.95);
  EXPECT_LT(rows.back().jac_unscaled, 0.2 * rows.back().jac_scaled);
}

// ---- renderings -------------------------------------------------------------------------------

const char* kSections[] = {"1. The words and the weights",
                           "2. Queries, keys and values",
                           "3. Dot products q·k",
                           "4. Divide by √d_k = 2.0000",
                           "5. Softmax: scores become weights",
                           "6. The weighted sum of the values",
                           "7. The backward pass",
                           "8. What √d_k prevents",
                           "9. Self-attention and cross-attention"};

TEST(ExplainRender, TextHasEverySectionAndTheNumbers) {
  const std::string text = render_explain(build_explain_report(default_explain_input()), "text");
  for (const char* s : kSections) EXPECT_NE(text.find(s), std::string::npos) << s;
  for (const char* b : kBlocks) EXPECT_NE(text.find(std::string(b) + ":"), std::string::npos) << b;
  EXPECT_NE(text.find("P_animal = 1.6487 / 3.2553 = 0.5065  (50.6 %)"), std::string::npos);
  EXPECT_NE(text.find("P_street = 0.6065 / 3.2553 = 0.1863  (18.6 %)"), std::string::npos);
  EXPECT_NE(text.find("P_it = 1.0000 / 3.2553 = 0.3072  (30.7 %)"), std::string::npos);
  EXPECT_NE(text.find("Σ_j P_j = 1.000000"), std::string::npos);
  EXPECT_NE(text.find("diag(P) − P Pᵀ"), std::string::npos);
  EXPECT_NE(text.find("P ⊙ (dP − ⟨dP, P⟩)"), std::string::npos);
  EXPECT_EQ(count_of(text, "max |analytic − finite difference| = "), std::size(kBlocks));
  EXPECT_EQ(text.find("<"), std::string::npos) << "no markup in the text rendering";
}

TEST(ExplainRender, MarkdownHasEverySectionAsAHeadingAndTables) {
  const std::string md = render_explain(build_explain_report(default_explain_input()), "markdown");
  EXPECT_EQ(md.rfind("# Attention, step by step\n", 0), 0u);
  for (const char* s : kSections)
    EXPECT_NE(md.find(std::string("## ") + s), std::string::npos) << s;
  for (const char* b : kBlocks) EXPECT_NE(md.find("**" + std::string(b) + "**"), std::string::npos);
  EXPECT_EQ(count_of(md, "max |analytic − FD| = "), std::size(kBlocks));
  EXPECT_GT(count_of(md, "| --- |"), 20u);
  EXPECT_EQ(count_of(md, "```text\n"), count_of(md, "```\n"));  // every code block is closed
}

TEST(ExplainRender, HtmlIsOneWellFormedSelfContainedPage) {
  const std::string html = render_explain(build_explain_report(default_explain_input()), "html");
  test::expect_well_formed(html, "explain.html");
  EXPECT_EQ(html.rfind("<!DOCTYPE html>\n<html", 0), 0u);
  for (const char* s : kSections) EXPECT_NE(html.find(std::string("<h2>") + s), std::string::npos);
  EXPECT_EQ(count_of(html, "<h1>"), 1u);
  EXPECT_EQ(count_of(html, "<h2>"), std::size(kSections));
  EXPECT_EQ(count_of(html, "<table class=\"checked\">"), std::size(kBlocks));
  // Pictures inline: the two bar charts, the row and self-attention heatmaps, the √d_k chart.
  EXPECT_EQ(count_of(html, "<svg "), 5u);
  EXPECT_EQ(count_of(html, "<figure>"), 5u);
  EXPECT_EQ(count_of(html, "<?xml"), 0u) << "inline SVG carries no XML declaration";
  // Self-contained: no scripts, no external stylesheets or images.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("href="), std::string::npos);
}

TEST(ExplainRender, EachFigureCaptionAppearsOnce) {
  const std::string html = render_explain(build_explain_report(default_explain_input()), "html");
  size_t figures = 0;
  for (size_t p = html.find("<figcaption>"); p != std::string::npos;
       p = html.find("<figcaption>", p + 1), ++figures) {
    const size_t from = p + std::string("<figcaption>").size();
    const std::string caption = html.substr(from, html.find("</figcaption>", from) - from);
    // Neither an SVG title nor a second figure repeats it.
    EXPECT_EQ(count_of(html, ">" + caption + "<"), 1u) << caption;
  }
  EXPECT_EQ(figures, 5u);
}

TEST(ExplainRender, UnknownFormatNamesTheFlag) {
  const ExplainReport r = build_explain_report(default_explain_input());
  EXPECT_EQ(error_of([&] { render_explain(r, "pdf"); }),
            "--format 'pdf': expected text, markdown or html");
}

// ---- the --vectors schema ---------------------------------------------------------------------

const char* kGood = R"({
  "sentence": "Le chat dort",
  "words": [{"word": "le", "x": [1, 0.5, 0]}, {"word": "chat", "x": [0, 1, -0.5]},
            {"word": "dort", "x": [0.5, 0, 1]}],
  "query": "dort",
  "W_Q": [[1, 0, 0.5], [0, 1, -1]],
  "W_K": [[0.5, 1, 0], [1, 0, 1]],
  "W_V": [[1, 1, 0]],
  "target": [0.5]
})";

TEST(ExplainInput, ParsesTheSchemaAndDefaultsTheCrossAttention) {
  const ExplainInput in = parse_explain_input(kGood, "good.json");
  EXPECT_EQ(in.words.size(), 3u);
  EXPECT_EQ(in.query, 2);
  EXPECT_EQ(in.W_Q.rows(), 2);
  EXPECT_EQ(in.W_V.rows(), 1);
  EXPECT_EQ(in.target(0), 0.5);
  EXPECT_EQ(in.cross_query.word, "dort");
  ASSERT_EQ(in.cross_words.size(), 2u);
  EXPECT_EQ(in.cross_words[0].word, "le");
  expect_all_blocks_agree(build_explain_report(in));
}

/// kGood with `from` replaced by `to`, parsed: the error text.
std::string problem(const std::string& from, const std::string& to) {
  std::string s = kGood;
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return error_of([&] { parse_explain_input(s, "--vectors v.json"); });
}

TEST(ExplainInput, RejectsBadFilesWithOneMessageNamingTheFileAndTheProblem) {
  EXPECT_EQ(problem("\"x\": [0, 1, -0.5]", "\"x\": [0, 1]"),
            "--vectors v.json: 'words': word 'chat' has 2 numbers in x but 'le' has 3; every x "
            "must have the same length d");
  EXPECT_EQ(problem("[[1, 0, 0.5], [0, 1, -1]]", "[[1, 0], [0, 1]]"),
            "--vectors v.json: 'W_Q' row 0 has 2 numbers but the x vectors have 3 (W_Q is [rows, "
            "d] and multiplies x)");
  EXPECT_EQ(problem("[[0.5, 1, 0], [1, 0, 1]]", "[[0.5, 1, 0]]"),
            "--vectors v.json: 'W_Q' has 2 rows but 'W_K' has 1; q·k needs both of length d_k");
  EXPECT_EQ(problem("\"target\": [0.5]", "\"target\": [0.5, 1]"),
            "--vectors v.json: 'target' has 2 numbers but the values have 1 (one per row of W_V)");
  EXPECT_EQ(problem("\"query\": \"dort\"", "\"query\": \"chien\""),
            "--vectors v.json: 'query' is 'chien', which is not one of the words");
  EXPECT_EQ(problem("\"query\": \"dort\"", "\"query\": 2"),
            "--vectors v.json: 'query' must be a string, got 2");
  EXPECT_EQ(problem("\"W_V\"", "\"W_v\""),
            "--vectors v.json: unknown key 'W_v' (expected sentence, words, query, W_Q, W_K, W_V, "
            "target, cross)");
  EXPECT_EQ(problem("[1, 1, 0]", "[1, \"one\", 0]"),
            "--vectors v.json: 'W_V' row 0[1] is not a number");
  const std::string bad_json = problem("\"query\": \"dort\",", "\"query\": \"dort\"");
  EXPECT_EQ(bad_json.rfind("--vectors v.json: not valid JSON (", 0), 0u) << bad_json;
  EXPECT_EQ(bad_json.find('\n'), std::string::npos);
  EXPECT_EQ(error_of([] { parse_explain_input("[1, 2]", "f.json"); }),
            "f.json: expected a JSON object with 'words', 'query', 'W_Q', 'W_K', 'W_V'");
  EXPECT_EQ(error_of([] { load_explain_input("/no/such/file.json"); }),
            "--vectors /no/such/file.json: cannot open the file; give a JSON file (see qkv "
            "explain --help)");
}

// ---- the program ------------------------------------------------------------------------------

using test::RunResult;
using test::slurp;

/// `qkv explain ARGS...` (each argument one word).
RunResult explain(std::vector<std::string> args = {}) {
  args.insert(args.begin(), "explain");
  return test::run_qkv(args, temp_path(""));
}

TEST(ExplainCommand, PrintsTheLessonAndEveryBackwardNumberAgreesWithItsFiniteDifference) {
  const RunResult r = explain();
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("(50.6 %)"), std::string::npos);
  // Every block's printed maximum difference is at most 1e-6.
  const std::regex max_err("max \\|analytic − finite difference\\| = ([0-9.e+-]+)");
  size_t blocks = 0;
  for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), max_err);
       it != std::sregex_iterator(); ++it, ++blocks)
    EXPECT_LE(std::stod((*it)[1].str()), 1e-6) << (*it)[0].str();
  EXPECT_EQ(blocks, std::size(kBlocks));
}

TEST(ExplainCommand, WritesHtmlAndMarkdownFiles) {
  const std::string html = temp_path("lesson.html"), md = temp_path("lesson.md");
  RunResult r = explain({"--out", html});  // format from the extension
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(xml_problem(slurp(html)), "");
  r = explain({"--format", "markdown", "--out", md});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(slurp(md).rfind("# Attention, step by step", 0), 0u);
}

TEST(ExplainCommand, UsesAVectorsFile) {
  const std::string path = temp_path("good.json");
  std::ofstream(path) << kGood;
  const RunResult r = explain({"--format", "markdown", "--vectors", path});  // unwrapped
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("\"Le chat dort.\""), std::string::npos);
  EXPECT_NE(r.out.find("'dort'"), std::string::npos);
  EXPECT_NE(r.out.find("from --vectors " + path), std::string::npos);
}

TEST(ExplainCommand, BadInputExitsTwoWithOneLineNamingTheFlagOrFile) {
  RunResult r = explain({"--format", "pdf"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "qkv: --format 'pdf': expected text, markdown or html\n");
  EXPECT_EQ(r.out, "");

  const std::string bad = temp_path("bad.json");
  std::string s = kGood;
  s.replace(s.find("[0.5, 0, 1]"), 11, "[0.5, 0, 1, 7]");
  std::ofstream(bad) << s;
  r = explain({"--vectors", bad});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "qkv: --vectors " + bad +
                       ": 'words': word 'dort' has 4 numbers in x but 'le' has 3; every x "
                       "must have the same length d\n");
  EXPECT_EQ(r.out, "");

  r = explain({"--vectors", temp_path("missing.json")});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(count_of(r.err, "\n"), 1u) << r.err;
  EXPECT_NE(r.err.find("missing.json: cannot open"), std::string::npos) << r.err;

  r = explain({"--vectors", temp_folder()});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "qkv: --vectors " + temp_folder() +
                       ": is a folder; give a JSON file (see qkv explain --help)\n");

  const std::string pdf = temp_path("lesson.pdf");
  r = explain({"--out", pdf});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "qkv: --out " + pdf +
                       ": qkv explain writes .txt, .md or .html, not '.pdf'; pick one of those "
                       "extensions or give --format text|markdown|html\n");
  EXPECT_FALSE(std::filesystem::exists(pdf));
  r = explain({"--out", pdf, "--format", "text"});  // asked for: written
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(slurp(pdf).find("Attention"), std::string::npos);

  r = explain({"--out", "/no/such/folder/x.txt"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err,
            "qkv: cannot write /no/such/folder/x.txt: its folder /no/such/folder does not "
            "exist\n");
}

}  // namespace
}  // namespace qkv::cli
