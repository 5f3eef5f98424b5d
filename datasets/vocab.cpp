#include "datasets/vocab.h"

#include <algorithm>
#include <utility>

#include "core/error.h"

namespace qkv {
namespace {

bool is_ascii_alnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
// Letters, digits and every byte of a non-ASCII character.
bool is_word_byte(unsigned char c) {
  return is_ascii_alnum(c) || c >= 0x80;
}
bool is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Length of the UTF-8 sequence starting at s[i], or 0 when it is not valid UTF-8.
size_t utf8_length(const std::string& s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n = 0;
  uint32_t min = 0;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  uint32_t cp = c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    const auto d = static_cast<unsigned char>(s[i + k]);
    if ((d & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (d & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

uint32_t code_point(const std::string& ch) {
  const auto c = static_cast<unsigned char>(ch[0]);
  if (ch.size() == 1) return c;
  uint32_t cp = c & (0x7F >> ch.size());
  for (size_t k = 1; k < ch.size(); ++k)
    cp = (cp << 6) | (static_cast<unsigned char>(ch[k]) & 0x3F);
  return cp;
}

// Code points of s; bytes of invalid sequences count one each (never throws).
std::vector<std::string> lenient_chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_length(s, i);
    if (n == 0) n = 1;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

std::string quoted_char(const std::string& ch) {
  if (ch == "\n") return "'\\n'";
  if (ch == "\t") return "'\\t'";
  if (ch == "\r") return "'\\r'";
  return "'" + ch + "'";
}

}  // namespace

Vocab::Vocab(std::vector<std::string> tokens, Level level)
    : tokens_(std::move(tokens)), level_(level) {
  QKV_CHECK(!tokens_.empty() && tokens_[0] == kPad, "Vocab: id 0 must be '<pad>', got {}",
            tokens_.empty() ? "no tokens" : "'" + tokens_[0] + "'");
  for (size_t i = 0; i < tokens_.size(); ++i) {
    QKV_CHECK(!tokens_[i].empty(), "Vocab: token {} is empty", i);
    auto [it, fresh] = index_.emplace(tokens_[i], static_cast<int32_t>(i));
    QKV_CHECK(fresh, "Vocab: token '{}' appears twice (ids {} and {})", tokens_[i], it->second, i);
  }
}

Vocab Vocab::build(const std::vector<std::string>& specials, const std::vector<std::string>& words,
                   Level level) {
  std::vector<std::string> tokens{kPad};
  std::unordered_map<std::string, int32_t> seen{{kPad, 0}};
  for (const auto* list : {&specials, &words})
    for (const std::string& t : *list)
      if (seen.emplace(t, 0).second) tokens.push_back(t);
  return Vocab(std::move(tokens), level);
}

int32_t Vocab::id(const std::string& token) const {
  auto it = index_.find(token);
  if (it == index_.end()) throw Error(unknown_message(token));
  return it->second;
}

int32_t Vocab::id_or(const std::string& token, int32_t fallback) const {
  auto it = index_.find(token);
  return it == index_.end() ? fallback : it->second;
}

const std::string& Vocab::token(int32_t id) const {
  QKV_CHECK(id >= 0 && id < size(), "token id {} is out of range for a vocabulary of {} tokens", id,
            size());
  return tokens_[static_cast<size_t>(id)];
}

bool Vocab::is_special(int32_t id) const {
  const std::string& t = token(id);
  return t.size() > 2 && t.front() == '<' && t.back() == '>';
}

std::vector<std::string> Vocab::tokenize(const std::string& text) const {
  return level_ == Level::kWord ? word_tokenize(text) : char_tokenize(text);
}

std::vector<int32_t> Vocab::ids(const std::vector<std::string>& tokens) const {
  std::vector<int32_t> out;
  out.reserve(tokens.size());
  for (const std::string& t : tokens) out.push_back(id(t));
  return out;
}

std::vector<int32_t> Vocab::encode(const std::string& text) const {
  return ids(tokenize(text));
}

std::vector<int32_t> Vocab::encode_lenient(const std::string& text) const {
  const int32_t unk = unk_id();
  QKV_CHECK(unk >= 0, "encode_lenient: the vocabulary has no '<unk>' token");
  std::vector<int32_t> out;
  for (const std::string& t : tokenize(text)) out.push_back(id_or(t, unk));
  return out;
}

std::string Vocab::decode(const std::vector<int32_t>& ids, bool skip_specials) const {
  std::vector<std::string> parts;
  for (int32_t i : ids) {
    if (i == kPadId || (skip_specials && is_special(i))) continue;
    parts.push_back(token(i));
  }
  if (level_ == Level::kWord) return detokenize_words(parts);
  std::string out;
  for (const std::string& p : parts) out += p;
  return out;
}

std::vector<std::string> Vocab::suggest(const std::string& word, size_t n) const {
  const size_t len = lenient_chars(word).size();
  const int limit = len <= 3 ? 1 : 2;
  std::vector<std::pair<int, std::string>> close;
  for (int32_t i = 0; i < size(); ++i) {
    if (is_special(i)) continue;
    int d = edit_distance(word, tokens_[static_cast<size_t>(i)]);
    if (d <= limit) close.emplace_back(d, tokens_[static_cast<size_t>(i)]);
  }
  std::sort(close.begin(), close.end());
  std::vector<std::string> out;
  for (size_t i = 0; i < close.size() && i < n; ++i) out.push_back(close[i].second);
  return out;
}

std::string Vocab::unknown_message(const std::string& token) const {
  if (level_ == Level::kChar) {
    return fmt::format("unknown character {} (U+{:04X}): not in the vocabulary of {} tokens",
                       quoted_char(token), token.empty() ? 0u : code_point(token), size());
  }
  std::string msg =
      fmt::format("unknown word '{}': not in the vocabulary of {} tokens", token, size());
  std::vector<std::string> s = suggest(token);
  if (s.empty()) return msg + " (no known word is close to it)";
  msg += "; did you mean ";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0) msg += i + 1 == s.size() ? " or " : ", ";
    msg += "'" + s[i] + "'";
  }
  return msg + "?";
}

std::vector<std::string> word_tokenize(const std::string& raw) {
  // A typographic apostrophe (U+2019, E2 80 99) reads as '.
  std::string text;
  text.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw.compare(i, 3, "\xE2\x80\x99") == 0) {
      text += '\'';
      i += 2;
    } else {
      text += raw[i];
    }
  }
  auto at = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = at(i);
    if (is_space(c)) {
      ++i;
    } else if (is_word_byte(c)) {
      std::string w;
      while (i < text.size()) {
        const unsigned char d = at(i);
        if (is_word_byte(d)) {
          w += (d >= 'A' && d <= 'Z') ? static_cast<char>(d - 'A' + 'a') : static_cast<char>(d);
          ++i;
        } else if ((d == '\'' || d == '-') && i + 1 < text.size() && is_word_byte(at(i + 1))) {
          w += static_cast<char>(d);
          ++i;
        } else {
          break;
        }
      }
      out.push_back(std::move(w));
    } else {
      // "<name>" special token?
      if (c == '<') {
        size_t j = i + 1;
        while (j < text.size() &&
               ((at(j) >= 'a' && at(j) <= 'z') || (at(j) >= 'A' && at(j) <= 'Z') || at(j) == '_'))
          ++j;
        if (j > i + 1 && j < text.size() && at(j) == '>') {
          std::string s = text.substr(i, j + 1 - i);
          for (char& ch : s)
            if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
          out.push_back(std::move(s));
          i = j + 1;
          continue;
        }
      }
      out.push_back(std::string(1, static_cast<char>(c)));
      ++i;
    }
  }
  return out;
}

