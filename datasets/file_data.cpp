#include "datasets/file_data.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include <fmt/core.h>

#include "core/error.h"
#include "core/rng.h"
#include "datasets/jsonl.h"

namespace qkv {

void note_once(const std::string& line) {
  static std::set<std::string> said;
  if (said.insert(line).second) fmt::print(stderr, "{}\n", line);
}

DataOptions read_data_options(TaskOptions& o, const std::string& task, double val_fraction,
                              double test_fraction) {
  DataOptions d;
  d.seed = o.seed();
  d.data = o.string("data", "");
  d.val_data = o.string("val_data", "");
  d.test_data = o.string("test_data", "");
  d.val_fraction = o.number("val_fraction", val_fraction, 0.0, 0.5);
  d.test_fraction = o.number("test_fraction", test_fraction, 0.0, 0.5);
  QKV_CHECK(!d.data.empty(),
            "{}: no data file given: pass --data FILE (or \"data\" in the config's task)", task);
  return d;
}

nlohmann::json data_option_defaults(double val_fraction, double test_fraction) {
  return {{"data", nullptr},
          {"val_data", nullptr},
          {"test_data", nullptr},
          {"val_fraction", val_fraction},
          {"test_fraction", test_fraction},
          {"seed", 0}};
}

Level read_level(TaskOptions& o, const std::string& task, const std::string& def) {
  const std::string level = o.string("level", def);
  QKV_CHECK(level == "word" || level == "char",
            "{}: option 'level' must be \"word\" or \"char\", got \"{}\"", task, level);
  return level == "word" ? Level::kWord : Level::kChar;
}

std::vector<Split> assign_splits(const std::vector<std::optional<Split>>& tagged, bool val_given,
                                 bool test_given, double val_fraction, double test_fraction,
                                 uint64_t seed) {
  std::vector<Split> out(tagged.size(), Split::kTrain);
  std::vector<size_t> untagged;
  for (size_t i = 0; i < tagged.size(); ++i) {
    if (tagged[i])
      out[i] = *tagged[i];
    else
      untagged.push_back(i);
  }
  const auto n = static_cast<int64_t>(untagged.size());
  auto drawn = [n](bool given, double fraction) -> int64_t {
    if (given || fraction <= 0 || n == 0) return 0;
    return std::max<int64_t>(1, std::llround(double(n) * fraction));
  };
  const int64_t n_val = drawn(val_given, val_fraction);
  const int64_t n_test = std::min(n - n_val, drawn(test_given, test_fraction));
  Rng rng(seed);
  const std::vector<int64_t> perm = rng.permutation(n);
  for (int64_t k = 0; k < n_val + n_test; ++k)
    out[untagged[size_t(perm[size_t(k)])]] = k < n_val ? Split::kVal : Split::kTest;
  return out;
}

std::vector<DataRecord> read_split_records(const DataOptions& o, const std::string& what) {
  std::vector<DataRecord> records;
  std::vector<std::optional<Split>> tagged;
  bool val_given = !o.val_data.empty(), test_given = !o.test_data.empty();
  read_jsonl(o.data, what, [&](const nlohmann::json& j, const std::string& where) {
    const std::string s = string_field(j, "split", where, false);
    std::optional<Split> split;
    if (!s.empty()) {
      try {
        split = parse_split(s);
      } catch (const Error& e) {
        fail("{}: {}", where, e.what());
      }
      val_given |= *split == Split::kVal;
      test_given |= *split == Split::kTest;
    }
    tagged.push_back(split);
    records.push_back({j, where, Split::kTrain});
  });
  const std::vector<Split> splits =
      assign_splits(tagged, val_given, test_given, o.val_fraction, o.test_fraction, o.seed);
  for (size_t i = 0; i < records.size(); ++i) records[i].split = splits[i];
  for (const auto& [path, split] :
       {std::pair{o.val_data, Split::kVal}, {o.test_data, Split::kTest}}) {
    if (path.empty()) continue;
    read_jsonl(path, what, [&, split = split](const nlohmann::json& j, const std::string& where) {
      records.push_back({j, where, split});
    });
  }
  return records;
}

bool data_moved(const std::string& task, const std::string& path, const StoredVocab* stored) {
  if (!stored || stored->vocab.empty() || path.empty() || std::filesystem::exists(path))
    return false;
  note_once(
      fmt::format("qkv: note: {}'s data file '{}' is not there any more; using the checkpoint's "
                  "vocabulary ({} tokens), with empty splits",
                  task, path, stored->vocab.size()));
  return true;
}

std::vector<int32_t> ids_or_unk(const Vocab& vocab, const std::vector<std::string>& tokens,
                                TokenCount* count) {
  const int32_t unk = vocab.unk_id();
  QKV_CHECK(unk >= 0, "the vocabulary has no '{}' token for unknown words", Vocab::kUnk);
  std::vector<int32_t> out;
  out.reserve(tokens.size());
  for (const std::string& t : tokens) {
    const int32_t id = vocab.id_or(t, unk);
    out.push_back(id);
    count->unknown += id == unk;
  }
  count->tokens += static_cast<int64_t>(tokens.size());
  return out;
}

Vocab sorted_vocab(const std::vector<std::string>& specials, std::vector<std::string> words,
                   Level level) {
  std::sort(words.begin(), words.end());
  words.erase(std::unique(words.begin(), words.end()), words.end());
  return Vocab::build(specials, words, level);
}

namespace {
constexpr int64_t kDModel = 64, kLayers = 2, kHeads = 4;
}  // namespace

nlohmann::json small_model_config(const Task& task, bool tie_embeddings, double dropout) {
  nlohmann::json m = {{"arch", arch_name(task.arch())},
                      {"vocab_size", task.vocab().size()},
                      {"max_len", task.max_len()},
                      {"d_model", kDModel},
                      {"n_heads", kHeads},
                      {"n_layers", kLayers},
                      {"d_ff", 4 * kDModel},
                      {"activation", "gelu"},
                      {"norm", "pre"},
                      {"pos", "learned"},
                      {"tie_embeddings", tie_embeddings},
                      {"n_out", task.n_out()},
                      {"dropout", dropout},
                      {"ln_eps", 1e-5}};
  if (task.arch() == Arch::kSeq2seq) {
    m["src_vocab_size"] = task.src_vocab().size();
    m["src_max_len"] = task.src_max_len();
  }
  return m;
}

nlohmann::json small_model_summary() {
  return {{"d_model", kDModel}, {"n_layers", kLayers}, {"n_heads", kHeads}};
}

nlohmann::json data_train_config(int64_t steps, int64_t batch_size, double lr) {
  return {{"steps", steps},
          {"batch_size", batch_size},
          {"lr", lr},
          {"optimizer", "adamw"},
          {"weight_decay", 0.01},
          {"warmup", steps / 10},
          {"schedule", "cosine"},
          {"clip", 1.0},
          {"eval_every", std::max<int64_t>(50, steps / 5)}};
}

void report_unknown(const std::string& task, const TokenCount (&counts)[3], Level level) {
  for (Split s : kAllSplits) {
    const TokenCount& c = counts[static_cast<int>(s)];
    if (c.unknown == 0) continue;
    const char* unit = level == Level::kWord ? (c.unknown == 1 ? "word" : "words")
                                             : (c.unknown == 1 ? "character" : "characters");
    note_once(fmt::format("{}: {} has {} unknown {} of {} ({:.1f}%), read as {}", task,
                          split_name(s), c.unknown, unit, c.tokens,
                          100.0 * double(c.unknown) / double(c.tokens), Vocab::kUnk));
  }
}

}  // namespace qkv
