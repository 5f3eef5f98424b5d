// The lm task (decoder): a language model over your own UTF-8 text file, at character or word
// level, no C++ needed.
// Tokens: level "char" (default): every code point, newlines included; level "word":
// word_tokenize() (vocab.h: ASCII letters lowercased, punctuation a token of its own; line breaks
// count as spaces). The file is read a line at a time into ONE id array (no per-example copies);
// examples are windows of block_size tokens made on the fly (token_windows.h).
// Splits: val_data / test_data when given; otherwise the last test_fraction of the tokens of
// `data` are test and the val_fraction before them val (contiguous, so no window straddles two
// splits and the text a model is scored on is text it never saw).
// Vocabulary: "<pad>", "<unk>", then the distinct tokens of the TRAINING text in sorted order;
// val and test tokens outside it read as "<unk>" and are counted.
// Options: data (required), val_data, test_data, val_fraction (0.05), test_fraction (0.05), seed
// (0, kept for the config; the split is not random), level ("char"), block_size (64 for
// characters, 32 for words, smaller when a val or test text is shorter).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/file_data.h"
#include "datasets/task.h"
#include "datasets/token_windows.h"

namespace qkv {

class LMTask : public Task {
 public:
  /// stored: a trained model's vocabulary (see TaskFactory); nullptr for a fresh task.
  explicit LMTask(const nlohmann::json& options, const StoredVocab* stored = nullptr);
  /// The options and model `qkv tasks` shows (the task needs a data file to be built).
  static nlohmann::json describe();

  std::string name() const override { return "lm"; }
  Arch arch() const override { return Arch::kDecoder; }
  nlohmann::json options() const override { return options_; }
  const Vocab& vocab() const override { return vocab_; }
  int64_t max_len() const override { return w_.block; }
  int64_t size(Split split) const override { return w_.size(split); }
  Batch batch(Split split, const std::vector<int64_t>& indices) const override {
    return w_.batch(*this, split, indices);
  }
  /// text: a prompt (its last block_size tokens are kept); unknown tokens throw. with_answer:
  /// targets are the prompt shifted by one; otherwise all -1.
  Batch encode(const std::string& text, bool with_answer = true) const override;
  std::string probe() const override { return probe_; }
  nlohmann::json default_model_config() const override;
  nlohmann::json default_train_config() const override;
  bool best_by_loss() const override { return true; }

  /// Tokens of a split that were not in the vocabulary (read as "<unk>"), and all of them.
  int64_t unknown_tokens(Split split) const { return counts_[static_cast<int>(split)].unknown; }
  int64_t total_tokens(Split split) const { return w_.length(split); }

 private:
  nlohmann::json options_;
  Vocab vocab_;
  TokenWindows w_;
  TokenCount counts_[3];
  std::string probe_;
};

}  // namespace qkv
