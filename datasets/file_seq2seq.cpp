#include "datasets/file_seq2seq.h"

#include <algorithm>

#include <fmt/core.h>

#include "core/error.h"
#include "datasets/jsonl.h"

namespace qkv {
namespace {

constexpr double kValFraction = 0.1, kTestFraction = 0.1;
constexpr int64_t kMaxLenCap = 256;

/// A field's tokens at `level`; `where` prefixes messages.
std::vector<std::string> field_tokens(const DataRecord& r, const char* key, Level level) {
  const std::string text = string_field(r.value, key, r.where, true);
  std::vector<std::string> tokens;
  try {
    tokens = level == Level::kWord ? word_tokenize(text) : char_tokenize(text);
  } catch (const Error& e) {
    fail("{}: field '{}': {}", r.where, key, e.what());
  }
  QKV_CHECK(!tokens.empty(), "{}: field '{}' is empty", r.where, key);
  return tokens;
}

}  // namespace

Seq2SeqTask::Seq2SeqTask(const nlohmann::json& j, const StoredVocab* stored) {
  TaskOptions o("seq2seq", j);
  const DataOptions d = read_data_options(o, "seq2seq", kValFraction, kTestFraction);
  const Level level = read_level(o, "seq2seq", "word");
  const int64_t cap = o.integer("max_len", kMaxLenCap, 2, 65536);
  const int64_t src_cap = o.integer("src_max_len", kMaxLenCap, 1, 65536);
  o.finish();

  struct Parsed {
    std::vector<std::string> src, target;
    Split split;
  };
  std::vector<Parsed> parsed;
  int64_t cut = 0;
  if (!data_moved("seq2seq", d.data, stored)) {
    for (const DataRecord& r : read_split_records(d, "seq2seq data")) {
      Parsed p{field_tokens(r, "source", level), field_tokens(r, "target", level), r.split};
      const bool long_src = static_cast<int64_t>(p.src.size()) > src_cap;
      const bool long_target = static_cast<int64_t>(p.target.size()) + 1 > cap;
      if (long_src) p.src.resize(static_cast<size_t>(src_cap));
      if (long_target) p.target.resize(static_cast<size_t>(cap - 1));
      cut += long_src || long_target;
      parsed.push_back(std::move(p));
    }
    QKV_CHECK(!parsed.empty(), "seq2seq: data file '{}' has no records", d.data);
  }
  if (cut > 0)
    note_once(fmt::format(
        "seq2seq: {} pairs longer than src_max_len {} / max_len {} (with <bos>) were cut", cut,
        src_cap, cap));

  if (stored && !stored->vocab.empty()) {
    QKV_CHECK(!stored->src_vocab.empty(),
              "seq2seq: the checkpoint stores no source vocabulary (/src_vocab)");
    vocab_ = Vocab(stored->vocab, level);
    src_vocab_ = Vocab(stored->src_vocab, level);
  } else {
    std::vector<std::string> src, target;
    for (const Parsed& p : parsed) {
      if (p.split != Split::kTrain) continue;
      src.insert(src.end(), p.src.begin(), p.src.end());
      target.insert(target.end(), p.target.begin(), p.target.end());
    }
    src_vocab_ = sorted_vocab({Vocab::kUnk}, std::move(src), level);
    vocab_ = sorted_vocab({Vocab::kUnk, Vocab::kBos, Vocab::kEos}, std::move(target), level);
  }

  max_len_ = parsed.empty() ? cap : 0;
  src_max_len_ = parsed.empty() ? src_cap : 0;
  for (const Parsed& p : parsed) {
    TokenCount* count = &counts_[static_cast<int>(p.split)];
    Pair pair{ids_or_unk(src_vocab_, p.src, count), ids_or_unk(vocab_, p.target, count)};
    max_len_ = std::max<int64_t>(max_len_, static_cast<int64_t>(pair.target.size()) + 1);
    src_max_len_ = std::max<int64_t>(src_max_len_, static_cast<int64_t>(pair.src.size()));
    splits_[static_cast<int>(p.split)].push_back(std::move(pair));
  }
  QKV_CHECK(parsed.empty() || !splits_[0].empty(),
            "seq2seq: '{}' leaves no training pairs ({} records, val_fraction {}, test_fraction "
            "{})",
            d.data, parsed.size(), d.val_fraction, d.test_fraction);
  report_unknown("seq2seq", counts_, level);

  options_ = o.resolved();
  options_["max_len"] = max_len_;
  options_["src_max_len"] = src_max_len_;
  // The probe: the first val source without unknown tokens (else the first train source).
  const Pair* probe = splits_[0].empty() ? nullptr : &splits_[0][0];
  for (const Pair& p : splits_[1]) {
    if (std::count(p.src.begin(), p.src.end(), src_vocab_.unk_id()) > 0) continue;
    probe = &p;
    break;
  }
  if (probe) probe_ = src_vocab_.decode(probe->src);
}

nlohmann::json Seq2SeqTask::describe() {
  nlohmann::json options = data_option_defaults(kValFraction, kTestFraction);
  options["level"] = "word";
  options["max_len"] = fmt::format("the longest target + 1 (at most {})", kMaxLenCap);
  options["src_max_len"] = fmt::format("the longest source (at most {})", kMaxLenCap);
  return {{"arch", "seq2seq"}, {"options", options}, {"model", small_model_summary()}};
}

int64_t Seq2SeqTask::size(Split split) const {
  return static_cast<int64_t>(splits_[static_cast<int>(split)].size());
}

Batch Seq2SeqTask::batch(Split split, const std::vector<int64_t>& indices) const {
  check_indices(*this, split, indices);
  std::vector<std::vector<int32_t>> src, rows, targets;
  for (int64_t i : indices) {
    const Pair& p = splits_[static_cast<int>(split)][static_cast<size_t>(i)];
    src.push_back(p.src);
    std::vector<int32_t> row = {vocab_.bos_id()}, target = p.target;
    row.insert(row.end(), p.target.begin(), p.target.end());
    target.push_back(vocab_.eos_id());
    rows.push_back(std::move(row));
    targets.push_back(std::move(target));
  }
  return pack_seq2seq(src, rows, targets);
}

Batch Seq2SeqTask::encode(const std::string& text, bool /*with_answer*/) const {
  std::vector<int32_t> src = src_vocab_.encode(text);  // unknown tokens throw, with suggestions
  QKV_CHECK(!src.empty(), "seq2seq: the source text is empty");
  if (static_cast<int64_t>(src.size()) > src_max_len_) src.resize(size_t(src_max_len_));
  return pack_seq2seq({src}, {{vocab_.bos_id()}}, {{-1}});
}

nlohmann::json Seq2SeqTask::default_model_config() const {
  return small_model_config(*this, /*tie_embeddings=*/true, /*dropout=*/0.0);
}

// About 8 passes over the training split (200 to 3000 steps). On examples/data/dates.jsonl val
// exact-sequence accuracy is 100 % by step 150.
nlohmann::json Seq2SeqTask::default_train_config() const {
  const int64_t n = std::max<int64_t>(1, size(Split::kTrain));
  const int64_t batch = std::min<int64_t>(64, n);
  const int64_t steps = std::clamp<int64_t>(8 * n / batch, 200, 3000);
  return data_train_config(steps, batch, 2e-3);
}

}  // namespace qkv
