// apps/graph: the DOT text of hand-built graphs, counted node by node against the expression that
// built them; --values against gradients computed here by hand; and `qkv graph` run as a user
// runs it (QKV_BIN), rendered by Graphviz where it is installed.
#include "apps/graph.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "autograd/ops.h"
#include "core/error.h"
#include "datasets/task.h"
#include "nn/model.h"
#include "run_qkv.h"
#include "train/checkpoint.h"

namespace qkv::cli {
namespace {

namespace fs = std::filesystem;

// ---- a small DOT reader, written against the DOT grammar, not against graph.cpp -----------------

struct Dot {
  std::map<std::string, std::string> label;                // id → label, unescaped
  std::vector<std::string> ids;                            // in declaration order
  std::vector<std::pair<std::string, std::string>> edges;  // (from, to)
  std::string problem;                                     // "" when well-formed
};

/// The label's first line (the op or the parameter name).
std::string head(const std::string& label) {
  return label.substr(0, label.find('\n'));
}

/// Reads the statements of a digraph: `id [attrs];` and `a -> b [attrs];`. Checks that braces and
/// brackets balance outside quoted strings, every string is closed, every edge endpoint is a
/// declared node, and no node is declared twice.
Dot parse_dot(const std::string& text) {
  Dot d;
  int braces = 0, brackets = 0;
  bool in_string = false, opened = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // an escaped character, whatever it is
      else if (c == '"')
        in_string = false;
      else if (c == '\n')
        d.problem = "a newline inside a quoted string";
      continue;
    }
    if (c == '/' && i + 1 < text.size() && text[i + 1] == '/') {  // a // comment
      i = text.find('\n', i);
      if (i == std::string::npos) break;
      continue;
    }
    if (c == '"') in_string = true;
    if (c == '{') opened = true, ++braces;
    if (c == '}') --braces;
    if (c == '[') ++brackets;
    if (c == ']') --brackets;
    if (braces < 0 || brackets < 0) d.problem = "a closing brace or bracket before its opening";
  }
  if (in_string) d.problem = "an unterminated string";
  if (!opened || braces != 0 || brackets != 0) d.problem = "unbalanced braces or brackets";

  std::istringstream in(text);
  std::string line;
  std::set<std::string> declared;
  while (std::getline(in, line)) {
    const size_t a = line.find_first_not_of(' ');
    if (a == std::string::npos) continue;
    const size_t id_end = line.find_first_of(" [;", a);
    const std::string id = line.substr(a, id_end - a);
    if (id == "graph" || id == "node" || id == "edge" || id == "digraph" || id == "}" ||
        id.rfind("//", 0) == 0)
      continue;
    if (line.compare(id_end, 4, " -> ") == 0) {
      const size_t b = id_end + 4;
      const size_t b_end = line.find_first_of(" [;", b);
      d.edges.emplace_back(id, line.substr(b, b_end - b));
      continue;
    }
    const size_t l = line.find("label=\"", id_end);
    if (l == std::string::npos) {
      d.problem = "a node without a label: " + line;
      continue;
    }
    std::string label;
    size_t k = l + 7;
    for (; k < line.size() && line[k] != '"'; ++k) {
      if (line[k] == '\\' && k + 1 < line.size()) {
        ++k;
        label += line[k] == 'n' ? '\n' : line[k];
      } else {
        label += line[k];
      }
    }
    if (!declared.insert(id).second) d.problem = "node " + id + " declared twice";
    d.ids.push_back(id);
    d.label[id] = label;
  }
  for (const auto& [a, b] : d.edges)
    if (!declared.count(a) || !declared.count(b)) d.problem = "edge " + a + " -> " + b + " dangles";
  return d;
}

/// Edges as (first label line of the source, of the target), sorted: comparable to a hand list.
std::multiset<std::pair<std::string, std::string>> named_edges(const Dot& d) {
  std::multiset<std::pair<std::string, std::string>> out;
  for (const auto& [a, b] : d.edges) out.emplace(head(d.label.at(a)), head(d.label.at(b)));
  return out;
}

/// The id of the one node whose label starts with `first_line`.
std::string find_node(const Dot& d, const std::string& first_line) {
  std::string found;
  for (const auto& [id, label] : d.label) {
    if (head(label) != first_line) continue;
    EXPECT_EQ(found, "") << "two nodes are labelled " << first_line;
    found = id;
  }
  EXPECT_NE(found, "") << "no node is labelled " << first_line;
  return found;
}

