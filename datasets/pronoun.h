// The pronoun task (encoder): Winograd-style minimal pairs. Two candidate nouns, a pronoun, and a
// trigger word that decides which noun the pronoun means:
//   "the animal didn't cross the street because it was too tired"   it = animal
//   "the animal didn't cross the street because it was too wide"    it = street
// The model reads the encoder output at the pronoun and classifies over the vocabulary: the target
// is the referent noun's token id (n_out = vocab size). The referent_attention probe reads each
// example's two noun positions.
//
// Generation: each template names the noun classes its two slots take and its trigger words,
// half of them pointing at the first noun of the sentence and half at the second. For every
// chosen (template, first noun, second noun) triple ("combination") the generator writes the
// sentence for EVERY trigger of the template, so labels are exactly balanced per template,
// trigger and position, and every noun is the referent as often as the distractor. Both nouns of
// a combination have the same pronoun (it / he / she / they), so the pronoun alone never gives
// the answer. Sentences are lowercase, without a final period.
//
// Splits are made on the unordered noun pair: every combination of a pair, in every template and
// either order, lands in the same split, so the test split holds noun pairs (and hence template-
// noun combinations) that training never sees. The pairs {animal, street} and {trophy, suitcase}
// (the lesson sentences) are always in the test split. Every noun is kept in at least one training
// pair, so each test referent is a class the model has been trained on.
//
// WinoGrande JSONL: export writes the pronoun as "the _" (option1 = the first noun, option2 = the
// second, answer "1" / "2"); the option "data" imports a file instead of generating. An imported
// sentence is tokenised with its `_` as the token "<blank>", which is the read-out position;
// each option is reduced to its head word (leading "the" / "a" / "an" dropped, last word kept),
// which is the class; referent_pos / distractor_pos are the options' first occurrences in the
// sentence (-1 if absent). A record without an answer gets target -1. Imported records are split
// by option pair like generated ones.
//
// Options: seed (0), combos_per_template (48; 0 = all), val_fraction (0.1), test_fraction (0.1),
// data (a WinoGrande .jsonl to import instead of generating).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "datasets/task.h"
#include "datasets/winogrande.h"

namespace qkv {

/// A sentence pattern. `text` is pre-tokenised (tokens separated by single spaces) with the
/// placeholders {A} and {B} (the two nouns, in sentence order), {P} (the pronoun), {T} (the
/// trigger), {was} (was / were) and {wasnt} (wasn't / weren't).
struct PronounTemplate {
  std::string name;
  std::string text;
  std::vector<std::string> a_classes;   // noun classes {A} takes
  std::vector<std::string> b_classes;   // noun classes {B} takes
  std::vector<std::string> a_triggers;  // triggers whose referent is {A}
  std::vector<std::string> b_triggers;  // triggers whose referent is {B}; as many as a_triggers
};

/// A class of nouns sharing a pronoun; a noun may sit in several classes (with the same pronoun).
struct NounClass {
  std::string name;
  std::string pronoun;  // "it" | "he" | "she" | "they"
  std::vector<std::string> nouns;
};

struct PronounExample {
  std::vector<int32_t> tokens;
  int32_t target = -1;           // the referent noun's id (-1 = answer unknown)
  int32_t position = -1;         // the pronoun's (or <blank>'s) index
  int32_t referent_pos = -1;     // index of the referent noun (-1 = unknown)
  int32_t distractor_pos = -1;   // index of the other noun (-1 = unknown)
  int template_id = -1;          // into pronoun_templates(); -1 when imported
  std::string trigger;           // "" when imported
  int referent_slot = -1;        // 0 = option1 / {A}, 1 = option2 / {B}, -1 = unknown
  std::string option1, option2;  // the two candidate nouns (head words)
  bool has_source = false;       // imported: `source` is the record it came from
  WinoRecord source;
};

/// The built-in templates (at least 10), noun classes (at least 40 nouns) and the distinct
/// trigger words over all templates (at least 30).
const std::vector<PronounTemplate>& pronoun_templates();
const std::vector<NounClass>& pronoun_noun_classes();
std::vector<std::string> pronoun_nouns();
std::vector<std::string> pronoun_triggers();

class PronounTask : public Task {
 public:
  explicit PronounTask(const nlohmann::json& options = {});

  std::string name() const override { return "pronoun"; }
  Arch arch() const override { return Arch::kEncoder; }
  nlohmann::json options() const override { return options_; }
  const Vocab& vocab() const override { return vocab_; }
  int64_t max_len() const override { return max_len_; }
  int64_t size(Split split) const override { return static_cast<int64_t>(examples(split).size()); }
  Batch batch(Split split, const std::vector<int64_t>& indices) const override;
  /// The sentence's tokens with the read-out at its first pronoun (it / he / she / they) or `_`.
  /// When the sentence (with or without a final period) is one of the task's examples, its
  /// labels are filled in; otherwise target and noun positions are -1.
  Batch encode(const std::string& text, bool with_answer = true) const override;
  std::string probe() const override {
    return "the animal didn't cross the street because it was too tired";
  }
  nlohmann::json default_model_config() const override;
  nlohmann::json default_train_config() const override;
  /// "'it' refers to 'animal'".
  std::string prediction_text(const std::string& readout,
                              const std::string& class_name) const override {
    return "'" + readout + "' refers to '" + class_name + "'";
  }
  /// referent_attention (datasets/pronoun_probe.cpp): the pronoun row's attention on the referent
  /// noun against the distractor noun, per self-attention head.
  std::vector<std::unique_ptr<Probe>> probes() const override;

  const std::vector<PronounExample>& examples(Split split) const;
  /// The split as WinoGrande records (imported examples as they were read).
  std::vector<WinoRecord> winogrande(Split split) const;
  /// Writes winogrande(split) to a .jsonl file.
  void export_winogrande(Split split, const std::string& path) const;

 private:
  void generate(uint64_t seed, int64_t combos_per_template);
  void import(const std::string& path);
  void assign_splits(std::vector<PronounExample> all, uint64_t seed,
                     const std::vector<std::pair<std::string, std::string>>& forced_test);

  nlohmann::json options_;
  Vocab vocab_;
  double val_fraction_ = 0.1, test_fraction_ = 0.1;
  std::vector<PronounExample> splits_[3];
  std::map<std::vector<int32_t>, std::pair<int, size_t>> lookup_;  // tokens -> (split, index)
  int64_t max_len_ = 0;
};

}  // namespace qkv
