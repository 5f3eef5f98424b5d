// Task: a toy problem with a vocabulary and train / val / test splits, deterministic from a seed.
//
//   auto task = make_task("pronoun", {{"seed", 1}});
//   Batch b = task->batch(Split::kTrain, {0, 1, 2, 3});       // padded to the longest example
//   ModelConfig m = ModelConfig::from_json(task->default_model_config());
//
// What a batch holds, by arch (B examples, T tokens, S source tokens; pad id 0, mask 1 = real):
//   encoder  tokens [B,T], mask [B,T], targets [B] (class in [0, n_out)), positions [B] (read-out
//            index).
//   decoder  tokens [B,T], mask [B,T], targets [B,T] = next token, -1 on prompt and padding, so
//            loss and accuracy count only the answer.
//   seq2seq  src [B,S], src_mask [B,S]; tokens [B,T] = "<bos> y1..yn" (decoder input), mask [B,T],
//            targets [B,T] = "y1..yn <eos>", -1 on padding.
// Metrics (score()): encoder: accuracy of the read-out class; decoder and seq2seq: exact-sequence
// accuracy (an example counts when every one of its non-ignored targets is right) plus token
// accuracy over non-ignored targets.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/arch.h"
#include "core/batch.h"
#include "datasets/probe.h"
#include "datasets/vocab.h"

namespace qkv {

enum class Split { kTrain, kVal, kTest };

/// "train", "val", "test".
const char* split_name(Split split);
/// Parses "train" | "val" | "test" (also "validation"); throws qkv::Error otherwise.
Split parse_split(const std::string& name);
/// The three splits, in order.
constexpr Split kAllSplits[] = {Split::kTrain, Split::kVal, Split::kTest};

/// Counts behind the metrics; add the Scores of several batches with +=.
struct Score {
  int64_t examples = 0;          // examples with at least one non-ignored target
  int64_t correct_examples = 0;  // ... of which every target was predicted right
  int64_t tokens = 0;            // non-ignored targets (= examples for an encoder)
  int64_t correct_tokens = 0;

  /// Encoder: read-out accuracy; decoder / seq2seq: exact-sequence accuracy. 0 when empty.
  double accuracy() const { return examples ? double(correct_examples) / double(examples) : 0.0; }
  /// Fraction of non-ignored targets predicted right. 0 when empty.
  double token_accuracy() const { return tokens ? double(correct_tokens) / double(tokens) : 0.0; }
  Score& operator+=(const Score& o);
};

/// Scores predicted ids (the argmax of the logits) against batch.targets: `predicted` has the
/// targets' shape, [B] for an encoder or [B,T] for a decoder / seq2seq. Targets of -1 are ignored.
Score score_predictions(const Batch& batch, const IndexTensor& predicted);

class Task {
 public:
  virtual ~Task() = default;

  /// The factory name ("pronoun", "copy", ...).
  virtual std::string name() const = 0;
  /// The architecture the task's batches are for.
  virtual Arch arch() const = 0;
  /// The options the task was made with, every default filled in: make_task(name(), options())
  /// rebuilds the same task (a checkpoint stores this as its task config).
  virtual nlohmann::json options() const = 0;

  /// Vocabulary of `tokens` and, for decoders, of the targets.
  virtual const Vocab& vocab() const = 0;
  /// Vocabulary of `src` (seq2seq); vocab() for the other archs.
  virtual const Vocab& src_vocab() const { return vocab(); }
  /// Classes of the encoder head; vocab().size() for decoders and seq2seq.
  virtual int64_t n_out() const { return vocab().size(); }
  /// Longest `tokens` row any batch of any split can have.
  virtual int64_t max_len() const = 0;
  /// Longest `src` row (seq2seq); max_len() for the other archs.
  virtual int64_t src_max_len() const { return max_len(); }

  /// Number of examples in a split.
  virtual int64_t size(Split split) const = 0;
  /// The examples at `indices` (each in [0, size(split)), repeats allowed, not empty), padded to
  /// the longest of them. Same task options + same indices = identical batch.
  virtual Batch batch(Split split, const std::vector<int64_t>& indices) const = 0;
  /// Examples [start, start + count) clipped to the split: the batches an evaluation walks.
  Batch batch_range(Split split, int64_t start, int64_t count) const;