/// The number after `key` in a label ("‖grad‖ 1.25"), NaN when absent or not a number.
double number_after(const std::string& label, const std::string& key) {
  const size_t p = label.find(key);
  if (p == std::string::npos) return NAN;
  const std::string rest = label.substr(p + key.size());
  char* end = nullptr;
  const double v = std::strtod(rest.c_str(), &end);
  return end == rest.c_str() ? NAN : v;
}

const std::string kValue = "\u2016value\u2016 ";
const std::string kGrad = "\u2016grad\u2016 ";

// ---- the hand-built graph: y = Σ softmax(x·W) ⊙ c ----------------------------------------------

struct Small {
  Var<double> x, W, c, y;
  std::vector<std::pair<std::string, Var<double>>> names;
};

/// x [2, 3] and W [3, 4] require grad, c [2, 4] is a constant. W's name has a quote and a
/// backslash, so its label must be escaped.
Small small_graph() {
  Small s;
  s.x = Var<double>(Tensor<double>::from({2, 3}, {0.5, -1.0, 2.0, 1.5, 0.25, -0.75}), true);
  s.W = Var<double>(Tensor<double>::from(
                        {3, 4}, {0.1, 0.2, -0.3, 0.4, -0.5, 0.6, 0.7, -0.8, 0.9, -1.0, 1.1, 0.05}),
                    true);
  s.c = Var<double>(Tensor<double>::from({2, 4}, {1, -2, 3, 0.5, -1, 2, 0.25, 4}), false);
  s.y = sum(mul(softmax(matmul(s.x, s.W)), s.c));
  s.names = {{"x", s.x}, {"W\"q\\", s.W}};
  return s;
}

TEST(GraphDot, HandBuiltGraphHasOneNodePerOpAndLeafAndDataFlowEdges) {
  Small s = small_graph();
  const std::string dot = graph_dot(s.y, s.names);
  const Dot d = parse_dot(dot);
  ASSERT_EQ(d.problem, "") << dot;
  // Leaves x, W, c and the ops matmul, softmax, mul, sum: seven nodes.
  EXPECT_EQ(d.ids.size(), 7u) << dot;
  std::multiset<std::pair<std::string, std::string>> want = {
      {"x", "matmul"},    {"W\"q\\", "matmul"}, {"matmul", "softmax"},
      {"softmax", "mul"}, {"constant", "mul"},  {"mul", "loss: sum"},
  };
  EXPECT_EQ(named_edges(d), want) << dot;
  // Shapes on the second line.
  EXPECT_EQ(d.label.at(find_node(d, "x")), "x\n[2\u00d73]");
  EXPECT_EQ(d.label.at(find_node(d, "W\"q\\")), "W\"q\\\n[3\u00d74]");
  EXPECT_EQ(d.label.at(find_node(d, "matmul")), "matmul\n[2\u00d74]");
  EXPECT_EQ(d.label.at(find_node(d, "loss: sum")), "loss: sum\n[]");
  // The escaped name as it stands in the text: \" for the quote, \\ for the backslash.
  EXPECT_NE(dot.find("label=\"W\\\"q\\\\\\n[3"), std::string::npos) << dot;
  // Ids in topological order: every edge goes from a smaller id to a larger one.
  for (const auto& [a, b] : d.edges) EXPECT_LT(std::stoi(a.substr(1)), std::stoi(b.substr(1)));
  // The root is drawn differently from ops, parameters differently from constants.
  EXPECT_NE(dot.find("n6 [label=\"loss: sum\\n[]\", shape=doubleoctagon"), std::string::npos);
  EXPECT_EQ(graph_dot(s.y, s.names), dot) << "not deterministic";
}

TEST(GraphDot, AValueUsedTwiceGivesTwoEdges) {
  Var<double> x(Tensor<double>::from({3}, {1, 2, 3}), true);
  Var<double> y = sum(mul(x, x));
  const Dot d = parse_dot(graph_dot(y, {{"x", x}}));
  ASSERT_EQ(d.problem, "");
  EXPECT_EQ(d.ids.size(), 3u);
  std::multiset<std::pair<std::string, std::string>> want = {
      {"x", "mul"}, {"x", "mul"}, {"mul", "loss: sum"}};
  EXPECT_EQ(named_edges(d), want);
}

