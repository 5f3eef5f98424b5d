// qkv attend: the model's prediction for a sentence and where it looks. Per layer and head it
// prints the read-out token's attention row (for pronoun: the pronoun's) as a labelled bar chart,
// and writes a heatmap (SVG, tokens on both axes) of every head plus one HTML page with them all.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/core.h>

#include "apps/commands.h"
#include "apps/loaded.h"
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
};

std::vector<std::string> labels(const Vocab& vocab, const IndexTensor& ids) {
  std::vector<std::string> out;
  for (int32_t id : ids.data) out.push_back(vocab.token(id));
  return out;
}

void run_attend(AttendArgs a) {
  Loaded l = load_trained(a.checkpoint);
  Task& task = *l.task;
  Model<float>& model = *l.model;
  const std::string arch = task.arch();
  if (a.sentence.empty()) a.sentence = task.probe();

  Batch batch = task.encode(a.sentence, /*with_answer=*/false);
  if (arch != "encoder") {
    std::vector<int32_t> out = greedy_decode(model, batch, task.vocab().eos_id());
    fmt::print("input:      {}\n", arch == "seq2seq" ? task.decode_src(batch.src.data)
                                                     : task.decode(batch.tokens.data));
    fmt::print("prediction: {}\n\n", task.decode(out));
  }
  NoGradGuard no_grad;
  ForwardResult<float> r = model.forward(batch, /*keep_attention=*/true);
  const std::vector<std::string> tokens = labels(task.vocab(), batch.tokens);
  const std::vector<std::string> src_tokens =
      arch == "seq2seq" ? labels(task.src_vocab(), batch.src) : tokens;

  int64_t readout = static_cast<int64_t>(tokens.size()) - 1;
  if (arch == "encoder") {
    readout = batch.positions[0];
    const Tensor<float>& logits = r.logits.value();  // [1, n_out]
    const int64_t n = logits.size(1);
    std::vector<double> p(static_cast<size_t>(n));
    double m = -INFINITY, z = 0;
    for (int64_t i = 0; i < n; ++i) m = std::max(m, double(logits[i]));
    for (int64_t i = 0; i < n; ++i) z += (p[size_t(i)] = std::exp(double(logits[i]) - m));
    std::vector<int32_t> order(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) order[size_t(i)] = i;
    std::partial_sort(order.begin(), order.begin() + std::min<int64_t>(3, n), order.end(),
                      [&](int32_t x, int32_t y) { return p[size_t(x)] > p[size_t(y)]; });
    fmt::print("sentence:   {}\n", a.sentence);
    fmt::print("prediction: '{}' refers to '{}' (p = {:.3f}", tokens[size_t(readout)],
               task.class_name(order[0]), p[size_t(order[0])] / z);
    for (int k = 1; k < std::min<int64_t>(3, n); ++k)
      fmt::print("; then '{}' {:.3f}", task.class_name(order[size_t(k)]),
                 p[size_t(order[size_t(k)])] / z);
    fmt::print(")\n\n");
  }

  namespace fs = std::filesystem;
  const fs::path dir =
      a.out_dir.empty() ? fs::path(a.checkpoint).parent_path() / "attend" : fs::path(a.out_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  QKV_CHECK(!ec, "--out-dir {}: cannot create the folder ({})", dir.string(), ec.message());

  std::string html =
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>qkv attention</title>"
      "<style>body{font-family:sans-serif;margin:2em}figure{display:inline-block;margin:1em}"
      "</style></head><body>\n<h1>Attention</h1>\n<p>" +
      xml_escape(a.sentence) +
      "</p>\n<p>Rows are queries, columns are keys; each row is P = softmax(Q·Kᵀ/√d_k) and sums to "
      "1. Hover a cell for its weight.</p>\n";
  size_t width = 0;
  for (const auto& t : src_tokens) width = std::max(width, t.size());
  for (const auto& [path, P] : r.attention) {
    // seq2seq: "enc.*" attends source to source, "*.xattn" target to source; the rest (and every
    // module of the other architectures) attends over `tokens`.
    const bool cross = path.find("xattn") != std::string::npos;
    const bool source = arch == "seq2seq" && path.rfind("enc.", 0) == 0;
    const auto& queries = source ? src_tokens : tokens;
    const auto& keys = cross || source ? src_tokens : tokens;
    const int64_t H = P.size(1), T = P.size(2), S = P.size(3);
    for (int64_t h = 0; h < H; ++h) {
      const float* Ph = P.data() + h * T * S;
      if (cross) {
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
      } else if (!source) {
        const int64_t q = std::min(readout, T - 1);
        fmt::print("{} head {} — attention of '{}' (query {}) over the sentence:\n", path, h,
                   tokens[size_t(q)], q);
        for (int64_t j = 0; j < S; ++j)
          fmt::print("  {:>{}} {:5.1f}% {}\n", keys[size_t(j)], width, 100.0 * Ph[q * S + j],
                     bar(Ph[q * S + j], a.width));
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
      write_svg((dir / fmt::format("{}.h{}.svg", path, h)).string(), svg);
      html += "<figure>" + svg.substr(svg.find("<svg")) + "</figure>\n";  // no <?xml?> inside HTML
    }
  }
  html += "</body></html>\n";
  write_file_atomic((dir / "attention.html").string(), html);
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
  cmd->add_option("--width", args->width, "Width of the terminal bars")
      ->check(CLI::Range(5, 200))
      ->capture_default_str();
  cmd->callback([args] { run_attend(*args); });
}

}  // namespace qkv::cli
