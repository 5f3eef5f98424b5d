#include "datasets/pronoun.h"

#include <algorithm>
#include <set>
#include <sstream>
#include <utility>

#include "core/error.h"
#include "core/rng.h"
#include "datasets/options.h"

namespace qkv {
namespace {

const std::vector<std::string> kPeople = {"man", "woman", "group"};

std::vector<std::string> split_spaces(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

bool is_pronoun(const std::string& t) {
  return t == "it" || t == "he" || t == "she" || t == "they" || t == Vocab::kBlank;
}

std::string pronoun_of(const std::string& noun) {
  for (const NounClass& c : pronoun_noun_classes())
    if (std::find(c.nouns.begin(), c.nouns.end(), noun) != c.nouns.end()) return c.pronoun;
  fail("pronoun: '{}' is not a noun of the lexicon", noun);
}

std::vector<std::string> nouns_of(const std::vector<std::string>& classes) {
  std::vector<std::string> out;
  for (const std::string& name : classes) {
    bool found = false;
    for (const NounClass& c : pronoun_noun_classes()) {
      if (c.name != name) continue;
      found = true;
      for (const std::string& n : c.nouns)
        if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
    }
    QKV_CHECK(found, "pronoun: unknown noun class '{}'", name);
  }
  return out;
}

std::pair<std::string, std::string> unordered(const std::string& a, const std::string& b) {
  return a < b ? std::make_pair(a, b) : std::make_pair(b, a);
}

// "the trophy" -> "trophy": the option's head word (leading articles dropped, last word kept).
std::string head_word(const std::string& option, const std::string& where) {
  std::vector<std::string> w = word_tokenize(option);
  while (!w.empty() && (w.front() == "the" || w.front() == "a" || w.front() == "an"))
    w.erase(w.begin());
  QKV_CHECK(!w.empty(), "{}: option '{}' has no word", where, option);
  return w.back();
}

// Tokens of a WinoGrande sentence: the words, with "<blank>" where the '_' stands.
std::vector<std::string> blank_tokens(const std::string& sentence, size_t* blank_index) {
  const size_t at = sentence.find('_');
  std::vector<std::string> out = word_tokenize(sentence.substr(0, at));
  if (at == std::string::npos) return out;
  *blank_index = out.size();
  out.push_back(Vocab::kBlank);
  for (std::string& w : word_tokenize(sentence.substr(at + 1))) out.push_back(std::move(w));
  return out;
}

int32_t find_token(const std::vector<int32_t>& tokens, int32_t id) {
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] == id) return static_cast<int32_t>(i);
  return -1;
}

}  // namespace

const std::vector<NounClass>& pronoun_noun_classes() {
  static const std::vector<NounClass> classes = {
      {"animal",
       "it",
       {"animal", "dog", "cat", "horse", "cow", "goat", "deer", "sheep", "donkey", "pig"}},
      {"crossing",
       "it",
       {"street", "road", "river", "bridge", "highway", "stream", "railway", "canal"}},
      {"predator", "it", {"cat", "dog", "fox", "wolf", "owl", "hawk", "lion", "snake"}},
      {"prey", "it", {"mouse", "rabbit", "bird", "squirrel", "frog", "chicken", "fish", "lizard"}},
      {"object",
       "it",
       {"trophy", "book", "ball", "lamp", "laptop", "vase", "bottle", "pillow", "blanket", "helmet",
        "statue", "guitar", "clock", "candle", "mirror", "radio"}},
      {"container",
       "it",
       {"suitcase", "box", "bag", "bucket", "basket", "drawer", "backpack", "crate", "jar",
        "cupboard"}},
      {"surface",
       "it",
       {"shelf", "table", "desk", "bench", "counter", "cabinet", "stool", "dresser"}},
      {"vehicle", "it", {"car", "truck", "bus", "van", "tractor", "bike", "motorcycle", "scooter"}},
      {"pourer", "it", {"bottle", "jug", "pitcher", "kettle", "bucket", "flask"}},
      {"receiver", "it", {"cup", "bowl", "mug", "jar", "pot", "tank"}},
      {"man",
       "he",
       {"man", "boy", "father", "king", "brother", "uncle", "son", "prince", "husband",
        "grandfather"}},
      {"woman",
       "she",
       {"woman", "girl", "mother", "queen", "sister", "aunt", "daughter", "princess", "wife",
        "grandmother"}},
      {"group",
       "they",
       {"students", "teachers", "workers", "soldiers", "children", "players", "farmers", "parents",
        "neighbors", "tourists"}},
      {"officials", "they", {"councilmen", "officials", "guards", "managers", "judges", "mayors"}},
      {"protesters",
       "they",
       {"protesters", "demonstrators", "activists", "strikers", "rebels", "marchers"}},
  };
  return classes;
}

