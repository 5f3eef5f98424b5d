// The seq2seq task: translation pairs from a JSONL file, no C++ needed.
//   {"source": "march 5 2024", "target": "2024 03 05"}
//   src      march 5 2024                 (source vocabulary)
//   tokens   <bos> 2024 03 05             (decoder input)
//   targets  2024 03 05 <eos>
// Fields: source, target (strings), split (optional, see file_data.h); other fields are ignored.
// Tokens: words (word_tokenize(), vocab.h: lowercased, punctuation apart) or, with level "char",
// characters, on both sides. Vocabularies, from the training split: source "<pad>", "<unk>" and
// its tokens; target "<pad>", "<unk>", "<bos>", "<eos>" and its tokens.
// Options: data (required), val_data, test_data, val_fraction (0.1), test_fraction (0.1), seed
// (0), level ("word"), max_len (the longest target + 1, at most 256), src_max_len (the longest
// source, at most 256); longer sequences are cut.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/file_data.h"
#include "datasets/task.h"

namespace qkv {

class Seq2SeqTask : public Task {
 public:
  /// stored: a trained model's vocabularies (see TaskFactory); nullptr for a fresh task.
  explicit Seq2SeqTask(const nlohmann::json& options, const StoredVocab* stored = nullptr);
  /// The options and model `qkv tasks` shows (the task needs a data file to be built).
  static nlohmann::json describe();

  std::string name() const override { return "seq2seq"; }
  Arch arch() const override { return Arch::kSeq2seq; }
  nlohmann::json options() const override { return options_; }
  const Vocab& vocab() const override { return vocab_; }
  const Vocab& src_vocab() const override { return src_vocab_; }
  int64_t max_len() const override { return max_len_; }
  int64_t src_max_len() const override { return src_max_len_; }
  int64_t size(Split split) const override;
  Batch batch(Split split, const std::vector<int64_t>& indices) const override;
  /// text: a source; the decoder input is "<bos>" alone and targets are -1 (greedy decoding
  /// continues from it). Unknown tokens throw with suggestions.
  Batch encode(const std::string& text, bool with_answer = true) const override;
  std::string probe() const override { return probe_; }
  nlohmann::json default_model_config() const override;
  nlohmann::json default_train_config() const override;

  /// Source and target tokens of a split that were not in their vocabulary (read as "<unk>"),
  /// and all of them.
  int64_t unknown_tokens(Split split) const { return counts_[static_cast<int>(split)].unknown; }
  int64_t total_tokens(Split split) const { return counts_[static_cast<int>(split)].tokens; }

 private:
  struct Pair {
    std::vector<int32_t> src, target;  // target without <bos> / <eos>
  };

  nlohmann::json options_;
  Vocab vocab_, src_vocab_;
  int64_t max_len_ = 0, src_max_len_ = 0;
  std::vector<Pair> splits_[3];
  TokenCount counts_[3];
  std::string probe_;
};

}  // namespace qkv