TEST(GraphDot, ValuesAreNormsOfTheGradientsComputedByHand) {
  Small s = small_graph();
  retain_grads(s.y);
  s.y.backward(/*retain_graph=*/true);
  GraphOptions o;
  o.values = true;
  const Dot d = parse_dot(graph_dot(s.y, s.names, o));
  ASSERT_EQ(d.problem, "");

  // Forward and backward by hand: z = x·W, p = softmax_rows(z), y = Σ p ⊙ c.
  //   dy/d(p ⊙ c) = 1;  dy/dp = c;  dz = p ⊙ (c − ⟨c, p⟩_row);  dx = dz·Wᵀ;  dW = xᵀ·dz.
  const double* x = s.x.value().data();
  const double* W = s.W.value().data();
  const double* c = s.c.value().data();
  double z[2][4] = {}, p[2][4], dz[2][4], dx[2][3] = {}, dW[3][4] = {};
  double y = 0, nz = 0, np = 0, npc = 0, nc = 0, ndz = 0, ndx = 0, ndW = 0, nx = 0;
  for (int i = 0; i < 2; ++i) {
    double m = -INFINITY, sum_e = 0, cp = 0;
    for (int j = 0; j < 4; ++j) {
      for (int k = 0; k < 3; ++k) z[i][j] += x[i * 3 + k] * W[k * 4 + j];
      m = std::max(m, z[i][j]);
    }
    for (int j = 0; j < 4; ++j) sum_e += std::exp(z[i][j] - m);
    for (int j = 0; j < 4; ++j) p[i][j] = std::exp(z[i][j] - m) / sum_e;
    for (int j = 0; j < 4; ++j) cp += c[i * 4 + j] * p[i][j];
    for (int j = 0; j < 4; ++j) {
      dz[i][j] = p[i][j] * (c[i * 4 + j] - cp);
      y += p[i][j] * c[i * 4 + j];
      nz += z[i][j] * z[i][j];
      np += p[i][j] * p[i][j];
      npc += p[i][j] * c[i * 4 + j] * p[i][j] * c[i * 4 + j];
      nc += c[i * 4 + j] * c[i * 4 + j];
      ndz += dz[i][j] * dz[i][j];
    }
  }
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 3; ++k) {
      for (int j = 0; j < 4; ++j) dx[i][k] += dz[i][j] * W[k * 4 + j];
      for (int j = 0; j < 4; ++j) dW[k][j] += x[i * 3 + k] * dz[i][j];
      nx += x[i * 3 + k] * x[i * 3 + k];
    }
  for (auto& row : dx)
    for (double v : row) ndx += v * v;
  for (auto& row : dW)
    for (double v : row) ndW += v * v;

  struct Want {
    const char* node;
    double value, grad;  // grad NaN: no gradient (a constant)
  };
  const Want want[] = {
      {"x", std::sqrt(nx), std::sqrt(ndx)},      {"W\"q\\", NAN, std::sqrt(ndW)},
      {"matmul", std::sqrt(nz), std::sqrt(ndz)}, {"softmax", std::sqrt(np), std::sqrt(nc)},
      {"mul", std::sqrt(npc), std::sqrt(8.0)},   {"loss: sum", std::abs(y), 1.0},
      {"constant", std::sqrt(nc), NAN},
  };
  for (const Want& w : want) {
    const std::string& label = d.label.at(find_node(d, w.node));
    if (!std::isnan(w.value)) {
      EXPECT_NEAR(number_after(label, kValue), w.value, 5.01e-4 * w.value) << label;
    }
    if (std::isnan(w.grad)) {
      EXPECT_NE(label.find(kGrad + "\u2014"), std::string::npos) << label;
    } else {
      EXPECT_NEAR(number_after(label, kGrad), w.grad, 5.01e-4 * w.grad) << label;
    }
  }
  EXPECT_GT(ndx, 1e-4) << "the example should have non-trivial gradients";
}

