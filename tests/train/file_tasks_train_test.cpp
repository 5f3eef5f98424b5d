// The data-file tasks (classify, seq2seq, lm) train briefly on small files this test writes and
// clearly beat chance on their test split. Each test states its chance level and the margin it
// asks for; the runs are small (a few hundred steps of a small model, a few seconds each).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "test_files.h"
#include "train/trainer.h"

namespace qkv {
namespace {

using json = nlohmann::json;

struct Brief {
  EvalResult before, after;  // the test split, untrained and trained
};

Brief train_briefly(const std::string& task, const json& overrides) {
  const RunConfig cfg = resolve_run_config(task, nullptr, overrides);
  TrainerOptions o;
  o.progress = Progress::kQuiet;
  Trainer t(cfg, o);
  Brief b;
  b.before = evaluate(t.model(), t.task(), Split::kTest);
  const TrainResult r = t.run();
  EXPECT_EQ(r.status, TrainResult::Status::kCompleted) << r.message;
  b.after = evaluate(t.model(), t.task(), Split::kTest);
  std::printf("%s: %.1f s; test loss %.3f -> %.3f, accuracy %.3f -> %.3f, tokens %.3f -> %.3f\n",
              task.c_str(), r.seconds, b.before.loss, b.after.loss, b.before.score.accuracy(),
              b.after.score.accuracy(), b.before.score.token_accuracy(),
              b.after.score.token_accuracy());
  return b;
}

json small(int64_t steps, double lr) {
  return {{"model",
           {{"d_model", 32}, {"n_heads", 2}, {"n_layers", 2}, {"d_ff", 128}, {"dropout", 0.0}}},
          {"train",
           {{"steps", steps},
            {"batch_size", 32},
            {"lr", lr},
            {"warmup", steps / 10},
            {"eval_every", steps}}}};
}

std::string write_lines(const std::string& name, const std::vector<std::string>& lines) {
  const std::string path = test::temp_path(name);
  std::ofstream out(path, std::ios::binary);
  for (const std::string& l : lines) out << l << '\n';
  return path;
}

TEST(FileTasksTrainBriefly, ClassifyFindsTheWordThatDecides) {
  // Six to nine filler words and one word from one of three groups, anywhere: the group is the
  // label. Chance is 1/3; trained, at least 85 % of unseen sentences must be right.
  const std::vector<std::string> filler = {"the", "a",     "some", "old", "red", "big",  "cat",
                                           "dog", "house", "tree", "ran", "sat", "near", "over"};
  const std::vector<std::vector<std::string>> groups = {
      {"happy", "glad", "joyful"}, {"sad", "gloomy", "unhappy"}, {"angry", "furious", "cross"}};
  const char* labels[] = {"joy", "sadness", "anger"};
  std::mt19937 rng(5);
  std::vector<std::string> lines;
  for (int i = 0; i < 900; ++i) {
    const size_t g = rng() % 3, n = 6 + rng() % 4, at = rng() % n;
    std::string text;
    for (size_t k = 0; k < n; ++k)
      text += (k ? " " : "") + (k == at ? groups[g][rng() % 3] : filler[rng() % filler.size()]);
    lines.push_back(json{{"text", text}, {"label", labels[g]}}.dump());
  }
  json o = small(160, 3e-3);
  o["task"] = {{"data", write_lines("feelings.jsonl", lines)}};
  const Brief b = train_briefly("classify", o);
  EXPECT_LT(b.before.score.accuracy(), 0.6);
  EXPECT_GT(b.after.score.accuracy(), 0.85) << "loss " << b.after.loss;
}

TEST(FileTasksTrainBriefly, Seq2SeqTranslatesWordsToDigits) {
  // One to five words from six, each to its digit, in order. A digit is right by chance about
  // one time in eight (six digits, <eos>, <unk>); trained, 80 % of target tokens must be right.
  const std::vector<std::string> words = {"zero", "one", "two", "three", "four", "five"};
  std::mt19937 rng(6);
  std::vector<std::string> lines;
  for (int i = 0; i < 1200; ++i) {
    const size_t n = 1 + rng() % 5;
    std::string source, target;
    for (size_t k = 0; k < n; ++k) {
      const size_t w = rng() % words.size();
      source += (k ? " " : "") + words[w];
      target += (k ? " " : "") + std::to_string(w);
    }
    lines.push_back(json{{"source", source}, {"target", target}}.dump());
  }
  json o = small(150, 3e-3);
  o["task"] = {{"data", write_lines("digits.jsonl", lines)}};
  const Brief b = train_briefly("seq2seq", o);
  EXPECT_LT(b.before.score.token_accuracy(), 0.3);
  EXPECT_GT(b.after.score.token_accuracy(), 0.8);
  EXPECT_GT(b.after.score.accuracy(), 0.4);
}

TEST(FileTasksTrainBriefly, LMBeatsTheUnigramModel) {
  // Sentences from a small grammar, at character level. The best model that ignores context has
  // the loss of the training text's character entropy; a trained model must go 0.5 nats below.
  const std::vector<std::string> who = {"the cat", "a dog", "my aunt", "the farmer"};
  const std::vector<std::string> did = {"saw", "fed", "found", "chased"};
  const std::vector<std::string> what = {"a red ball", "the old tree", "a small boat"};
  std::mt19937 rng(7);
  std::vector<std::string> lines;
  for (int i = 0; i < 400; ++i)
    lines.push_back(who[rng() % who.size()] + " " + did[rng() % did.size()] + " " +
                    what[rng() % what.size()] + ".");
  const json task = {{"data", write_lines("grammar.txt", lines)}, {"block_size", 32}};
  const std::unique_ptr<Task> t = make_task("lm", task);
  std::map<int32_t, double> counts;
  double total = 0;
  for (int64_t i = 0; i < t->size(Split::kTrain); i += t->max_len())
    for (const int32_t id : t->batch(Split::kTrain, {i}).targets.data) {
      counts[id] += 1;
      total += 1;
    }
  double unigram = 0;
  for (const auto& [id, c] : counts) unigram -= c / total * std::log(c / total);

  json o = small(120, 3e-3);
  o["task"] = task;
  const Brief b = train_briefly("lm", o);
  std::printf("unigram entropy %.3f nats/char\n", unigram);
  EXPECT_GT(b.before.loss, unigram);
  EXPECT_LT(b.after.loss, unigram - 0.5) << "unigram entropy " << unigram;
}

}  // namespace
}  // namespace qkv
