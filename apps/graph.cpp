#include "apps/graph.h"

#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include <fmt/core.h>

#include "core/error.h"

namespace qkv::cli {
namespace {

/// ‖t‖ = √Σ t_i², accumulated in double.
template <typename T>
double frobenius(const Tensor<T>& t) {
  double s = 0;
  for (int64_t i = 0; i < t.numel(); ++i) s += double(t[i]) * double(t[i]);
  return std::sqrt(s);
}

// Node styles: parameters (named leaves) blue boxes, other leaves yellow boxes, constants dashed
// boxes, ops ellipses, the root a red double octagon, index inputs green parallelograms.
constexpr const char* kParamStyle = "shape=box, style=filled, fillcolor=\"#cfe2f3\"";
constexpr const char* kLeafStyle = "shape=box, style=filled, fillcolor=\"#fff2cc\"";
constexpr const char* kConstStyle = "shape=box, style=dashed";
constexpr const char* kOpStyle = "shape=ellipse";
constexpr const char* kRootStyle = "shape=doubleoctagon, style=filled, fillcolor=\"#f4cccc\"";
constexpr const char* kInputStyle = "shape=parallelogram, style=filled, fillcolor=\"#d9ead3\"";

}  // namespace

std::string dot_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::string shape_label(const Shape& shape) {
  std::string s = "[";
  for (int i = 0; i < shape.nd; ++i) {
    if (i) s += "\u00d7";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

template <typename T>
std::vector<Node<T>*> graph_nodes(const Var<T>& root) {
  QKV_CHECK(root.defined(), "graph: the root is an undefined Var");
  std::vector<Node<T>*> order;
  std::unordered_set<Node<T>*> seen{root.node()};
  std::vector<std::pair<Node<T>*, size_t>> stack{{root.node(), 0}};
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    QKV_CHECK(!node->freed,
              "graph: the graph of '{}' was freed by backward(); call backward with "
              "retain_graph=true before drawing it",
              node->op);
    if (next < node->inputs.size()) {
      Node<T>* in = node->inputs[next++].get();
      if (seen.insert(in).second) stack.emplace_back(in, 0);
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }
  return order;
}

template <typename T>
void retain_grads(const Var<T>& root) {
  for (Node<T>* n : graph_nodes(root)) n->keep_grad = true;
}

template <typename T>
std::string graph_dot(const Var<T>& root, const std::vector<std::pair<std::string, Var<T>>>& names,
                      const GraphOptions& o) {
  const std::vector<Node<T>*> order = graph_nodes(root);
  const int64_t n_nodes = static_cast<int64_t>(order.size());
  QKV_CHECK(o.max_nodes <= 0 || n_nodes <= o.max_nodes,
            "graph: {} nodes is more than --max-nodes {}; draw a smaller model or raise the limit",
            n_nodes, o.max_nodes);

  std::unordered_map<const Node<T>*, std::string> name_of;
  for (const auto& [name, var] : names)
    if (var.defined()) name_of.emplace(var.node(), name);  // the first name wins
  std::unordered_map<const Node<T>*, size_t> id_of;
  for (size_t i = 0; i < order.size(); ++i) id_of.emplace(order[i], i);

  std::string nodes, edges;
  size_t n_edges = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const Node<T>& n = *order[i];
    const auto named = name_of.find(&n);
    const bool is_root = &n == root.node();
    std::string label;
    const char* style = kOpStyle;
    if (n.leaf) {
      if (named != name_of.end()) {
        label = named->second;
        style = kParamStyle;
      } else {
        label = n.requires_grad ? "leaf" : "constant";
        style = n.requires_grad ? kLeafStyle : kConstStyle;
      }
    } else {
      label = named != name_of.end() ? named->second + ": " + n.op : std::string(n.op);
    }
    if (is_root) {
      if (!o.root_role.empty()) label = o.root_role + ": " + label;
      style = kRootStyle;
    }
    label += "\n" + shape_label(n.value.shape());
    if (o.values) {
      label += fmt::format("\n\u2016value\u2016 {:.4g}", frobenius(n.value));
      label += n.grad.defined() ? fmt::format("\n\u2016grad\u2016 {:.4g}", frobenius(n.grad))
                                : std::string("\n\u2016grad\u2016 \u2014");
    }
    nodes += fmt::format("  n{} [label=\"{}\", {}];\n", i, dot_escape(label), style);
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      edges += fmt::format("  n{} -> n{};\n", id_of.at(n.inputs[k].get()), i);
      ++n_edges;
    }
  }

  // Index inputs, each with an edge into every matching consumer.
  for (size_t t = 0; t < o.inputs.size(); ++t) {
    const GraphInput& in = o.inputs[t];
    std::string into;
    for (size_t i = 0; i < order.size(); ++i) {
      const Node<T>& n = *order[i];
      if (n.leaf || in.op != n.op) continue;
      bool match = in.param.empty();
      for (size_t k = 0; k < n.inputs.size() && !match; ++k) {
        const auto named = name_of.find(n.inputs[k].get());
        match = named != name_of.end() && named->second == in.param;
      }
      if (!match) continue;
      into += fmt::format("  t{} -> n{} [style=bold];\n", t, i);
      ++n_edges;
    }
    if (into.empty()) continue;
    nodes += fmt::format("  t{} [label=\"{}\", {}];\n", t, dot_escape(in.label), kInputStyle);
    edges += into;
  }

  std::string dot = fmt::format(
      "// qkv graph: {} autograd nodes, {} edges (input -> op). Render with: dot -Tsvg FILE.dot "
      "-o graph.svg\n",
      n_nodes, n_edges);
  dot += "digraph qkv {\n";
  dot += "  graph [rankdir=TB, charset=\"UTF-8\", fontname=\"Helvetica\"";
  if (!o.title.empty()) dot += fmt::format(", label=\"{}\", labelloc=t", dot_escape(o.title));
  dot += "];\n";
  dot += "  node [fontname=\"Helvetica\", fontsize=10];\n";
  dot += "  edge [arrowsize=0.6];\n";
  return dot + nodes + edges + "}\n";
}

ModelConfig random_graph_config(const std::string& arch) {
  QKV_CHECK(arch == "encoder" || arch == "decoder" || arch == "seq2seq",
            "--arch: unknown architecture '{}' (expected encoder, decoder or seq2seq)", arch);
  nlohmann::json j = {{"arch", arch}, {"vocab_size", 10}, {"max_len", 8}, {"d_model", 8},
                      {"n_heads", 2}, {"n_layers", 1},    {"d_ff", 16}};
  if (parse_arch(arch) == Arch::kEncoder) j["n_out"] = 3;
  return ModelConfig::from_json(j);
}

#define QKV_INSTANTIATE(T)                                      \
  template std::vector<Node<T>*> graph_nodes<T>(const Var<T>&); \
  template void retain_grads<T>(const Var<T>&);                 \
  template std::string graph_dot<T>(                            \
      const Var<T>&, const std::vector<std::pair<std::string, Var<T>>>&, const GraphOptions&);
QKV_INSTANTIATE(float)
QKV_INSTANTIATE(double)
#undef QKV_INSTANTIATE

}  // namespace qkv::cli