  /// A batch of one example for text as a person would type it (the probe, `qkv attend`,
  /// `qkv generate`). with_answer: the whole example with its targets when the task can work out
  /// the answer (targets -1 where it cannot); otherwise only the prompt a decoder continues from
  /// ("<bos> 3 1 4 <sep>" for copy, "<bos>" with the source for seq2seq). Unknown words throw
  /// qkv::Error with suggestions.
  virtual Batch encode(const std::string& text, bool with_answer = true) const = 0;
  /// A sentence that shows what the task is about, for pictures and `qkv attend`.
  virtual std::string probe() const = 0;
  /// Text of `tokens` / `targets` ids (vocab()), pads dropped.
  virtual std::string decode(const std::vector<int32_t>& ids) const { return vocab().decode(ids); }
  /// Text of `src` ids (src_vocab()), pads dropped.
  virtual std::string decode_src(const std::vector<int32_t>& ids) const {
    return src_vocab().decode(ids);
  }
  /// How `qkv attend` words an encoder's prediction: class `class_name` read out at the token
  /// `readout` ("'negative' (read out at '<cls>')"; the pronoun task: "'it' refers to 'animal'").
  virtual std::string prediction_text(const std::string& readout,
                                      const std::string& class_name) const {
    return "'" + class_name + "' (read out at '" + readout + "')";
  }
  /// Name of an encoder class (the token for tasks that classify over the vocabulary).
  virtual std::string class_name(int32_t c) const { return vocab().token(c); }

  /// A model config (the keys of docs/model.md, src_vocab_size / src_max_len for seq2seq) sized
  /// for this task.
  virtual nlohmann::json default_model_config() const = 0;
  /// Training hyper-parameters: steps, batch_size, lr, optimizer, weight_decay, warmup, schedule,
  /// clip, eval_every.
  virtual nlohmann::json default_train_config() const = 0;
  /// Whether best.h5 is the lowest val loss rather than the highest val accuracy: language
  /// models, whose exact-sequence accuracy says little.
  virtual bool best_by_loss() const { return false; }

  /// The task's own diagnostics, fresh (see datasets/probe.h); none by default.
  virtual std::vector<std::unique_ptr<Probe>> probes() const { return {}; }

  /// score_predictions(), for this task's batches.
  Score score(const Batch& batch, const IndexTensor& predicted) const {
    return score_predictions(batch, predicted);
  }
};

/// What a checkpoint stores of its task besides the options: the vocabularies its model was
/// trained with (id i = token i). A task whose data file has moved rebuilds itself from them.
struct StoredVocab {
  std::vector<std::string> vocab;      // empty = none stored
  std::vector<std::string> src_vocab;  // seq2seq; empty = none stored
};

/// Builds a task from its options (a JSON object or null; null values count as absent) and, when
/// rebuilding a trained model's task, the vocabularies stored with it (nullptr for a fresh run).
/// A task that builds its vocabulary from a data file must use `stored` when given, so ids keep
/// their meaning, and must still work (encode, decode, empty splits) when the file is gone.
using TaskFactory =
    std::function<std::unique_ptr<Task>(const nlohmann::json& options, const StoredVocab* stored)>;

/// A registry entry: the extension point for users' own tasks.
struct TaskInfo {
  std::string name;     // what --task and the checkpoint's task config say
  std::string summary;  // one line for `qkv tasks`
  TaskFactory make;
  /// For a task that make_task(name) cannot build from its defaults alone (it needs a data
  /// file), what `qkv tasks` shows instead: {"arch": …, "options": {key: default, null =
  /// required}, "model": {"d_model": …, "n_layers": …, "n_heads": …}}. Null for the others.
  nlohmann::json describe = nullptr;
};

/// Adds a task to the registry; throws qkv::Error when the name is empty or already taken.
void register_task(TaskInfo info);
/// Every registered task (built-in and registered), in alphabetical order of name.
std::vector<TaskInfo> registered_tasks();
/// Names of registered_tasks(), in alphabetical order.
std::vector<std::string> known_tasks();
/// Builds a task by name. options: a JSON object (or null) with "seed" (default 0) and the task's
/// own keys; null values count as absent. Unknown names and unknown or ill-typed options throw
/// qkv::Error listing what is accepted. With `stored` (a trained model's vocabularies), the task
/// is rebuilt with exactly those vocabularies; a task whose vocabulary then differs throws.
std::unique_ptr<Task> make_task(const std::string& name, const nlohmann::json& options = {},
                                const StoredVocab* stored = nullptr);

// Batch assembly shared by the tasks (pad id 0; mask 1 = real token).

/// Throws qkv::Error unless indices is non-empty and each index is in [0, task.size(split)).
void check_indices(const Task& task, Split split, const std::vector<int64_t>& indices);

/// Encoder batch: rows of ids, one class and one read-out position per row.
Batch pack_encoder(const std::vector<std::vector<int32_t>>& rows,
                   const std::vector<int32_t>& targets, const std::vector<int32_t>& positions);
/// Decoder batch: rows of ids and of per-token targets (same lengths; padding targets are -1).
Batch pack_decoder(const std::vector<std::vector<int32_t>>& rows,
                   const std::vector<std::vector<int32_t>>& targets);
/// Seq2seq batch: decoder rows and targets as pack_decoder, plus source rows.
Batch pack_seq2seq(const std::vector<std::vector<int32_t>>& src,
                   const std::vector<std::vector<int32_t>>& rows,
                   const std::vector<std::vector<int32_t>>& targets);

}  // namespace qkv
