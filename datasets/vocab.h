// Vocab: the id <-> token table of a task, with word-level and character-level tokenisers.
//
// Word level (Level::kWord), the rules of word_tokenize():
//   - ASCII letters are lowercased; other bytes are kept as they are.
//   - A word is a run of letters, digits and non-ASCII characters. An apostrophe or hyphen with a
//     word character on both sides stays inside the word, so "didn't" is ONE token ("didn't", not
//     "did n't") and "well-known" is one token; a typographic apostrophe (U+2019) is read as '.
//   - Every other non-space character is a token of its own: "tired." -> "tired", ".".
//   - "<name>" (lowercase letters and '_' between angle brackets) is one token, so special tokens
//     such as "<sep>" survive a decode -> encode round trip.
// Character level (Level::kChar): every UTF-8 code point is a token; invalid UTF-8 throws.
//
// Id 0 is always "<pad>". Other special tokens ("<unk>", "<bos>", "<eos>", "<sep>", "<blank>")
// are present when the task needs them. A token that is not in the vocabulary throws qkv::Error
// naming it and, at word level, suggesting up to three known words within a small edit distance:
//   unknown word 'tirde': not in the vocabulary of 6 tokens; did you mean 'tide', 'tire' or
//   'tired'?
// (encode_lenient() maps unknown tokens to "<unk>" instead, when the vocabulary has one.)
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace qkv {

enum class Level { kWord, kChar };

class Vocab {
 public:
  static constexpr const char* kPad = "<pad>";
  static constexpr const char* kUnk = "<unk>";
  static constexpr const char* kBos = "<bos>";
  static constexpr const char* kEos = "<eos>";
  static constexpr const char* kSep = "<sep>";
  static constexpr const char* kBlank = "<blank>";
  static constexpr int32_t kPadId = 0;

  /// An empty vocabulary holding only "<pad>".
  Vocab() : Vocab(std::vector<std::string>{kPad}) {}
  /// Tokens in id order (id i = tokens[i], as a checkpoint's /vocab stores them). tokens[0] must
  /// be "<pad>"; empty or duplicate tokens throw.
  explicit Vocab(std::vector<std::string> tokens, Level level = Level::kWord);
  /// "<pad>", then `specials` in order, then `words` in order; repeats are skipped.
  static Vocab build(const std::vector<std::string>& specials,
                     const std::vector<std::string>& words, Level level = Level::kWord);

  int32_t size() const { return static_cast<int32_t>(tokens_.size()); }
  Level level() const { return level_; }
  const std::vector<std::string>& tokens() const { return tokens_; }

  bool contains(const std::string& token) const { return index_.count(token) != 0; }
  /// The id of a token; throws qkv::Error (with suggestions) when it is unknown.
  int32_t id(const std::string& token) const;
  /// The id of a token, or `fallback` when it is unknown.
  int32_t id_or(const std::string& token, int32_t fallback) const;
  /// The token of an id; throws qkv::Error when the id is out of range.
  const std::string& token(int32_t id) const;
  /// True for the "<...>" tokens.
  bool is_special(int32_t id) const;

  int32_t pad_id() const { return kPadId; }
  /// Ids of the optional specials; -1 when the vocabulary has none.
  int32_t unk_id() const { return id_or(kUnk, -1); }
  int32_t bos_id() const { return id_or(kBos, -1); }
  int32_t eos_id() const { return id_or(kEos, -1); }
  int32_t sep_id() const { return id_or(kSep, -1); }
  int32_t blank_id() const { return id_or(kBlank, -1); }

  /// Splits text at this vocabulary's level (word_tokenize or char_tokenize).
  std::vector<std::string> tokenize(const std::string& text) const;
  /// Ids of already split tokens; an unknown one throws qkv::Error (with suggestions).
  std::vector<int32_t> ids(const std::vector<std::string>& tokens) const;
  /// tokenize() then ids().
  std::vector<int32_t> encode(const std::string& text) const;
  /// As encode(), but unknown tokens become "<unk>" (throws when there is no "<unk>").
  std::vector<int32_t> encode_lenient(const std::string& text) const;
  /// Text of ids: words joined by detokenize_words(), characters concatenated. "<pad>" is
  /// skipped; other specials are written as they are unless skip_specials.
  std::string decode(const std::vector<int32_t>& ids, bool skip_specials = false) const;

  /// Up to n known non-special tokens closest to `word` by edit distance (at most 1 for words of
  /// up to 3 characters, 2 for longer ones), nearest first, ties in alphabetical order.
  std::vector<std::string> suggest(const std::string& word, size_t n = 3) const;
  /// The message id() throws for an unknown token.
  std::string unknown_message(const std::string& token) const;

  bool operator==(const Vocab& o) const { return level_ == o.level_ && tokens_ == o.tokens_; }
  bool operator!=(const Vocab& o) const { return !(*this == o); }

 private:
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int32_t> index_;
  Level level_ = Level::kWord;
};

/// Word-level split of text (the rules at the top of this file).
std::vector<std::string> word_tokenize(const std::string& text);
/// One token per UTF-8 code point; invalid UTF-8 throws qkv::Error naming the byte offset.
std::vector<std::string> char_tokenize(const std::string& text);
/// Words back to text: joined by single spaces, with no space before . , ! ? ; : ) and none
/// after (.
std::string detokenize_words(const std::vector<std::string>& words);
/// Optimal-string-alignment (Damerau-Levenshtein) distance over code points: insertions,
/// deletions, substitutions and swaps of neighbours each cost 1.
int edit_distance(const std::string& a, const std::string& b);

}  // namespace qkv