const std::vector<PronounTemplate>& pronoun_templates() {
  static const std::vector<PronounTemplate> templates = {
      {"cross",
       "the {A} didn't cross the {B} because {P} {was} too {T}",
       {"animal"},
       {"crossing"},
       {"tired", "scared", "slow"},
       {"wide", "busy", "icy"}},
      {"cross_front",
       "because {P} {was} too {T} , the {A} didn't cross the {B}",
       {"animal"},
       {"crossing"},
       {"tired", "scared", "slow"},
       {"wide", "busy", "icy"}},
      {"fit",
       "the {A} didn't fit in the {B} because {P} {was} too {T}",
       {"object"},
       {"container"},
       {"big", "large", "tall"},
       {"small", "full", "narrow"}},
      {"hold",
       "the {A} couldn't hold the {B} because {P} {was} too {T}",
       {"container"},
       {"object"},
       {"small", "full", "weak"},
       {"big", "heavy", "large"}},
      {"lift",
       "the {A} couldn't lift the {B} because {P} {was} too {T}",
       kPeople,
       kPeople,
       {"weak", "tired"},
       {"heavy", "big"}},
      {"thank",
       "the {A} thanked the {B} for the help {P} had {T}",
       kPeople,
       kPeople,
       {"received", "gotten"},
       {"given", "offered"}},
      {"caught",
       "the {A} caught the {B} because {P} {was} so {T}",
       {"predator"},
       {"prey"},
       {"fast", "quick", "clever"},
       {"slow", "sick", "careless"}},
      {"escape",
       "the {A} tried to catch the {B} but {P} {was} too {T}",
       {"predator"},
       {"prey"},
       {"slow", "clumsy"},
       {"fast", "quick"}},
      {"fell",
       "the {A} fell off the {B} because {P} {wasnt} {T}",
       {"object"},
       {"surface"},
       {"anchored", "fastened", "attached"},
       {"level", "flat", "steady"}},
      {"crash",
       "the {A} crashed through the {B} because {P} {was} made of {T}",
       {"object"},
       {"surface"},
       {"steel", "iron", "stone"},
       {"glass", "paper", "cardboard"}},
      {"placed",
       "the {A} was placed {T} the {B} so {P} had to be moved first",
       {"container"},
       {"container"},
       {"above", "on", "over"},
       {"below", "under", "beneath"}},
      {"arrive",
       "the {A} arrived {T} the {B} because {P} {was} coming from far away",
       kPeople,
       kPeople,
       {"after"},
       {"before"}},
      {"permit",
       "the {A} refused the {B} a permit because {P} {T} violence",
       {"officials"},
       {"protesters"},
       {"feared", "hated", "opposed"},
       {"advocated", "wanted", "promoted"}},
      {"pour",
       "water was poured from the {A} into the {B} until {P} {was} {T}",
       {"pourer"},
       {"receiver"},
       {"empty"},
       {"full"}},
      {"trust",
       "the {A} didn't trust the {B} because {P} {was} {T}",
       kPeople,
       kPeople,
       {"suspicious", "cautious", "careful"},
       {"dishonest", "sneaky", "rude"}},
      {"call",
       "the {A} tried to call the {B} but {P} {wasnt} {T}",
       kPeople,
       kPeople,
       {"successful", "patient"},
       {"available", "awake"}},
      {"overtake",
       "the {A} overtook the {B} because {P} {was} so {T}",
       {"vehicle"},
       {"vehicle"},
       {"fast", "powerful", "light"},
       {"slow", "heavy", "loaded"}},
      {"chess",
       "the {A} beat the {B} at chess because {P} {was} so {T}",
       kPeople,
       kPeople,
       {"skilled", "smart", "focused"},
       {"distracted", "careless", "nervous"}},
      {"gift",
       "the {A} gave the {B} a gift because {P} {was} {T}",
       kPeople,
       kPeople,
       {"generous", "kind"},
       {"sad", "lonely"}},
      {"sank",
       "the {A} {was} heavier than the {B} so {P} {T}",
       {"object"},
       {"object"},
       {"sank", "dropped"},
       {"floated", "rose"}},
  };
  return templates;
}

