// The classify task (encoder): text classification from a JSONL file, no C++ needed.
//   {"text": "The movie was not good at all.", "label": "negative"}
//   {"text": "The trophy didn't fit in the suitcase because it was too big.", "label": "trophy",
//    "query": "it"}
// Fields: text (string), label (string or integer), query (optional: one word of the text),
// split (optional, see file_data.h); other fields are ignored.
// Words: word_tokenize() (vocab.h): ASCII letters lowercased, punctuation a token of its own,
// "didn't" one word. Read-out: with a query, the model reads the encoder output at the query
// word's first occurrence in the text (as the pronoun task reads out at "it"); without one, a
// "<cls>" token is put in front of the text and read out (as BERT does).
// Classes: the distinct labels of all splits, in sorted order, unless the option `labels` lists
// them; the resolved options always list them, so a trained model keeps its class names when
// the data file has moved. Vocabulary: "<pad>", "<unk>", "<cls>", then the training split's
// words (file_data.h).
// Options: data (required), val_data, test_data, val_fraction (0.1), test_fraction (0.1), seed
// (0), labels (from the data), max_len (the longest example, at most 256; longer texts are cut).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "datasets/file_data.h"
#include "datasets/task.h"

namespace qkv {

class ClassifyTask : public Task {
 public:
  static constexpr const char* kCls = "<cls>";

  /// stored: a trained model's vocabulary (see TaskFactory); nullptr for a fresh task.
  explicit ClassifyTask(const nlohmann::json& options, const StoredVocab* stored = nullptr);
  /// The options and model `qkv tasks` shows (the task needs a data file to be built).
  static nlohmann::json describe();

  std::string name() const override { return "classify"; }
  Arch arch() const override { return Arch::kEncoder; }
  nlohmann::json options() const override { return options_; }
  const Vocab& vocab() const override { return vocab_; }
  int64_t n_out() const override { return static_cast<int64_t>(labels_.size()); }
  int64_t max_len() const override { return max_len_; }
  int64_t size(Split split) const override;
  Batch batch(Split split, const std::vector<int64_t>& indices) const override;
  /// text: a sentence; a word in square brackets is the query read out ("... because [it] was
  /// big"), otherwise the read-out is "<cls>". Unknown words throw with suggestions. Targets are
  /// -1 (the answer is not known).
  Batch encode(const std::string& text, bool with_answer = true) const override;
  std::string probe() const override { return probe_; }
  std::string class_name(int32_t c) const override;
  nlohmann::json default_model_config() const override;
  nlohmann::json default_train_config() const override;

  /// Tokens of a split that were not in the vocabulary (read as "<unk>"), and all its tokens.
  int64_t unknown_tokens(Split split) const { return counts_[static_cast<int>(split)].unknown; }
  int64_t total_tokens(Split split) const { return counts_[static_cast<int>(split)].tokens; }
  const std::vector<std::string>& labels() const { return labels_; }

 private:
  struct Example {
    std::vector<int32_t> ids;
    int32_t label = 0;
    int32_t position = 0;  // the read-out
  };

  nlohmann::json options_;
  Vocab vocab_;
  std::vector<std::string> labels_;
  int64_t max_len_ = 0;
  std::vector<Example> splits_[3];
  TokenCount counts_[3];
  std::string probe_;
};

}  // namespace qkv
