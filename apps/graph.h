// The computation graph of a forward (and backward) pass as Graphviz DOT, in the spirit of
// micrograd's draw_dot but for tensors: one DOT node per autograd Node, edges in the direction
// data flows (input → op), parameters labelled with their dotted names.
//
//   ForwardResult<float> r = model.forward(batch);
//   retain_grads(r.loss);                       // only for GraphOptions::values
//   r.loss.backward(/*retain_graph=*/true);     // the graph must still be there to be drawn
//   std::string dot = graph_dot(r.loss, model.named_parameters(), options);
//
// Node ids are n0, n1, … in topological order (every input before its consumers, inputs visited in
// argument order), so the same graph gives the same text on every run. Index inputs that are not
// Vars (token ids, targets) can be drawn as their own nodes (GraphOptions::inputs), t0, t1, ….
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.h"
#include "nn/config.h"

namespace qkv::cli {

/// A non-Var input of the graph (token ids, targets, read-out positions): drawn as its own node
/// with an edge into every node whose op is `op` and, when `param` is set, one of whose inputs is
/// the node named `param`. Not drawn when nothing matches.
struct GraphInput {
  std::string label;  ///< the node's text; lines separated by '\n'
  std::string op;     ///< consumer op, e.g. "embedding", "cross_entropy"
  std::string param;  ///< e.g. "tok_emb.weight"; empty = every node of `op`
};

struct GraphOptions {
  std::string title;               ///< the graph's caption; empty = none
  std::string root_role = "loss";  ///< prefixed to the root's label ("loss: cross_entropy")
  bool values = false;    ///< add ‖value‖ and ‖grad‖ (Frobenius norms) to every node
  int64_t max_nodes = 0;  ///< more autograd nodes than this throws qkv::Error; 0 = no limit
  std::vector<GraphInput> inputs;  ///< index inputs drawn as their own nodes
};

/// Every node reachable from `root` by its inputs, each after all of its inputs (an explicit
/// stack, no recursion). Throws qkv::Error when backward() already freed root's graph.
template <typename T>
std::vector<Node<T>*> graph_nodes(const Var<T>& root);

/// Marks every node reachable from `root` to keep its .grad after backward (retain_grad), so that
/// GraphOptions::values can show the gradient of intermediates too.
template <typename T>
void retain_grads(const Var<T>& root);

/// The DOT text of the graph below `root`. `names` labels the nodes of those Vars (parameters,
/// or any Var of a hand-built graph); other leaves read "leaf" (requires grad) or "constant".
/// Throws qkv::Error when the graph was freed or has more than options.max_nodes nodes.
template <typename T>
std::string graph_dot(const Var<T>& root, const std::vector<std::pair<std::string, Var<T>>>& names,
                      const GraphOptions& options = {});

/// `text` as the inside of a DOT double-quoted string: \ and " escaped, newlines as \n (a centred
/// line break), other control characters as spaces.
std::string dot_escape(const std::string& text);

/// "[1×7×8]" ("[]" for a scalar).
std::string shape_label(const Shape& shape);

/// The small model `qkv graph --random` draws (d_model 8, 1 layer, 2 heads, d_ff 16, vocabulary
/// 10, max_len 8), of `arch`; throws qkv::Error naming an unknown arch.
ModelConfig random_graph_config(const std::string& arch);

}  // namespace qkv::cli
