#include "datasets/numbers.h"

#include <algorithm>

#include "core/error.h"
#include "core/rng.h"
#include "datasets/options.h"

namespace qkv {
namespace {

const char* const kUnits[] = {"zero",    "one",     "two",       "three",    "four",
                              "five",    "six",     "seven",     "eight",    "nine",
                              "ten",     "eleven",  "twelve",    "thirteen", "fourteen",
                              "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
const char* const kTens[] = {"",      "",      "twenty",  "thirty", "forty",
                             "fifty", "sixty", "seventy", "eighty", "ninety"};

// Words of 1..999 (no "zero").
void below_thousand(int64_t n, std::vector<std::string>* out) {
  if (n >= 100) {
    out->push_back(kUnits[n / 100]);
    out->push_back("hundred");
    n %= 100;
  }
  if (n >= 20) {
    out->push_back(kTens[n / 10]);
    n %= 10;
  }
  if (n > 0) out->push_back(kUnits[n]);
}

std::vector<std::string> number_words(int64_t n) {
  QKV_CHECK(n >= 0 && n <= 999999, "number_to_words: {} is outside 0..999999", n);
  std::vector<std::string> out;
  if (n == 0) return {"zero"};
  if (n >= 1000) {
    below_thousand(n / 1000, &out);
    out.push_back("thousand");
    n %= 1000;
  }
  below_thousand(n, &out);
  return out;
}

}  // namespace

std::string number_to_words(int64_t n) {
  std::string s;
  for (const std::string& w : number_words(n)) s += (s.empty() ? "" : " ") + w;
  return s;
}

int64_t words_to_number(const std::string& text) {
  std::string spaced = text;
  std::replace(spaced.begin(), spaced.end(), '-', ' ');
  const std::vector<std::string> words = word_tokenize(spaced);
  QKV_CHECK(!words.empty(), "not a number in words: \"{}\"", text);
  // Parse greedily, then accept only the canonical spelling (number_to_words of the result).
  int64_t total = 0, group = 0;
  for (const std::string& w : words) {
    int64_t v = -1;
    for (int64_t k = 0; k < 20; ++k)
      if (w == kUnits[k]) v = k;
    for (int64_t k = 2; k < 10; ++k)
      if (w == kTens[k]) v = 10 * k;
    if (v >= 0) {
      group += v;
    } else if (w == "hundred") {
      group *= 100;
    } else if (w == "thousand") {
      total += group * 1000;
      group = 0;
    } else {
      fail("not a number in words: \"{}\" ('{}' is not a number word)", text, w);
    }
    QKV_CHECK(total + group <= 999999, "not a number in words: \"{}\" (too large)", text);
  }
  const int64_t n = total + group;
  std::string canonical = number_to_words(n), given;
  for (const std::string& w : words) given += (given.empty() ? "" : " ") + w;
  QKV_CHECK(given == canonical, "not a number in words: \"{}\" (did you mean \"{}\"?)", text,
            canonical);
  return n;
}

NumbersTask::NumbersTask(const nlohmann::json& j) {
  TaskOptions o("numbers", j);
  const uint64_t seed = o.seed();
  const int64_t max_number = o.integer("max_number", 9999, 99, 999999);
  const double val_fraction = o.number("val_fraction", 0.1, 0.0, 0.4);
  const double test_fraction = o.number("test_fraction", 0.1, 0.0, 0.4);
  o.finish();
  options_ = o.resolved();

  std::vector<std::string> words;
  for (const char* w : kUnits) words.push_back(w);
  for (int k = 2; k < 10; ++k) words.push_back(kTens[k]);
  words.push_back("hundred");
  words.push_back("thousand");
  words_ = Vocab::build({}, words);
  std::vector<std::string> digits;
  for (int d = 0; d < 10; ++d) digits.push_back(std::to_string(d));
  digits_ = Vocab::build({Vocab::kBos, Vocab::kEos}, digits);
  max_digits_ = static_cast<int64_t>(std::to_string(max_number).size());
  for (int64_t n = 0; n <= max_number; ++n)
    max_words_ = std::max<int64_t>(max_words_, static_cast<int64_t>(number_words(n).size()));

  // Numbers whose words appear nowhere else stay in train.
  auto basic = [](int64_t n) {
    return n <= 20 || (n < 100 && n % 10 == 0) || n == 100 || n == 1000;
  };
  const int64_t count = max_number + 1;
  const auto n_test = static_cast<int64_t>(test_fraction * double(count));
  const auto n_val = static_cast<int64_t>(val_fraction * double(count));
  Rng rng(seed);
  for (int64_t n : rng.permutation(count)) {
    int s = 0;
    if (!basic(n)) {
      if (static_cast<int64_t>(splits_[2].size()) < n_test)
        s = 2;
      else if (static_cast<int64_t>(splits_[1].size()) < n_val)
        s = 1;
    }
    splits_[s].push_back(n);
  }
}

int64_t NumbersTask::size(Split split) const {
  return static_cast<int64_t>(splits_[static_cast<int>(split)].size());
}

int64_t NumbersTask::number(Split split, int64_t i) const {
  QKV_CHECK(i >= 0 && i < size(split), "numbers: example {} is out of range for the {} split", i,
            split_name(split));
  return splits_[static_cast<int>(split)][static_cast<size_t>(i)];
}

void NumbersTask::example(int64_t n, bool with_answer, std::vector<int32_t>* src,
                          std::vector<int32_t>* tokens, std::vector<int32_t>* targets) const {
  *src = words_.ids(number_words(n));
  *tokens = {digits_.bos_id()};
  *targets = {-1};
  if (!with_answer) return;
  // Decoder: "<bos> d1 .. dk" in, "d1 .. dk <eos>" out.
  targets->clear();
  for (char c : std::to_string(n)) {
    const int32_t d = digits_.id(std::string(1, c));
    tokens->push_back(d);
    targets->push_back(d);
  }
  targets->push_back(digits_.eos_id());
}

Batch NumbersTask::batch(Split split, const std::vector<int64_t>& indices) const {
  check_indices(*this, split, indices);
  const size_t B = indices.size();
  std::vector<std::vector<int32_t>> src(B), rows(B), targets(B);
  for (size_t k = 0; k < B; ++k)
    example(number(split, indices[k]), true, &src[k], &rows[k], &targets[k]);
  return pack_seq2seq(src, rows, targets);
}

Batch NumbersTask::encode(const std::string& text, bool with_answer) const {
  std::string spaced = text;
  std::replace(spaced.begin(), spaced.end(), '-', ' ');
  std::vector<int32_t> src = words_.encode(spaced);  // unknown words throw, with suggestions
  std::vector<int32_t> tokens = {digits_.bos_id()}, targets = {-1};
  if (with_answer) {
    std::vector<int32_t> s;
    example(words_to_number(spaced), true, &s, &tokens, &targets);
  }
  return pack_seq2seq({src}, {tokens}, {targets});
}

nlohmann::json NumbersTask::default_model_config() const {
  return {{"arch", "seq2seq"},
          {"vocab_size", digits_.size()},
          {"max_len", max_len()},
          {"d_model", 64},
          {"n_heads", 4},
          {"n_layers", 2},
          {"d_ff", 256},
          {"activation", "gelu"},
          {"norm", "pre"},
          {"pos", "learned"},
          {"tie_embeddings", true},
          {"n_out", digits_.size()},
          {"dropout", 0.0},
          {"ln_eps", 1e-5},
          {"src_vocab_size", words_.size()},
          {"src_max_len", src_max_len()}};
}

// Measured with qkv train on 2 busy cores (seeds 0 and 1): 100 % exact-sequence test accuracy in
// ~20 s (100 % val by step 750-1000).
nlohmann::json NumbersTask::default_train_config() const {
  return {{"steps", 1500},        {"batch_size", 64},     {"lr", 1e-3},
          {"optimizer", "adamw"}, {"weight_decay", 0.01}, {"warmup", 100},
          {"schedule", "cosine"}, {"clip", 1.0},          {"eval_every", 250}};
}

}  // namespace qkv
