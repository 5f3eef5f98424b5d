// qkv explain: the worked example of self-attention and its backward pass, step by step, with
// numbers (see apps/explain.h), as text, Markdown or one self-contained HTML page.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/core.h>

#include "apps/commands.h"
#include "apps/explain.h"
#include "core/atomic_file.h"
#include "core/error.h"

namespace qkv::cli {
namespace {

struct ExplainArgs {
  std::string vectors;
  std::string format;
  std::string out;
};

/// --format, or else the --out file's extension (.txt, .md, .html), or else text. An extension
/// that names no format is refused rather than written as text.
std::string pick_format(const ExplainArgs& a) {
  if (!a.format.empty()) {
    QKV_CHECK(a.format == "text" || a.format == "markdown" || a.format == "html",
              "--format '{}': expected text, markdown or html", a.format);
    return a.format;
  }
  const std::string ext = std::filesystem::path(a.out).extension().string();
  if (ext == ".html" || ext == ".htm") return "html";
  if (ext == ".md") return "markdown";
  QKV_CHECK(ext.empty() || ext == ".txt",
            "--out {}: qkv explain writes .txt, .md or .html, not '{}'; pick one of those "
            "extensions or give --format text|markdown|html",
            a.out, ext);
  return "text";
}

void run_explain(const ExplainArgs& a) {
  const std::string format = pick_format(a);
  const ExplainInput input =
      a.vectors.empty() ? default_explain_input() : load_explain_input(a.vectors);
  const std::string text = render_explain(build_explain_report(input), format);
  if (a.out.empty()) {
    fmt::print("{}", text);
  } else {
    write_file_atomic(a.out, text);
    fmt::print(stderr, "wrote {} ({})\n", a.out, format);
  }
}

}  // namespace

void add_explain(CLI::App& app) {
  auto args = std::make_shared<ExplainArgs>();
  CLI::App* cmd = app.add_subcommand(
      "explain",
      "The worked example of self-attention (\"The animal didn't cross the street because it "
      "was too tired\") and its backward pass, step by step, with every gradient beside its "
      "finite difference.");
  cmd->add_option("--vectors", args->vectors,
                  "JSON file with your own words and vectors: {\"words\": [{\"word\": ..., "
                  "\"x\": [...]}, ...], \"query\": WORD, \"W_Q\", \"W_K\", \"W_V\": [[...], ...], "
                  "optional \"target\", \"sentence\", \"cross\" (see docs/explain.md)");
  cmd->add_option("--format", args->format,
                  "text | markdown | html (default: from --out's extension, else text)");
  cmd->add_option("--out", args->out, "Write to this file instead of standard output");
  cmd->callback([args] { run_explain(*args); });
}

}  // namespace qkv::cli
