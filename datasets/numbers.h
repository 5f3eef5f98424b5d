// The numbers task (seq2seq): English number words to digits.
//   src      three hundred twelve                      (source vocabulary: number words)
//   tokens   <bos> 3 1 2                               (decoder input)
//   targets  3 1 2 <eos>
// Words are space-separated, no "and", no hyphens ("twenty one"; a hyphen typed by a user is read
// as a space). Numbers 0..max_number (9999 by default); a seeded random 10% are held out for val
// and 10% for test, except the numbers whose words a model could not learn elsewhere (0..20, the
// tens, 100 and 1000), which are always in train.
// Options: seed (0), max_number (9999), val_fraction (0.1), test_fraction (0.1).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/task.h"

namespace qkv {

/// 312 -> "three hundred twelve", 1005 -> "one thousand five", 0 -> "zero"; n in [0, 999999].
std::string number_to_words(int64_t n);
/// The inverse of number_to_words (hyphens read as spaces); throws qkv::Error for text that is not
/// a number in that form, naming the first word that does not fit.
int64_t words_to_number(const std::string& text);

class NumbersTask : public Task {
 public:
  explicit NumbersTask(const nlohmann::json& options = {});

  std::string name() const override { return "numbers"; }
  Arch arch() const override { return Arch::kSeq2seq; }
  nlohmann::json options() const override { return options_; }
  /// Decoder vocabulary: <pad> <bos> <eos> 0..9.
  const Vocab& vocab() const override { return digits_; }
  /// Source vocabulary: <pad> and the number words.
  const Vocab& src_vocab() const override { return words_; }
  int64_t max_len() const override { return max_digits_ + 1; }
  int64_t src_max_len() const override { return max_words_; }
  int64_t size(Split split) const override;
  Batch batch(Split split, const std::vector<int64_t>& indices) const override;
  /// text: number words ("three hundred twelve"). with_answer: the decoder input and targets of
  /// the number; otherwise the decoder input is "<bos>" alone.
  Batch encode(const std::string& text, bool with_answer = true) const override;
  std::string probe() const override { return "three hundred twelve"; }
  nlohmann::json default_model_config() const override;
  nlohmann::json default_train_config() const override;

  /// The number of one example.
  int64_t number(Split split, int64_t i) const;

 private:
  void example(int64_t n, bool with_answer, std::vector<int32_t>* src, std::vector<int32_t>* tokens,
               std::vector<int32_t>* targets) const;

  nlohmann::json options_;
  Vocab words_, digits_;
  int64_t max_digits_ = 4, max_words_ = 0;
  std::vector<int64_t> splits_[3];
};

}  // namespace qkv
