// What the data-file tasks (classify, seq2seq, lm) share: their common options, where each split
// comes from, a vocabulary from the training split alone, <unk> counting, and the rebuild of a
// trained model's task when its data file has moved.
//
// Splits of a JSONL file (classify, seq2seq), in this order:
//   1. val_data / test_data, when given, are the val / test splits (their "split" fields are
//      ignored).
//   2. A record of `data` with a "split" field ("train", "val" or "validation", "test") goes there.
//   3. The other records are train, except that a split with no records from 1 or 2 is drawn from
//      them at random: round(n · val_fraction) for val, then round(n · test_fraction) for test
//      (at least one each when the fraction is above 0), by a permutation seeded with `seed`. Each
//      split keeps the file's order.
// Vocabulary: "<pad>", the task's specials, then every distinct token of the TRAINING split in
// sorted (byte, = code-point) order. A val or test token outside it reads as "<unk>" and is
// counted (a note on stderr when the task is built).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/options.h"
#include "datasets/task.h"

namespace qkv {

/// The options every data-file task reads.
struct DataOptions {
  std::string data;       // required
  std::string val_data;   // "" = none
  std::string test_data;  // "" = none
  double val_fraction = 0.1;
  double test_fraction = 0.1;
  uint64_t seed = 0;
};

/// Reads seed, data (required: its absence throws, naming --data), val_data, test_data,
/// val_fraction and test_fraction (defaults as given) from `o`.
DataOptions read_data_options(TaskOptions& o, const std::string& task, double val_fraction,
                              double test_fraction);

/// The options and defaults of read_data_options, for `qkv tasks` (data: null = required).
nlohmann::json data_option_defaults(double val_fraction, double test_fraction);

/// "word" | "char" from the option `level`.
Level read_level(TaskOptions& o, const std::string& task, const std::string& def);

/// One JSONL record with where it came from ("file:line") and its split.
struct DataRecord {
  nlohmann::json value;
  std::string where;
  Split split = Split::kTrain;
};

/// Every record of the data files with its split (the rules at the top of this file). `what`
/// names the files in messages ("classify data").
std::vector<DataRecord> read_split_records(const DataOptions& o, const std::string& what);

/// The split of each record of `data` by rule 3 above; tagged[i] is record i's "split" field
/// when it has one. val_given / test_given: that split has records from a file or a field.
std::vector<Split> assign_splits(const std::vector<std::optional<Split>>& tagged, bool val_given,
                                 bool test_given, double val_fraction, double test_fraction,
                                 uint64_t seed);

/// True when a trained model's task is being rebuilt (`stored` has a vocabulary) and its data
/// file is gone; says so on stderr (once per process). The task then has empty splits and the
/// stored vocabularies.
bool data_moved(const std::string& task, const std::string& path, const StoredVocab* stored);

/// Tokens read at one split and how many of them were not in the vocabulary.
struct TokenCount {
  int64_t tokens = 0;
  int64_t unknown = 0;
};

/// Ids of `tokens`, with "<unk>" for each unknown one (counted in `count`).
std::vector<int32_t> ids_or_unk(const Vocab& vocab, const std::vector<std::string>& tokens,
                                TokenCount* count);

/// "<pad>", `specials`, then the distinct `words` in sorted order.
Vocab sorted_vocab(const std::vector<std::string>& specials, std::vector<std::string> words,
                   Level level);

/// The default model of a data-file task: d_model 64, 2 layers, 4 heads, d_ff 256, GELU, pre-LN,
/// learned positions, with the task's arch, vocabularies, lengths and classes (seq2seq adds
/// src_vocab_size and src_max_len).
nlohmann::json small_model_config(const Task& task, bool tie_embeddings, double dropout);
/// The model summary `qkv tasks` shows for small_model_config().
nlohmann::json small_model_summary();
/// Training defaults: AdamW at `lr` with a cosine schedule, warm-up a tenth of the run, clipping
/// at 1, an evaluation every fifth of the run (at least 50 steps apart).
nlohmann::json data_train_config(int64_t steps, int64_t batch_size, double lr);

/// Prints `line` and a newline on stderr unless this process printed it before: a run builds
/// its task more than once (from the config, then in the trainer), and its notes would repeat.
void note_once(const std::string& line);

/// For each split with unknown tokens, a note on stderr (once per process for the same text):
///   classify: val has 12 unknown words of 390 (3.1%), read as <unk>
void report_unknown(const std::string& task, const TokenCount (&counts)[3], Level level);

}  // namespace qkv