std::vector<std::string> pronoun_nouns() {
  std::set<std::string> s;
  for (const NounClass& c : pronoun_noun_classes()) s.insert(c.nouns.begin(), c.nouns.end());
  return {s.begin(), s.end()};
}

std::vector<std::string> pronoun_triggers() {
  std::set<std::string> s;
  for (const PronounTemplate& t : pronoun_templates()) {
    s.insert(t.a_triggers.begin(), t.a_triggers.end());
    s.insert(t.b_triggers.begin(), t.b_triggers.end());
  }
  return {s.begin(), s.end()};
}

PronounTask::PronounTask(const nlohmann::json& j) {
  TaskOptions o("pronoun", j);
  const uint64_t seed = o.seed();
  const int64_t combos = o.integer("combos_per_template", 48, 0, 1000000);
  val_fraction_ = o.number("val_fraction", 0.1, 0.0, 0.5);
  test_fraction_ = o.number("test_fraction", 0.1, 0.0, 0.5);
  const std::string data = o.string("data", "");
  o.finish();
  options_ = o.resolved();
  if (data.empty()) {
    generate(seed, combos);
  } else {
    import(data);
    std::vector<PronounExample> all;
    for (auto& s : splits_)
      for (auto& e : s) all.push_back(std::move(e));
    assign_splits(std::move(all), seed, {});
  }
  for (int s = 0; s < 3; ++s) {
    for (size_t i = 0; i < splits_[s].size(); ++i) {
      lookup_.emplace(splits_[s][i].tokens, std::make_pair(s, i));
      max_len_ = std::max<int64_t>(max_len_, static_cast<int64_t>(splits_[s][i].tokens.size()));
    }
  }
  max_len_ = (max_len_ + 7) / 8 * 8;  // room for a user's slightly longer sentence
}

namespace {

using NounPair = std::pair<std::string, std::string>;

bool is_forced(const std::vector<NounPair>& forced, const std::string& a, const std::string& b) {
  return std::find(forced.begin(), forced.end(), unordered(a, b)) != forced.end();
}

// The vocabulary: every word any template can produce, alphabetically, after <pad> and <blank>.
Vocab template_vocab() {
  std::set<std::string> words = {"it",   "he",     "she",     "they", "was",
                                 "were", "wasn't", "weren't", ".",    ","};
  for (const PronounTemplate& t : pronoun_templates()) {
    for (const std::string& w : split_spaces(t.text))
      if (w.front() != '{') words.insert(w);
    words.insert(t.a_triggers.begin(), t.a_triggers.end());
    words.insert(t.b_triggers.begin(), t.b_triggers.end());
  }
  for (const std::string& n : pronoun_nouns()) words.insert(n);
  return Vocab::build({Vocab::kBlank}, {words.begin(), words.end()});
}

// The (first noun, second noun) combinations a template is written with: every pair of distinct
// nouns of its slot classes with the same pronoun, in a seeded random order, cut to `cap`
// (0 = all) but never cutting a forced pair.
std::vector<NounPair> choose_combos(const PronounTemplate& t, const std::vector<NounPair>& forced,
                                    int64_t cap, Rng& rng) {
  std::vector<NounPair> combos, chosen;
  for (const std::string& a : nouns_of(t.a_classes))
    for (const std::string& b : nouns_of(t.b_classes))
      if (a != b && pronoun_of(a) == pronoun_of(b)) combos.emplace_back(a, b);
  for (int64_t k : rng.permutation(static_cast<int64_t>(combos.size()))) {
    const NounPair& c = combos[static_cast<size_t>(k)];
    if (is_forced(forced, c.first, c.second)) {
      chosen.insert(chosen.begin(), c);
    } else {
      chosen.push_back(c);
    }
  }
  size_t keep = cap > 0 ? static_cast<size_t>(cap) : chosen.size();
  for (size_t i = 0; i < chosen.size(); ++i)
    if (is_forced(forced, chosen[i].first, chosen[i].second)) keep = std::max(keep, i + 1);
  chosen.resize(std::min(keep, chosen.size()));
  return chosen;
}

// One sentence: template `ti` with nouns a, b and a trigger whose referent is slot 0 (a) or 1 (b).
PronounExample fill_template(const Vocab& vocab, size_t ti, const std::string& a,
                             const std::string& b, const std::string& trigger, int slot) {
  const PronounTemplate& t = pronoun_templates()[ti];
  const std::string p = pronoun_of(a);
  PronounExample e;
  int32_t pos_a = -1, pos_b = -1;
  for (const std::string& w : split_spaces(t.text)) {
    const auto i = static_cast<int32_t>(e.tokens.size());
    std::string word = w;
    if (w == "{A}") {
      word = a;
      pos_a = i;
    } else if (w == "{B}") {
      word = b;
      pos_b = i;
    } else if (w == "{P}") {
      word = p;
      e.position = i;
    } else if (w == "{T}") {
      word = trigger;
    } else if (w == "{was}") {
      word = p == "they" ? "were" : "was";
    } else if (w == "{wasnt}") {
      word = p == "they" ? "weren't" : "wasn't";
    }
    e.tokens.push_back(vocab.id(word));
  }
  e.template_id = static_cast<int>(ti);
  e.trigger = trigger;
  e.referent_slot = slot;
  e.option1 = a;
  e.option2 = b;
  e.referent_pos = slot == 0 ? pos_a : pos_b;
  e.distractor_pos = slot == 0 ? pos_b : pos_a;
  e.target = e.tokens[static_cast<size_t>(e.referent_pos)];
  return e;
}

}  // namespace

