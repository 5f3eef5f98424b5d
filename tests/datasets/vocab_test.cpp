#include "datasets/vocab.h"

#include <gtest/gtest.h>

#include <functional>

#include "core/error.h"

namespace qkv {
namespace {

using Words = std::vector<std::string>;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(WordTokenize, LowercasesAndSplitsPunctuationKeepsContractions) {
  EXPECT_EQ(word_tokenize("The animal didn't cross the street, because it was too tired."),
            (Words{"the", "animal", "didn't", "cross", "the", "street", ",", "because", "it", "was",
                   "too", "tired", "."}));
  EXPECT_EQ(word_tokenize("  A well-known  (old) DOG!  "),
            (Words{"a", "well-known", "(", "old", ")", "dog", "!"}));
  EXPECT_EQ(word_tokenize("'quoted' -dash- _"), (Words{"'", "quoted", "'", "-", "dash", "-", "_"}));
}

TEST(WordTokenize, TypographicApostropheSpecialsDigitsAndUtf8) {
  EXPECT_EQ(word_tokenize("didn\xE2\x80\x99t"), (Words{"didn't"}));
  EXPECT_EQ(word_tokenize("<BOS> 3 14 <sep> <x"), (Words{"<bos>", "3", "14", "<sep>", "<", "x"}));
  EXPECT_EQ(word_tokenize("Caf\xC3\xA9 na\xC3\xAFve"), (Words{"caf\xC3\xA9", "na\xC3\xAFve"}));
  EXPECT_TRUE(word_tokenize("   ").empty());
}

TEST(Detokenize, AttachesPunctuation) {
  EXPECT_EQ(detokenize_words({"the", "animal", "didn't", "cross", ",", "because", "(", "it", ")",
                              "was", "tired", "."}),
            "the animal didn't cross, because (it) was tired.");
  const std::string s = "the trophy didn't fit in the suitcase, because it was too big.";
  EXPECT_EQ(detokenize_words(word_tokenize(s)), s);
}

TEST(Vocab, IdsAndTokensRoundTrip) {
  Vocab v = Vocab::build({Vocab::kBos, Vocab::kEos}, {"the", "cat", "sat", "the", "."});
  EXPECT_EQ(v.tokens(), (Words{"<pad>", "<bos>", "<eos>", "the", "cat", "sat", "."}));
  EXPECT_EQ(v.size(), 7);
  for (int32_t i = 0; i < v.size(); ++i) EXPECT_EQ(v.id(v.token(i)), i);
  EXPECT_EQ(v.pad_id(), 0);
  EXPECT_EQ(v.bos_id(), 1);
  EXPECT_EQ(v.eos_id(), 2);
  EXPECT_EQ(v.sep_id(), -1);
  EXPECT_EQ(v.unk_id(), -1);
  EXPECT_TRUE(v.is_special(1));
  EXPECT_FALSE(v.is_special(3));

  std::vector<int32_t> ids = v.encode("The cat sat.");
  EXPECT_EQ(ids, (std::vector<int32_t>{3, 4, 5, 6}));
  EXPECT_EQ(v.decode(ids), "the cat sat.");
  EXPECT_EQ(v.decode({1, 3, 4, 0, 0}), "<bos> the cat");
  EXPECT_EQ(v.decode({1, 3, 4, 2}, /*skip_specials=*/true), "the cat");
  EXPECT_EQ(v.encode(v.decode({1, 3, 4, 2})), (std::vector<int32_t>{1, 3, 4, 2}));

  Vocab copy(v.tokens());  // as a checkpoint's /vocab rebuilds it
  EXPECT_EQ(copy, v);
}

TEST(Vocab, RejectsBadTables) {
  EXPECT_EQ(error_of([] { Vocab({"a", "<pad>"}); }), "Vocab: id 0 must be '<pad>', got 'a'");
  EXPECT_EQ(error_of([] {
              Vocab({"<pad>", "a", "b", "a"});
            }),
            "Vocab: token 'a' appears twice (ids 1 and 3)");
  EXPECT_EQ(error_of([] { Vocab().token(5); }),
            "token id 5 is out of range for a vocabulary of 1 tokens");
}

TEST(Vocab, UnknownWordErrorSuggestsCloseWords) {
  Vocab v = Vocab::build({}, {"tired", "tide", "tire", "wide", "cat"});
  EXPECT_EQ(error_of([&] { v.encode("Tide. tirde"); }),
            "unknown word '.': not in the vocabulary of 6 tokens (no known word is close to it)");
  EXPECT_EQ(error_of([&] { v.id("tirde"); }),
            "unknown word 'tirde': not in the vocabulary of 6 tokens; did you mean 'tide', "
            "'tire' or 'tired'?");
  EXPECT_EQ(error_of([&] { v.id("wides"); }),
            "unknown word 'wides': not in the vocabulary of 6 tokens; did you mean 'wide' or "
            "'tide'?");
  EXPECT_EQ(error_of([&] { v.id("xyzzy"); }),
            "unknown word 'xyzzy': not in the vocabulary of 6 tokens (no known word is close to "
            "it)");
  EXPECT_EQ(v.suggest("tirde", 1), Words{"tide"});
  // Specials are never suggested.
  EXPECT_TRUE(Vocab::build({Vocab::kSep}, {}).suggest("<sap>").empty());
}

TEST(Vocab, LenientEncodingUsesUnk) {
  Vocab v = Vocab::build({Vocab::kUnk}, {"cat"});
  EXPECT_EQ(v.encode_lenient("cat dog"), (std::vector<int32_t>{2, 1}));
  EXPECT_EQ(error_of([] { Vocab::build({}, {"cat"}).encode_lenient("dog"); }),
            "encode_lenient: the vocabulary has no '<unk>' token");
}

TEST(CharVocab, CodePointsRoundTripAndErrors) {
  EXPECT_EQ(char_tokenize("h\xC3\xA9!\n"), (Words{"h", "\xC3\xA9", "!", "\n"}));
  EXPECT_EQ(error_of([] { char_tokenize("ab\xFFz"); }), "invalid UTF-8 at byte 2 (byte 0xFF)");
  EXPECT_EQ(error_of([] { char_tokenize("a\xC3"); }), "invalid UTF-8 at byte 1 (byte 0xC3)");

  Vocab v = Vocab::build({}, {"a", "b", " ", "\xC3\xA9"}, Level::kChar);
  std::vector<int32_t> ids = v.encode("ab \xC3\xA9");
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(v.decode(ids), "ab \xC3\xA9");
  EXPECT_EQ(error_of([&] { v.encode("abc"); }),
            "unknown character 'c' (U+0063): not in the vocabulary of 5 tokens");
  EXPECT_EQ(error_of([&] { v.encode("a\n"); }),
            "unknown character '\\n' (U+000A): not in the vocabulary of 5 tokens");
  EXPECT_EQ(error_of([&] { v.encode("\xE2\x82\xAC"); }),
            "unknown character '\xE2\x82\xAC' (U+20AC): not in the vocabulary of 5 tokens");
}

TEST(EditDistance, HandCases) {
  EXPECT_EQ(edit_distance("", ""), 0);
  EXPECT_EQ(edit_distance("cat", ""), 3);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3);
  EXPECT_EQ(edit_distance("tired", "tirde"), 1);       // a swap of neighbours costs 1
  EXPECT_EQ(edit_distance("ca", "abc"), 3);            // optimal string alignment, not full Damerau
  EXPECT_EQ(edit_distance("caf\xC3\xA9", "cafe"), 1);  // counted in code points
}

}  // namespace
}  // namespace qkv
