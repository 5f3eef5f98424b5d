// qkv generate: samples text from a decoder checkpoint (charlm above all; copy, reverse, sort and
// modadd too), as nanoGPT's sample.py does. Prints the prompt followed by the continuation;
// --num-samples M prints M samples, each after a line of dashes, from one seeded stream.
#include <omp.h>

#include <algorithm>
#include <cstdio>

#include <fmt/core.h>

#include "apps/cli_checks.h"
#include "apps/commands.h"
#include "train/load.h"
#include "core/error.h"
#include "train/decode.h"

namespace qkv::cli {
namespace {

struct GenerateArgs {
  std::string checkpoint;
  std::string prompt;
  SamplingOptions sampling;
  int64_t max_new_tokens = 256;
  int64_t seed = 1337;
  int64_t num_samples = 1;
  int threads = 1;
  bool prompt_given = false;
};

/// "'x' (U+0078)" for one UTF-8 character; control characters are escaped.
std::string describe_char(const std::string& ch) {
  const auto c0 = static_cast<unsigned char>(ch[0]);
  uint32_t cp = ch.size() == 1 ? c0 : c0 & (0x7Fu >> ch.size());
  for (size_t k = 1; k < ch.size(); ++k)
    cp = (cp << 6) | (static_cast<unsigned char>(ch[k]) & 0x3F);
  const std::string shown = ch == "\n" ? "\\n" : ch == "\t" ? "\\t" : ch == "\r" ? "\\r" : ch;
  return fmt::format("'{}' (U+{:04X})", shown, cp);
}

/// The prompt's token ids. At character level every unknown character is named at once, in order
/// of first appearance; otherwise the task's own message (unknown word, bad digits) is passed on.
std::vector<int32_t> encode_prompt(const Task& task, const std::string& prompt) {
  const Vocab& vocab = task.vocab();
  if (vocab.level() == Level::kChar) {
    std::vector<std::string> chars;
    try {
      chars = char_tokenize(prompt);
    } catch (const Error& e) {
      fail("--prompt: not valid UTF-8 text: {}", e.what());
    }
    QKV_CHECK(!chars.empty(), "--prompt: the prompt is empty; give at least one character");
    std::vector<std::string> unknown;
    for (const std::string& c : chars)
      if (!vocab.contains(c) && std::find(unknown.begin(), unknown.end(), c) == unknown.end())
        unknown.push_back(c);
    if (!unknown.empty()) {
      std::string list;
      for (const std::string& c : unknown) list += (list.empty() ? "" : ", ") + describe_char(c);
      fail(
          "--prompt: {} not in the vocabulary of the checkpoint's {} task ({} characters): {}",
          unknown.size() == 1 ? "1 character is" : fmt::format("{} characters are", unknown.size()),
          task.name(), vocab.size() - 1, list);
    }
  }
  Batch b;
  try {
    b = task.encode(prompt, /*with_answer=*/false);
  } catch (const Error& e) {
    fail("--prompt: {}", e.what());
  }
  return std::vector<int32_t>(b.tokens.data);
}

void run_generate(const GenerateArgs& a) {
  check_sampling_options(a.sampling);
  TrainedModel l = load_trained(a.checkpoint);
  const Task& task = *l.task;
  const Arch arch = l.model->config().arch;
  if (arch != Arch::kDecoder)
    fail(
        "{}: {} checkpoint (task '{}'); qkv generate samples only from decoders (charlm, "
        "copy, reverse, sort, modadd): use 'qkv attend --checkpoint {}' for its {}",
        a.checkpoint,
        arch == Arch::kEncoder ? std::string("an encoder") : std::string("a ") + arch_name(arch),
        task.name(), a.checkpoint,
        arch == Arch::kSeq2seq ? "greedy translation and attention" : "prediction and attention");
  const std::string prompt = a.prompt_given ? a.prompt : task.probe();
  const std::vector<int32_t> context = encode_prompt(task, prompt);

  const bool chars = task.vocab().level() == Level::kChar;
  const int32_t eos = task.vocab().eos_id();
  Rng rng(static_cast<uint64_t>(a.seed));
  for (int64_t s = 0; s < a.num_samples; ++s) {
    if (a.num_samples > 1) fmt::print("{}---------- sample {}\n", s ? "\n" : "", s + 1);
    fmt::print("{}", prompt);
    std::fflush(stdout);
    // Characters are printed as they are drawn; words are detokenised as a whole at the end.
    auto on_token = [&](int32_t id) {
      if (!chars) return;
      fmt::print("{}", task.decode({id}));
      std::fflush(stdout);
    };
    const std::vector<int32_t> out =
        generate(*l.model, context, a.max_new_tokens, eos, a.sampling, rng, on_token);
    if (!chars && !out.empty()) fmt::print(" {}", task.decode(out));
    fmt::print("\n");
  }
}

}  // namespace

void add_generate(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand(
      "generate",
      "Sample a continuation of a prompt from a decoder checkpoint (charlm, copy, reverse, sort, "
      "modadd): temperature, top-k and top-p sampling with a seed, as nanoGPT's sample.py. "
      "Prints the prompt followed by the continuation.");
  cmd->add_option("--checkpoint", args->checkpoint, "Checkpoint file (.h5) from qkv train")
      ->required();
  CLI::Option* prompt =
      cmd->add_option("--prompt", args->prompt,
                      "Text to continue, in the checkpoint's vocabulary (default: the task's probe "
                      "sentence); only its last max_len tokens are read");
  cmd->add_option("--temperature", args->sampling.temperature,
                  "Divides the logits: 0 = greedy argmax, 1 = the model's distribution, > 1 "
                  "more random")
      ->capture_default_str();
  cmd->add_option("--top-k", args->sampling.top_k,
                  "Sample only from the k most likely tokens (0 = all)")
      ->capture_default_str();
  cmd->add_option("--top-p", args->sampling.top_p,
                  "Nucleus sampling: only from the most likely tokens whose probabilities add up "
                  "to p (1 = all)")
      ->capture_default_str();
  cmd->add_option("--max-new-tokens", args->max_new_tokens,
                  "Tokens to generate (fewer when the task's <eos> comes first)")
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "Seed of the sampling (same seed, same text)")
      ->capture_default_str();
  cmd->add_option("--num-samples", args->num_samples, "Samples to draw, one after another")
      ->capture_default_str();
  cmd->add_option("--threads", args->threads,
                  "OpenMP threads (one sequence is too small a product to share: 1 is fastest "
                  "for the toy models)")
      ->check(integer_in(1, 1024))
      ->capture_default_str();
  cmd->callback([args, prompt] {
    GenerateArgs a = *args;
    a.prompt_given = prompt->count() > 0;
    QKV_CHECK(a.max_new_tokens >= 0, "--max-new-tokens {}: must be >= 0", a.max_new_tokens);
    QKV_CHECK(a.seed >= 0, "--seed {}: must be >= 0", a.seed);
    QKV_CHECK(a.num_samples >= 1, "--num-samples {}: must be >= 1", a.num_samples);
    omp_set_dynamic(0);
    omp_set_num_threads(a.threads);
    run_generate(a);
  });
}

}  // namespace qkv::cli