void PronounTask::generate(uint64_t seed, int64_t combos_per_template) {
  vocab_ = template_vocab();
  const std::vector<NounPair> forced = {unordered("animal", "street"),
                                        unordered("trophy", "suitcase")};
  Rng rng(seed);
  Rng pick = rng.split();
  std::vector<PronounExample> all;
  const auto& templates = pronoun_templates();
  for (size_t ti = 0; ti < templates.size(); ++ti) {
    const PronounTemplate& t = templates[ti];
    QKV_CHECK(t.a_triggers.size() == t.b_triggers.size(),
              "pronoun: template '{}' has {} first-noun and {} second-noun triggers", t.name,
              t.a_triggers.size(), t.b_triggers.size());
    // Every trigger for every chosen combination: balanced per template, trigger and slot.
    for (const auto& [a, b] : choose_combos(t, forced, combos_per_template, pick))
      for (int slot = 0; slot < 2; ++slot)
        for (const std::string& trigger : slot == 0 ? t.a_triggers : t.b_triggers)
          all.push_back(fill_template(vocab_, ti, a, b, trigger, slot));
  }
  assign_splits(std::move(all), rng.next_u64(), forced);

  // Every noun in at least one training pair: where one is not, move a held-out pair into train.
  for (const std::string& noun : pronoun_nouns()) {
    auto has = [&](const PronounExample& e) { return e.option1 == noun || e.option2 == noun; };
    if (std::any_of(splits_[0].begin(), splits_[0].end(), has)) continue;
    for (int s : {1, 2}) {
      auto it = std::find_if(splits_[s].begin(), splits_[s].end(), [&](const PronounExample& e) {
        return has(e) && !is_forced(forced, e.option1, e.option2);
      });
      if (it == splits_[s].end()) continue;
      const NounPair pair = unordered(it->option1, it->option2);
      auto same = [&](const PronounExample& e) { return unordered(e.option1, e.option2) == pair; };
      for (const PronounExample& e : splits_[s])
        if (same(e)) splits_[0].push_back(e);
      splits_[s].erase(std::remove_if(splits_[s].begin(), splits_[s].end(), same),
                       splits_[s].end());
      break;
    }
  }
}