std::vector<std::string> char_tokenize(const std::string& text) {
  std::vector<std::string> out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t n = utf8_length(text, i);
    QKV_CHECK(n > 0, "invalid UTF-8 at byte {} (byte 0x{:02X})", i,
              static_cast<unsigned>(static_cast<unsigned char>(text[i])));
    out.push_back(text.substr(i, n));
    i += n;
  }
  return out;
}

std::string detokenize_words(const std::vector<std::string>& words) {
  static const std::string kNoSpaceBefore = ".,!?;:)";
  std::string out;
  bool after_open = true;  // no space at the start or after "("
  for (const std::string& w : words) {
    const bool attach = w.size() == 1 && kNoSpaceBefore.find(w[0]) != std::string::npos;
    if (!after_open && !attach) out += ' ';
    out += w;
    after_open = w == "(";
  }
  return out;
}

int edit_distance(const std::string& a_text, const std::string& b_text) {
  const std::vector<std::string> a = lenient_chars(a_text), b = lenient_chars(b_text);
  const size_t n = a.size(), m = b.size();
  // d[i][j] = distance between a[:i] and b[:j]; the swap rule looks two rows back.
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1, 0));
  for (size_t i = 0; i <= n; ++i) d[i][0] = static_cast<int>(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = static_cast<int>(j);
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      const int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

}  // namespace qkv
