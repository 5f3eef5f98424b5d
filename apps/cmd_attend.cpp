// qkv attend: the model's prediction for a sentence and where it looks. Per layer and head it
// prints the read-out token's attention row (for pronoun: the pronoun's) as a labelled bar chart,
// and writes a heatmap (SVG, tokens on both axes) of every head plus one HTML page with them all.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <fmt/core.h>

#include "apps/attention_page.h"
#include "apps/cli_checks.h"
#include "apps/commands.h"
#include "apps/language_model.h"
#include "train/load.h"
#include "apps/terminal.h"
#include "autograd/var.h"
#include "core/atomic_file.h"
#include "plot/plot.h"
#include "train/decode.h"

namespace qkv::cli {
namespace {

struct AttendArgs {
  std::string checkpoint;
  std::string sentence;
  std::string out_dir;
  int width = 40;
  int64_t keys = -1;  // keys shown per head in the terminal; -1 = as many as fit, 0 = all
};

/// Lines the terminal output aims at by default.
constexpr int64_t kLineBudget = 60;

std::vector<std::string> labels(const Vocab& vocab, const IndexTensor& ids) {
  std::vector<std::string> out;
  for (int32_t id : ids.data) out.push_back(vocab.token(id));
  return out;
}

/// Where an attention module sits, from its canonical path ("dec.blocks.1.xattn"): its stack
/// (encoder or decoder of seq2seq), layer and kind. The model's paths are the only tag there is.
struct Role {
  int64_t layer = 0;
  bool cross = false;   // decoder queries over the encoder's output
  bool source = false;  // seq2seq's encoder: source over source
  std::string kind(Arch arch) const {
    if (cross) return "cross-attention";
    if (arch != Arch::kSeq2seq) return "self-attention";
    return source ? "encoder self-attention" : "decoder self-attention";
  }
};

/// The role the model tagged the module with, as this page groups it.
Role role_of(const AttentionMap<float>& m, Arch arch) {
  Role r;
  r.layer = m.role.layer;
  r.cross = m.role.is_cross();
  r.source = arch == Arch::kSeq2seq && m.role.stack == AttnStack::kEncoder;
  return r;
}

/// The sentence fits the model's positions, or an error that says so in words.
void check_length(const Batch& batch, const ModelConfig& c) {
  const int64_t T = batch.seq_len();
  if (c.arch == Arch::kSeq2seq) {
    const int64_t S = batch.src.shape.nd ? batch.src.shape[1] : 0;
    QKV_CHECK(S <= c.src_max_len,
              "the model reads at most {} source tokens; this sentence has {}. Shorten it.",
              c.src_max_len, S);
    return;
  }
  QKV_CHECK(T <= c.max_len, "the model reads at most {} tokens; this sentence has {}. Shorten it.",
            c.max_len, T);
}

/// The encoder's prediction: the class at the read-out position and the two runners-up.
void print_class_prediction(const Task& task, const Tensor<float>& logits,
                            const std::string& sentence, const std::string& readout_token) {
  const int64_t n = logits.size(1);  // logits [1, n_out]
  std::vector<double> p(static_cast<size_t>(n));
  double m = -INFINITY, z = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, double(logits[i]));
  for (int64_t i = 0; i < n; ++i) z += (p[size_t(i)] = std::exp(double(logits[i]) - m));
  std::vector<int32_t> order(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) order[size_t(i)] = i;
  std::partial_sort(order.begin(), order.begin() + std::min<int64_t>(3, n), order.end(),
                    [&](int32_t x, int32_t y) { return p[size_t(x)] > p[size_t(y)]; });
  fmt::print("sentence:   {}\n", sentence);
  fmt::print("prediction: {} (p = {:.3f}",
             task.prediction_text(readout_token, task.class_name(order[0])),
             p[size_t(order[0])] / z);
  for (int k = 1; k < std::min<int64_t>(3, n); ++k)
    fmt::print("; then '{}' {:.3f}", task.class_name(order[size_t(k)]),
               p[size_t(order[size_t(k)])] / z);
  fmt::print(")\n\n");
}

/// A language model's next token after the prompt: the argmax of the last position's logits.
void print_next_token(const Task& task, const Tensor<float>& logits) {
  const int64_t T = logits.size(1), V = logits.size(2);  // logits [1, T, V]
  const float* row = logits.data() + (T - 1) * V;
  const int64_t best = std::max_element(row, row + V) - row;
  double z = 0;
  for (int64_t v = 0; v < V; ++v) z += std::exp(double(row[v]) - double(row[best]));
  fmt::print("next token: '{}' (p = {:.3f}); the prompt is not extended\n\n",
             task.vocab().token(static_cast<int32_t>(best)), 1.0 / z);
}

/// Keys shown per head: `asked`, or by default every key, except that a language model's long
/// prompt shows as many as fit in kLineBudget lines (3 at least). `bar_heads` heads print a row
/// of S keys, with a title and a blank line each.
int64_t keys_per_head(int64_t asked, int64_t bar_heads, int64_t S, bool lm) {
  if (asked == 0 || bar_heads == 0 || (asked < 0 && !lm)) return S;
  if (asked > 0) return std::min(asked, S);
  if (bar_heads * (S + 2) + 4 <= kLineBudget) return S;
  return std::clamp<int64_t>((kLineBudget - 4) / bar_heads - 3, 3, S);
}

/// The bars of one query row over the keys: the `shown` largest weights, in sentence order, and
/// one line for the rest.
void print_row(const float* row, int64_t S, int64_t shown, const std::vector<std::string>& keys,
               size_t label_width, int width) {
  std::vector<int64_t> order(static_cast<size_t>(S));
  for (int64_t j = 0; j < S; ++j) order[size_t(j)] = j;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t x, int64_t y) { return row[x] > row[y]; });
  order.resize(static_cast<size_t>(shown));
  std::sort(order.begin(), order.end());
  double rest = 1.0;
  for (int64_t j : order) {
    fmt::print("  {:>{}} {:5.1f}% {}\n", keys[size_t(j)], label_width, 100.0 * row[j],
               bar(row[j], width));
    rest -= row[j];
  }
  if (shown < S)
    fmt::print("  … {} more keys with {:.1f}% together (--keys 0 shows every key)\n", S - shown,
               100.0 * std::max(rest, 0.0));
}