void PronounTask::assign_splits(std::vector<PronounExample> all, uint64_t seed,
                                const std::vector<std::pair<std::string, std::string>>& forced) {
  // Examples grouped by unordered noun pair, groups in a seeded random order.
  std::map<std::pair<std::string, std::string>, std::vector<size_t>> groups;
  for (size_t i = 0; i < all.size(); ++i)
    groups[unordered(all[i].option1, all[i].option2)].push_back(i);
  std::vector<const std::pair<const std::pair<std::string, std::string>, std::vector<size_t>>*>
      order;
  for (const auto& g : groups) order.push_back(&g);
  Rng rng(seed);
  std::vector<int64_t> perm = rng.permutation(static_cast<int64_t>(order.size()));
  std::vector<int> split_of(order.size(), 0);
  const auto total = static_cast<double>(all.size());
  double n_test = 0, n_val = 0;
  for (size_t k = 0; k < order.size(); ++k)  // forced pairs first
    if (std::find(forced.begin(), forced.end(), order[k]->first) != forced.end()) {
      split_of[k] = 2;
      n_test += static_cast<double>(order[k]->second.size());
    }
  for (int64_t pk : perm) {
    const auto k = static_cast<size_t>(pk);
    if (std::find(forced.begin(), forced.end(), order[k]->first) != forced.end()) continue;
    const auto n = static_cast<double>(order[k]->second.size());
    if (n_test + n / 2 <= test_fraction_ * total) {
      split_of[k] = 2;
      n_test += n;
    } else if (n_val + n / 2 <= val_fraction_ * total) {
      split_of[k] = 1;
      n_val += n;
    }
  }
  for (auto& s : splits_) s.clear();
  // Within a split, examples keep generation order (template by template).
  std::vector<int> split_of_example(all.size(), 0);
  for (size_t k = 0; k < order.size(); ++k)
    for (size_t i : order[k]->second) split_of_example[i] = split_of[k];
  for (size_t i = 0; i < all.size(); ++i) splits_[split_of_example[i]].push_back(std::move(all[i]));
}

void PronounTask::import(const std::string& path) {
  const std::vector<WinoRecord> records = read_winogrande(path);
  std::set<std::string> words;
  std::vector<std::vector<std::string>> token_words;
  std::vector<std::pair<std::string, std::string>> heads;
  for (size_t i = 0; i < records.size(); ++i) {
    const std::string where = fmt::format("{} record {}", path, i + 1);
    size_t blank = 0;
    token_words.push_back(blank_tokens(records[i].sentence, &blank));
    heads.emplace_back(head_word(records[i].option1, where), head_word(records[i].option2, where));
    QKV_CHECK(heads.back().first != heads.back().second, "{}: both options have the head word '{}'",
              where, heads.back().first);
    for (const std::string& w : token_words.back())
      if (w != Vocab::kBlank) words.insert(w);
    words.insert(heads.back().first);
    words.insert(heads.back().second);
  }
  vocab_ = Vocab::build({Vocab::kBlank}, {words.begin(), words.end()});
  for (size_t i = 0; i < records.size(); ++i) {
    PronounExample e;
    e.tokens = vocab_.ids(token_words[i]);
    e.position = find_token(e.tokens, vocab_.blank_id());
    e.option1 = heads[i].first;
    e.option2 = heads[i].second;
    const int32_t id1 = vocab_.id(e.option1), id2 = vocab_.id(e.option2);
    if (!records[i].answer.empty()) {
      e.referent_slot = records[i].answer == "1" ? 0 : 1;
      e.target = e.referent_slot == 0 ? id1 : id2;
      e.referent_pos = find_token(e.tokens, e.target);
      e.distractor_pos = find_token(e.tokens, e.referent_slot == 0 ? id2 : id1);
    }
    e.has_source = true;
    e.source = records[i];
    splits_[0].push_back(std::move(e));
  }
}

const std::vector<PronounExample>& PronounTask::examples(Split split) const {
  return splits_[static_cast<int>(split)];
}

Batch PronounTask::batch(Split split, const std::vector<int64_t>& indices) const {
  check_indices(*this, split, indices);
  std::vector<std::vector<int32_t>> rows;
  std::vector<int32_t> targets, positions;
  for (int64_t i : indices) {
    const PronounExample& e = examples(split)[static_cast<size_t>(i)];
    rows.push_back(e.tokens);
    targets.push_back(e.target);
    positions.push_back(e.position);
  }
  return pack_encoder(rows, targets, positions);
}

