// The charlm task (decoder): a character-level language model over a UTF-8 text file.
// The vocabulary is "<pad>" plus every distinct code point of the text, in code-point order. The
// text is split into contiguous chunks: the first 90% of its characters are train, the next 5%
// val, the last 5% test. Examples are windows of block_size characters (token_windows.h).
// Options: seed (0; picks the default corpus), data (a text file; default: a generated corpus of
// sentences from the pronoun templates), block_size (64), max_vocab (4096: a text with more
// distinct characters is refused with what its vocabulary would cost).
// Memory: the text is read once and kept as 4-byte ids, one per character (about 4× a mostly
// ASCII file); val and test hold at most kCharLMEvalWindows windows (the first ones).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "datasets/task.h"
#include "datasets/token_windows.h"

namespace qkv {

/// The default corpus: the pronoun task's sentences, capitalised, with a period, in a seeded
/// random order, about ten to a line.
std::string charlm_default_corpus(uint64_t seed);

/// The default limit on distinct characters (the task option max_vocab).
constexpr int64_t kCharLMMaxVocab = 4096;
/// The most val (and test) windows: an evaluation reads at most the first 2048 · block_size
/// characters of its chunk, whatever the size of the text.
constexpr int64_t kCharLMEvalWindows = 2048;

class CharLMTask : public Task {
 public:
  explicit CharLMTask(const nlohmann::json& options = {});

  /// The task of a trained checkpoint whose text file is gone: its options and its vocabulary
  /// (the checkpoint's /vocab), with empty splits. Enough to tokenise prompts (qkv generate,
  /// attend); evaluating needs the text. Throws qkv::Error when `tokens` is not a charlm
  /// vocabulary.
  static std::unique_ptr<CharLMTask> from_vocabulary(const nlohmann::json& options,
                                                     const std::vector<std::string>& tokens);
  /// The registry's factory: the task of `options`, or, when a trained model's vocabulary is
  /// `stored` and its --data file is gone, from_vocabulary() with a note on stderr.
  static std::unique_ptr<Task> rebuild(const nlohmann::json& options, const StoredVocab* stored);

  std::string name() const override { return "charlm"; }
  Arch arch() const override { return Arch::kDecoder; }
  nlohmann::json options() const override { return options_; }
  const Vocab& vocab() const override { return vocab_; }
  int64_t max_len() const override { return w_.block; }
  int64_t size(Split split) const override;
  Batch batch(Split split, const std::vector<int64_t>& indices) const override;
  /// text: a prompt (its last block_size characters are kept). with_answer: targets are the
  /// prompt shifted by one (the last is -1); otherwise all -1.
  Batch encode(const std::string& text, bool with_answer = true) const override;
  std::string probe() const override { return probe_; }
  nlohmann::json default_model_config() const override;
  nlohmann::json default_train_config() const override;
  bool best_by_loss() const override { return true; }

  /// Characters in each chunk.
  int64_t chunk_length(Split split) const;

 private:
  struct NoText {};
  explicit CharLMTask(NoText) {}

  nlohmann::json options_;
  Vocab vocab_;
  TokenWindows w_;  // the whole text and its splits
  std::string probe_;
};

}  // namespace qkv