void run_attend(AttendArgs a) {
  TrainedModel l = load_trained(a.checkpoint);
  Task& task = *l.task;
  Model<float>& model = *l.model;
  const Arch arch = task.arch();
  const bool lm = is_language_model(task);
  if (a.sentence.empty()) a.sentence = task.probe();

  Batch batch = task.encode(a.sentence, /*with_answer=*/false);
  check_length(batch, model.config());
  if (arch != Arch::kEncoder) {
    fmt::print("input:      {}\n", arch == Arch::kSeq2seq ? task.decode_src(batch.src.data)
                                                          : task.decode(batch.tokens.data));
    if (!lm) {
      std::vector<int32_t> out = greedy_decode(model, batch, task.vocab().eos_id());
      fmt::print("prediction: {}\n\n", task.decode(out));
    }
  }
  NoGradGuard no_grad;
  ForwardResult<float> r = model.forward(batch, /*keep_attention=*/true);
  const std::vector<std::string> tokens = labels(task.vocab(), batch.tokens);
  const std::vector<std::string> src_tokens =
      arch == Arch::kSeq2seq ? labels(task.src_vocab(), batch.src) : tokens;

  int64_t readout = static_cast<int64_t>(tokens.size()) - 1;
  if (arch == Arch::kEncoder) {
    readout = batch.positions[0];
    print_class_prediction(task, r.logits.value(), a.sentence, tokens[size_t(readout)]);
  } else if (lm) {
    print_next_token(task, r.logits.value());
  }

  namespace fs = std::filesystem;
  const fs::path dir =
      a.out_dir.empty() ? fs::path(a.checkpoint).parent_path() / "attend" : fs::path(a.out_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  QKV_CHECK(!ec, "--out-dir {}: cannot create the folder ({})", dir.string(), ec.message());

  size_t width = 0;
  for (const auto& t : src_tokens) width = std::max(width, t.size());
  int64_t bar_heads = 0;
  for (const AttentionMap<float>& m : r.attention) {
    const Role role = role_of(m, arch);
    if (!role.cross && !role.source) bar_heads += m.P.size(1);
  }
  AttentionPage page(a.sentence);
  for (const AttentionMap<float>& m : r.attention) {
    const std::string& path = m.path;
    const Tensor<float>& P = m.P;
    const Role role = role_of(m, arch);
    // seq2seq: the encoder attends source to source, cross-attention target to source; the rest
    // (and every module of the other architectures) attends over `tokens`.
    const auto& queries = role.source ? src_tokens : tokens;
    const auto& keys = role.cross || role.source ? src_tokens : tokens;
    const int64_t H = P.size(1), T = P.size(2), S = P.size(3);
    for (int64_t h = 0; h < H; ++h) {
      const float* Ph = P.data() + h * T * S;
      if (role.cross) {
        // The alignment: for each output token, the source words its query looks at most.
        fmt::print("{} head {} — cross-attention: each output token's query over the source:\n",
                   path, h);
        for (int64_t i = 0; i < T; ++i) {
          const float* row = Ph + i * S;
          std::vector<int64_t> order(static_cast<size_t>(S));
          for (int64_t j = 0; j < S; ++j) order[size_t(j)] = j;
          std::sort(order.begin(), order.end(),
                    [&](int64_t x, int64_t y) { return row[x] > row[y]; });
          const std::string next =
              i + 1 < T ? tokens[size_t(i + 1)] : task.vocab().token(task.vocab().eos_id());
          fmt::print("  {:>6} → {:<6} {:>{}} {:5.1f}% {}", tokens[size_t(i)], next,
                     keys[size_t(order[0])], width, 100.0 * row[order[0]],
                     bar(row[order[0]], a.width / 2));
          if (S > 1)
            fmt::print("  (then {} {:.1f}%)", keys[size_t(order[1])], 100.0 * row[order[1]]);
          fmt::print("\n");
        }
        fmt::print("\n");
      } else if (!role.source) {
        const int64_t q = std::min(readout, T - 1);
        fmt::print("{} head {} — attention of '{}' (query {}) over the sentence:\n", path, h,
                   tokens[size_t(q)], q);
        print_row(Ph + q * S, S, keys_per_head(a.keys, bar_heads, S, lm), keys, width, a.width);
        fmt::print("\n");
      }
      HeatmapOptions o;
      o.title = fmt::format("{} head {}", path, h);
      o.row_labels = queries;
      o.col_labels = keys;
      o.x_label = "key";
      o.y_label = "query";
      o.annotate = true;
      std::vector<double> values(Ph, Ph + T * S);
      const std::string svg = heatmap_svg(values, T, S, o);
      const std::string name = fmt::format("{}.h{}", path, h);
      write_svg((dir / (name + ".svg")).string(), svg);
      page.add(role.kind(arch), role.layer, h, name, svg);
    }
  }
  write_file_atomic((dir / "attention.html").string(), page.html());
  fmt::print("wrote {} (one SVG per head) and {}\n", dir.string(),
             (dir / "attention.html").string());
}

}  // namespace

void add_attend(CLI::App& app) {
  auto args = std::make_shared<AttendArgs>();
  CLI::App* cmd = app.add_subcommand(
      "attend",
      "The model's prediction for a sentence and its attention, per layer and head: bar charts "
      "of the read-out token's row in the terminal, and heatmaps (SVG, HTML).");
  cmd->add_option("--checkpoint", args->checkpoint, "Checkpoint file (.h5) from qkv train")
      ->required();
  cmd->add_option("sentence", args->sentence,
                  "Text to run, tokenised with the checkpoint's vocabulary (default: the task's "
                  "probe sentence)");
  cmd->add_option("--out-dir", args->out_dir,
                  "Folder for the heatmaps (default: 'attend' beside the checkpoint)");
  cmd->add_option("--keys", args->keys,
                  "Keys shown per head in the terminal, the most attended (default: every key; "
                  "for a language model, as many as fit in about 60 lines; 0 = all)")
      ->check(non_negative_integer());
  cmd->add_option("--width", args->width, "Width of the terminal bars")
      ->check(integer_in(5, 200))
      ->capture_default_str();
  cmd->callback([args] { run_attend(*args); });
}

}  // namespace qkv::cli