TEST(GraphDot, WithoutRetainGradsOnlyLeavesHaveGradients) {
  Small s = small_graph();
  s.y.backward(/*retain_graph=*/true);
  GraphOptions o;
  o.values = true;
  const Dot d = parse_dot(graph_dot(s.y, s.names, o));
  EXPECT_FALSE(std::isnan(number_after(d.label.at(find_node(d, "x")), kGrad)));
  EXPECT_TRUE(std::isnan(number_after(d.label.at(find_node(d, "softmax")), kGrad)));
}

TEST(GraphDot, AFreedGraphIsAnErrorNamingTheFix) {
  Small s = small_graph();
  s.y.backward();  // frees the graph
  try {
    graph_dot(s.y, s.names);
    FAIL() << "drew a freed graph";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("retain_graph=true"), std::string::npos) << e.what();
  }
}

TEST(GraphDot, MaxNodesRefusesALargerGraph) {
  Small s = small_graph();
  GraphOptions o;
  o.max_nodes = 6;
  try {
    graph_dot(s.y, s.names, o);
    FAIL() << "7 nodes passed a limit of 6";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "graph: 7 nodes is more than --max-nodes 6; draw a smaller model or raise the limit");
  }
  o.max_nodes = 7;
  EXPECT_NO_THROW(graph_dot(s.y, s.names, o));
}

TEST(GraphDot, IndexInputsPointAtTheirConsumersOnly) {
  Var<double> emb(Tensor<double>::from({4, 2}, {1, 2, 3, 4, 5, 6, 7, 8}), true);
  Var<double> other(Tensor<double>::from({4, 2}, {1, 1, 1, 1, 1, 1, 1, 1}), true);
  IndexTensor ids(Shape{3}, {2, 0, 2});
  Var<double> y = sum(add(embedding(emb, ids), embedding(other, ids)));
  GraphOptions o;
  o.inputs = {{"tokens [3]\n2 0 2", "embedding", "tok_emb.weight"},
              {"targets", "cross_entropy", ""}};  // no such op: not drawn
  const Dot d = parse_dot(graph_dot(y, {{"tok_emb.weight", emb}, {"other", other}}, o));
  ASSERT_EQ(d.problem, "");
  EXPECT_EQ(d.ids.size(), 7u);  // emb, other, 2 embeddings, add, sum + the tokens input
  std::vector<std::string> into;
  for (const auto& [a, b] : d.edges)
    if (head(d.label.at(a)) == "tokens [3]") into.push_back(b);
  ASSERT_EQ(into.size(), 1u);
  // The one embedding it feeds reads tok_emb.weight.
  bool reads_emb = false;
  for (const auto& [a, b] : d.edges)
    reads_emb = reads_emb || (b == into[0] && a == find_node(d, "tok_emb.weight"));
  EXPECT_TRUE(reads_emb);
  for (const auto& [id, label] : d.label) EXPECT_NE(head(label), "targets");
}

TEST(GraphDot, EscapingAndShapeLabels) {
  EXPECT_EQ(dot_escape("a\"b\\c\nd\te"), "a\\\"b\\\\c\\nd e");
  EXPECT_EQ(shape_label(Shape{1, 7, 8}), "[1\u00d77\u00d78]");
  EXPECT_EQ(shape_label(Shape{}), "[]");
}

// ---- qkv graph, end to end ----------------------------------------------------------------------

using test::quote;
using test::RunResult;
using test::slurp;

class GraphCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "qkv-graph-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  RunResult run(const std::vector<std::string>& args) const { return test::run_qkv(args, dir_); }

  /// Status 2, nothing on stdout, one line on stderr that contains `what`.
  static void expect_bad_input(const RunResult& r, const std::string& what) {
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("qkv: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
  }

  /// A pronoun checkpoint with a tiny model of seeded (untrained) parameters.
  std::string pronoun_checkpoint() const {
    std::unique_ptr<Task> task = make_task("pronoun", nlohmann::json::object());
    nlohmann::json m = task->default_model_config();
    m["d_model"] = 8;
    m["n_heads"] = 2;
    m["n_layers"] = 1;
    m["d_ff"] = 16;
    const ModelConfig config = ModelConfig::from_json(m);
    Model<float> model(config, 1);
    Checkpoint c;
    c.model_config = config.to_json();
    c.task_config = task->options();
    c.task_config["name"] = task->name();
    c.params = model.export_parameters();
    save_checkpoint(path("pronoun.h5"), c);
    return path("pronoun.h5");
  }

  std::string dir_;
};

