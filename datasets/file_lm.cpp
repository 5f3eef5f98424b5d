#include "datasets/file_lm.h"

#include <algorithm>
#include <fstream>
#include <unordered_map>

#include <fmt/core.h>

#include "core/error.h"

namespace qkv {
namespace {

constexpr double kValFraction = 0.05, kTestFraction = 0.05;
constexpr int64_t kCharBlock = 64, kWordBlock = 32;

/// Token ids of text files in the order read, before the vocabulary exists: each distinct token
/// gets the next "raw" id.
struct RawText {
  std::vector<int32_t> ids;
  std::vector<std::string> tokens;  // raw id -> token
  std::unordered_map<std::string, int32_t> index;

  /// Appends the tokens of `path`, read a line at a time.
  void read(const std::string& path, Level level) {
    std::ifstream in(path, std::ios::binary);
    QKV_CHECK(in.good(), "cannot open lm text file '{}' (does it exist?)", path);
    std::string line;
    int64_t n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (!in.eof()) line += '\n';  // the line had one
      std::vector<std::string> toks;
      if (level == Level::kWord) {
        toks = word_tokenize(line);
      } else {
        try {
          toks = char_tokenize(line);
        } catch (const Error& e) {
          fail("{}:{}: not valid UTF-8 text ({})", path, n, e.what());
        }
      }
      for (std::string& t : toks) {
        auto [it, fresh] = index.emplace(t, static_cast<int32_t>(tokens.size()));
        if (fresh) tokens.push_back(std::move(t));
        ids.push_back(it->second);
      }
    }
    QKV_CHECK(!in.bad(), "error reading '{}'", path);
  }
};

}  // namespace

LMTask::LMTask(const nlohmann::json& j, const StoredVocab* stored) {
  TaskOptions o("lm", j);
  const DataOptions d = read_data_options(o, "lm", kValFraction, kTestFraction);
  const Level level = read_level(o, "lm", "char");
  const int64_t given_block = o.integer("block_size", 0, 0, 65536);  // 0 = from the data
  o.finish();
  options_ = o.resolved();
  const char* unit = level == Level::kWord ? "words" : "characters";

  RawText raw;
  const bool moved = data_moved("lm", d.data, stored);
  if (!moved) {
    // Ranges of `ids`: data, then val_data, then test_data; val / test carved from the end of
    // data when they have no file.
    raw.read(d.data, level);
    const auto n = static_cast<int64_t>(raw.ids.size());
    const int64_t n_test = d.test_data.empty() ? std::llround(double(n) * d.test_fraction) : 0;
    const int64_t n_val = d.val_data.empty() ? std::llround(double(n) * d.val_fraction) : 0;
    w_.begin[0] = 0;
    w_.end[0] = n - n_val - n_test;
    w_.begin[1] = w_.end[0];
    w_.end[1] = w_.begin[1] + n_val;
    w_.begin[2] = w_.end[1];
    w_.end[2] = n;
    for (const auto& [path, s] : {std::pair{d.val_data, 1}, {d.test_data, 2}}) {
      if (path.empty()) continue;
      w_.begin[s] = static_cast<int64_t>(raw.ids.size());
      raw.read(path, level);
      w_.end[s] = static_cast<int64_t>(raw.ids.size());
    }
    QKV_CHECK(w_.length(Split::kTrain) > 0, "lm: text file '{}' has no {}", d.data, unit);
  }

  if (stored && !stored->vocab.empty()) {
    vocab_ = Vocab(stored->vocab, level);
  } else {
    std::vector<std::string> seen;
    std::vector<bool> in_train(raw.tokens.size(), false);
    for (int64_t i = w_.begin[0]; i < w_.end[0]; ++i) in_train[size_t(raw.ids[size_t(i)])] = true;
    for (size_t t = 0; t < raw.tokens.size(); ++t)
      if (in_train[t]) seen.push_back(raw.tokens[t]);
    vocab_ = sorted_vocab({Vocab::kUnk}, std::move(seen), level);
  }
  // Raw ids -> vocabulary ids, in place: the one id array.
  std::vector<int32_t> to_vocab(raw.tokens.size());
  for (size_t t = 0; t < raw.tokens.size(); ++t)
    to_vocab[t] = vocab_.id_or(raw.tokens[t], vocab_.unk_id());
  w_.ids = std::move(raw.ids);
  for (Split s : kAllSplits) {
    const int k = static_cast<int>(s);
    counts_[k].tokens = w_.length(s);
    for (int64_t i = w_.begin[k]; i < w_.end[k]; ++i) {
      int32_t& id = w_.ids[size_t(i)];
      id = to_vocab[size_t(id)];
      counts_[k].unknown += id == vocab_.unk_id();
    }
  }
  report_unknown("lm", counts_, level);

  // block_size: as given, or the level's default shrunk so that every split has a window.
  const int64_t shortest =
      std::min({w_.length(Split::kTrain), w_.length(Split::kVal), w_.length(Split::kTest)});
  if (given_block > 0) {
    w_.block = given_block;
  } else if (moved) {
    w_.block = level == Level::kWord ? kWordBlock : kCharBlock;
  } else {
    w_.block = std::min(level == Level::kWord ? kWordBlock : kCharBlock, shortest - 1);
  }
  QKV_CHECK(moved || (w_.block >= 2 && shortest >= w_.block + 1),
            "lm: '{}' is too short: train, val and test need at least {} {} each for a "
            "block_size of {}, the shortest has {} (use a longer text, a smaller block_size or "
            "larger val_fraction / test_fraction)",
            d.data, std::max<int64_t>(3, w_.block + 1), unit, std::max<int64_t>(2, w_.block),
            shortest);
  options_["block_size"] = w_.block;

  // The probe: the start of val, or of train, whichever has no <unk> in it first.
  for (Split s : {Split::kVal, Split::kTrain}) {
    const int64_t len = std::min<int64_t>({level == Level::kWord ? 8 : 40, w_.block, w_.length(s)});
    const auto at = w_.ids.begin() + w_.begin[static_cast<int>(s)];
    const std::vector<int32_t> ids(at, at + len);
    if (len == 0 || std::count(ids.begin(), ids.end(), vocab_.unk_id()) > 0) continue;
    probe_ = vocab_.decode(ids);
    break;
  }
}

nlohmann::json LMTask::describe() {
  nlohmann::json options = data_option_defaults(kValFraction, kTestFraction);
  options["level"] = "char";
  options["block_size"] =
      fmt::format("{} chars or {} words (less for a short text)", kCharBlock, kWordBlock);
  return {{"arch", "decoder"}, {"options", options}, {"model", small_model_summary()}};
}

Batch LMTask::encode(const std::string& text, bool with_answer) const {
  return w_.prompt(vocab_.encode(text), with_answer);  // unknown tokens throw
}

nlohmann::json LMTask::default_model_config() const {
  return small_model_config(*this, /*tie_embeddings=*/true, /*dropout=*/0.0);
}

// About two passes over the training text's tokens, 600 to 3000 steps.
nlohmann::json LMTask::default_train_config() const {
  const int64_t batch = 32;
  const int64_t steps =
      std::clamp<int64_t>(2 * w_.length(Split::kTrain) / (batch * w_.block), 600, 3000);
  return data_train_config(steps, batch, 3e-3);
}

}  // namespace qkv
