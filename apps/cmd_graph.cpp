// qkv graph: the computation graph of one forward and backward pass as Graphviz DOT — one node
// per autograd Node with its op and shape, parameters by name, the token ids and targets as
// input nodes, the loss at the bottom; --values adds every node's value and gradient norms.
// Rendering is left to Graphviz (dot -Tsvg graph.dot -o graph.svg); qkv does not need it.
#include <fstream>
#include <functional>
#include <memory>

#include <fmt/core.h>

#include "apps/cli_checks.h"
#include "apps/commands.h"
#include "apps/graph.h"
#include "train/load.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/rng.h"
#include "nn/random_batch.h"

namespace qkv::cli {
namespace {

struct GraphArgs {
  std::string checkpoint, sentence, out, arch = "encoder";
  bool random = false, values = false;
  int64_t max_nodes = 5000;
  int64_t seed = 0;
};

/// "name [shape]\nw1 w2 …": the label of an index input.
std::string input_label(const std::string& name, const IndexTensor& ids,
                        const std::function<std::string(int32_t)>& text) {
  std::string s = name + " " + shape_label(ids.shape) + "\n";
  for (size_t i = 0; i < ids.data.size(); ++i) s += (i ? " " : "") + text(ids.data[i]);
  return s;
}

/// The index inputs of `batch` for `arch`, with text for ids.
std::vector<GraphInput> batch_inputs(Arch arch, const Batch& b,
                                     const std::function<std::string(int32_t)>& token,
                                     const std::function<std::string(int32_t)>& src_token,
                                     const std::function<std::string(int32_t)>& target) {
  auto number = [](int32_t i) { return std::to_string(i); };
  const std::string dec = arch == Arch::kSeq2seq ? "dec." : "";
  std::vector<GraphInput> in;
  in.push_back({input_label("tokens", b.tokens, token), "embedding", dec + "tok_emb.weight"});
  IndexTensor pos(Shape{b.seq_len()});
  for (int64_t t = 0; t < b.seq_len(); ++t) pos[t] = static_cast<int32_t>(t);
  in.push_back({input_label("positions", pos, number), "embedding", dec + "pos_emb.weight"});
  if (arch == Arch::kSeq2seq) {
    in.push_back({input_label("source", b.src, src_token), "embedding", "enc.tok_emb.weight"});
    IndexTensor spos(Shape{b.src.shape[1]});
    for (int64_t t = 0; t < spos.numel(); ++t) spos[t] = static_cast<int32_t>(t);
    in.push_back(
        {input_label("source positions", spos, number), "embedding", "enc.pos_emb.weight"});
  }
  if (arch == Arch::kEncoder)
    in.push_back({input_label("read-out position", b.positions, number), "select_positions", ""});
  auto target_text = [&](int32_t id) { return id < 0 ? std::string("-") : target(id); };
  in.push_back({input_label("targets", b.targets, target_text), "cross_entropy", ""});
  return in;
}

/// Forward, backward (graph kept) and the DOT text.
std::string draw(Model<float>& model, const Batch& batch, GraphOptions o) {
  ForwardResult<float> r = model.forward(batch);
  QKV_CHECK(r.loss.defined(), "graph: the batch has no targets, so there is no loss to draw");
  if (o.values) retain_grads(r.loss);
  r.loss.backward(/*retain_graph=*/true);
  return graph_dot(r.loss, model.named_parameters(), o);
}

void run_graph(const GraphArgs& a, bool arch_given) {
  QKV_CHECK(a.random != !a.checkpoint.empty(),
            "graph: give either --checkpoint FILE or --random (one of them)");
  QKV_CHECK(!arch_given || a.random, "--arch: only with --random (a checkpoint has its own)");
  QKV_CHECK(!a.random || a.sentence.empty(),
            "graph: a sentence needs --checkpoint (the random model has no vocabulary)");
  GraphOptions o;
  o.values = a.values;
  o.max_nodes = a.max_nodes;
  std::string dot;
  if (a.random) {
    const ModelConfig config = random_graph_config(a.arch);
    Model<float> model(config, static_cast<uint64_t>(a.seed));
    model.eval();
    // One example of five tokens (five source tokens for seq2seq), no padding, next-token targets.
    Rng rng(static_cast<uint64_t>(a.seed));
    RandomBatchOptions one;
    one.batch_size = 1;
    one.src_len = 5;
    one.padded = false;
    one.next_token = true;
    const Batch batch = random_batch(config, rng, one);
    auto number = [](int32_t i) { return std::to_string(i); };
    o.inputs = batch_inputs(config.arch, batch, number, number, number);
    o.title = fmt::format("qkv graph: random {} (d_model {}, {} layer, {} heads, seed {})",
                          config.arch, config.d_model, config.n_layers, config.n_heads, a.seed);
    dot = draw(model, batch, o);
  } else {
    TrainedModel l = load_trained(a.checkpoint);
    const Task& task = *l.task;
    const std::string sentence = a.sentence.empty() ? task.probe() : a.sentence;
    const Batch batch = task.encode(sentence, /*with_answer=*/true);
    bool known = false;
    for (int32_t t : batch.targets.data) known = known || t >= 0;
    if (!known)
      fmt::print(stderr,
                 "note: the task does not know the answer to this sentence, so the loss is 0 and "
                 "every gradient is zero\n");
    const Arch arch = task.arch();
    auto token = [&](int32_t id) { return task.vocab().token(id); };
    auto src_token = [&](int32_t id) { return task.src_vocab().token(id); };
    auto target = [&](int32_t id) {
      return arch == Arch::kEncoder ? task.class_name(id) : task.vocab().token(id);
    };
    o.inputs = batch_inputs(arch, batch, token, src_token, target);
    o.title = fmt::format("qkv graph: {} — \"{}\"", a.checkpoint, sentence);
    dot = draw(*l.model, batch, o);
  }

  if (a.out.empty()) {
    fmt::print("{}", dot);
    return;
  }
  write_file_atomic(a.out, dot);
  fmt::print("wrote {}; render it with: dot -Tsvg {} -o graph.svg\n", a.out, a.out);
}

}  // namespace

void add_graph(CLI::App& app) {
  auto args = std::make_shared<GraphArgs>();
  CLI::App* cmd = app.add_subcommand(
      "graph",
      "The computation graph of one forward and backward pass as Graphviz DOT: one node per "
      "autograd node (op and shape), parameters by name, inputs and the loss marked. Render with "
      "'dot -Tsvg'.");
  cmd->add_option("--checkpoint", args->checkpoint, "Checkpoint file (.h5) from qkv train");
  cmd->add_option("sentence", args->sentence,
                  "Text to run through the checkpoint's model (default: the task's probe)");
  cmd->add_flag("--random", args->random,
                "Draw a small random model instead (d_model 8, 1 layer, 2 heads, 5 tokens)");
  CLI::Option* arch = cmd->add_option("--arch", args->arch,
                                      "Architecture of the --random model: encoder, decoder or "
                                      "seq2seq")
                          ->capture_default_str();
  cmd->add_option("--seed", args->seed, "Seed of the --random model and its tokens")
      ->check(non_negative_integer())
      ->capture_default_str();
  cmd->add_flag("--values", args->values, "Add each node's value norm and gradient norm");
  cmd->add_option("--out", args->out, "Write the DOT here (default: standard output)");
  cmd->add_option("--max-nodes", args->max_nodes, "Refuse graphs with more nodes (0 = no limit)")
      ->check(non_negative_integer())
      ->capture_default_str();
  cmd->callback([args, arch] { run_graph(*args, arch->count() > 0); });
}

}  // namespace qkv::cli