TEST_F(GraphCommand, RandomModelOfEachArchNamesEveryParameter) {
  for (const char* arch : {"encoder", "decoder", "seq2seq"}) {
    SCOPED_TRACE(arch);
    const RunResult r = run({"graph", "--random", "--arch", arch, "--out", path("g.dot")});
    ASSERT_EQ(r.status, 0) << r.err;
    const std::string dot = slurp(path("g.dot"));
    const Dot d = parse_dot(dot);
    ASSERT_EQ(d.problem, "") << dot;
    std::set<std::string> heads;
    for (const auto& [id, label] : d.label) heads.insert(head(label));
    for (const auto& [name, shape] : param_shapes(random_graph_config(arch)))
      EXPECT_TRUE(heads.count(name)) << name << " is not a node";
    EXPECT_TRUE(heads.count("loss: cross_entropy"));
    bool tokens = false;
    for (const auto& h : heads) tokens = tokens || h.rfind("tokens [1\u00d75]", 0) == 0;
    EXPECT_TRUE(tokens) << "no tokens input node";
  }
}

TEST_F(GraphCommand, RandomToStdoutWithValuesGivesEveryParameterAGradient) {
  const RunResult r = run({"graph", "--random", "--values"});
  ASSERT_EQ(r.status, 0) << r.err;
  const Dot d = parse_dot(r.out);
  ASSERT_EQ(d.problem, "") << r.out;
  int nonzero = 0;
  for (const auto& [name, shape] : param_shapes(random_graph_config("encoder"))) {
    const std::string& label = d.label.at(find_node(d, name));
    const double g = number_after(label, kGrad);
    EXPECT_FALSE(std::isnan(g)) << label;
    nonzero += g > 0;
  }
  EXPECT_GT(nonzero, 10);
}

TEST_F(GraphCommand, GraphvizRendersIt) {
  if (!fs::exists("/usr/bin/dot")) GTEST_SKIP() << "/usr/bin/dot (graphviz) is not installed";
  for (const char* arch : {"encoder", "decoder", "seq2seq"}) {
    SCOPED_TRACE(arch);
    ASSERT_EQ(run({"graph", "--random", "--values", "--arch", arch, "--out", path("g.dot")}).status,
              0);
    const std::string cmd = "/usr/bin/dot -Tsvg " + quote(path("g.dot")) + " -o " +
                            quote(path("g.svg")) + " 2>" + quote(path("dot.err"));
    EXPECT_EQ(std::system(cmd.c_str()), 0) << slurp(path("dot.err"));
    EXPECT_EQ(slurp(path("dot.err")), "");  // no warnings either
    EXPECT_NE(slurp(path("g.svg")).find("blocks.0.attn.W_Q.weight"), std::string::npos);
  }
}

TEST_F(GraphCommand, CheckpointWithASentence) {
  const std::string ckpt = pronoun_checkpoint();
  const RunResult r = run({"graph", "--checkpoint", ckpt,
                           "The animal didn't cross the street because it was too tired."});
  ASSERT_EQ(r.status, 0) << r.err;
  const Dot d = parse_dot(r.out);
  ASSERT_EQ(d.problem, "") << r.out;
  EXPECT_NE(r.out.find("animal"), std::string::npos);
  std::set<std::string> heads;
  for (const auto& [id, label] : d.label) heads.insert(head(label));
  EXPECT_TRUE(heads.count("blocks.0.attn.W_Q.weight"));
  EXPECT_TRUE(heads.count("read-out position [1]"));
}

TEST_F(GraphCommand, BadInputExitsTwoWithOneLine) {
  expect_bad_input(run({"graph", "--checkpoint", path("missing.h5")}), path("missing.h5"));
  expect_bad_input(run({"graph", "--random", "--arch", "transformer"}), "'transformer'");
  expect_bad_input(run({"graph"}), "--checkpoint");
  const std::string ckpt = pronoun_checkpoint();
  expect_bad_input(run({"graph", "--checkpoint", ckpt,
                        "The zorblax didn't cross the street because it was too tired."}),
                   "zorblax");
  expect_bad_input(run({"graph", "--checkpoint", ckpt, "--random"}), "--random");
  expect_bad_input(run({"graph", "--checkpoint", ckpt, "--arch", "decoder"}), "--arch");
}

}  // namespace
}  // namespace qkv::cli
