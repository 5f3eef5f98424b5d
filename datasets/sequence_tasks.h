// Algorithmic decoder tasks over small vocabularies.
//
// copy / reverse / sort (DigitTask): a digit sequence in, the same digits copied, reversed or
// sorted out. The model reads "<bos> d1 .. dn <sep> o1 .. on" and predicts the next token; the
// targets are -1 on the prompt, so loss and accuracy count only "o1 .. on <eos>":
//   tokens   <bos>  3   1   4  <sep>  4   1   3
//   targets   -1   -1  -1  -1    4    1   3  <eos>        (reverse of 3 1 4)
// Options: seed (0), min_digits (1), max_digits (8), n_train (10000), n_val (500), n_test (500).
// Every input sequence is distinct, so no val / test input is seen in training.
//
// modadd (ModAddTask): a + b mod p, tokens "a + b =" (one token per residue), the answer token the
// only target:
//   tokens    12  +  34  =          targets  -1  -1  -1  46
// Options: seed (0), p (97), train_fraction (0.5) of the p² ordered pairs; the held-out pairs are
// split half into val, half into test.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/task.h"

namespace qkv {

class DigitTask : public Task {
 public:
  /// name: "copy" | "reverse" | "sort".
  DigitTask(const std::string& name, const nlohmann::json& options = {});

  std::string name() const override { return name_; }
  Arch arch() const override { return Arch::kDecoder; }
  nlohmann::json options() const override { return options_; }
  const Vocab& vocab() const override { return vocab_; }
  int64_t max_len() const override { return 2 * max_digits_ + 2; }
  int64_t size(Split split) const override;
  Batch batch(Split split, const std::vector<int64_t>& indices) const override;
  /// text: digits, spaces optional ("3 1 4" or "314").
  Batch encode(const std::string& text, bool with_answer = true) const override;
  std::string probe() const override { return name_ == "sort" ? "3 1 4 1 5 9 2 6" : "3 1 4 1 5"; }
  nlohmann::json default_model_config() const override;
  nlohmann::json default_train_config() const override;

  /// The input digits of one example.
  const std::vector<int32_t>& digits(Split split, int64_t i) const;
  /// The answer digits for an input (copied, reversed or sorted).
  std::vector<int32_t> answer(const std::vector<int32_t>& digits) const;

 private:
  // (tokens, targets) of one example; prompt_only drops the answer.
  void example(const std::vector<int32_t>& digits, bool prompt_only, std::vector<int32_t>* tokens,
               std::vector<int32_t>* targets) const;

  std::string name_;
  nlohmann::json options_;
  Vocab vocab_;
  int64_t max_digits_ = 8;
  std::vector<std::vector<int32_t>> splits_[3];
};

class ModAddTask : public Task {
 public:
  explicit ModAddTask(const nlohmann::json& options = {});

  std::string name() const override { return "modadd"; }
  Arch arch() const override { return Arch::kDecoder; }
  nlohmann::json options() const override { return options_; }
  const Vocab& vocab() const override { return vocab_; }
  int64_t max_len() const override { return 4; }
  int64_t size(Split split) const override;
  Batch batch(Split split, const std::vector<int64_t>& indices) const override;
  /// text: "a + b", "a + b =" or "a + b = c" (c is ignored; the answer is computed).
  Batch encode(const std::string& text, bool with_answer = true) const override;
  /// "12 + 34 =" (for p = 97; the residues of 12 and 34 otherwise).
  std::string probe() const override;
  nlohmann::json default_model_config() const override;
  nlohmann::json default_train_config() const override;

  int64_t p() const { return p_; }
  /// The (a, b) pair of one example.
  std::pair<int32_t, int32_t> pair(Split split, int64_t i) const;

 private:
  nlohmann::json options_;
  Vocab vocab_;
  int64_t p_ = 97;
  std::vector<std::pair<int32_t, int32_t>> splits_[3];
};

}  // namespace qkv