Batch PronounTask::encode(const std::string& text, bool /*with_answer*/) const {
  size_t blank = 0;
  std::vector<int32_t> tokens = vocab_.ids(blank_tokens(text, &blank));
  int32_t position = -1;
  for (size_t i = 0; i < tokens.size() && position < 0; ++i)
    if (is_pronoun(vocab_.token(tokens[i]))) position = static_cast<int32_t>(i);
  QKV_CHECK(position >= 0, "pronoun: no pronoun (it, he, she, they) or '_' in \"{}\"", text);
  int32_t target = -1;
  auto it = lookup_.find(tokens);
  if (it == lookup_.end() && !tokens.empty() && vocab_.token(tokens.back()) == ".") {
    std::vector<int32_t> bare(tokens.begin(), tokens.end() - 1);
    it = lookup_.find(bare);
  }
  if (it != lookup_.end()) {
    const PronounExample& e = splits_[it->second.first][it->second.second];
    target = e.target;
    position = e.position;
  }
  return pack_encoder({tokens}, {target}, {position});
}

std::vector<WinoRecord> PronounTask::winogrande(Split split) const {
  std::vector<WinoRecord> out;
  const auto& ex = examples(split);
  for (size_t i = 0; i < ex.size(); ++i) {
    const PronounExample& e = ex[i];
    if (e.has_source) {
      out.push_back(e.source);
      continue;
    }
    std::vector<std::string> words;
    for (size_t k = 0; k < e.tokens.size(); ++k) {
      if (static_cast<int32_t>(k) == e.position) {
        words.push_back("the");
        words.push_back("_");
      } else {
        words.push_back(vocab_.token(e.tokens[k]));
      }
    }
    WinoRecord r;
    r.qid = fmt::format("qkv-pronoun-{}-{}", split_name(split), i);
    r.sentence = detokenize_words(words) + ".";
    r.sentence[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(r.sentence[0])));
    r.option1 = e.option1;
    r.option2 = e.option2;
    r.answer = e.referent_slot < 0 ? "" : e.referent_slot == 0 ? "1" : "2";
    out.push_back(std::move(r));
  }
  return out;
}

void PronounTask::export_winogrande(Split split, const std::string& path) const {
  write_winogrande(path, winogrande(split));
}

nlohmann::json PronounTask::default_model_config() const {
  const int64_t V = vocab_.size();
  return {{"arch", "encoder"},
          {"vocab_size", V},
          {"max_len", max_len_},
          {"d_model", 64},
          {"n_heads", 4},
          {"n_layers", 2},
          {"d_ff", 128},  // 2 × d_model: as accurate as 256 here (seeds 0-6), a fifth faster
          {"activation", "gelu"},
          {"norm", "pre"},
          {"pos", "learned"},
          {"tie_embeddings", false},
          {"n_out", V},
          {"dropout", 0.0},
          {"ln_eps", 1e-5}};
}

// Tuned for a quick main job (qkv train --task pronoun, 2-core AMD EPYC): 400 steps with a
// 150-step warm-up and d_ff 128 train in about 4 s. Over seeds 0-6 test accuracy was 100 % for
// every seed, and in the best head the pronoun attended more to the referent than to the
// distractor in 100 % of test sentences for five seeds, 98.7 % and 96.2 % for the others
// (d_ff 256: 100 % for six, 98.5 % for one, and about 20 % slower). The old 1500 steps (warm-up
// 100, d_ff 256) gave the same accuracy with the best head at 98.5-99.6 %, in 16-21 s. Shorter
// warm-ups or a higher lr hurt: lr 5e-3 left the best head near 60 %, and 400 steps with warm-up
// 50 gave 91-100 %. With dropout 0.1 accuracy stays near 99 % but the referent spreads over
// several heads (best head ~63 %).
nlohmann::json PronounTask::default_train_config() const {
  return {{"steps", 400},         {"batch_size", 64},     {"lr", 3e-3},
          {"optimizer", "adamw"}, {"weight_decay", 0.01}, {"warmup", 150},
          {"schedule", "cosine"}, {"clip", 1.0},          {"eval_every", 100}};
}

}  // namespace qkv
