#include "core/error.h"

#include <gtest/gtest.h>

namespace qkv {
namespace {

TEST(EscapeBytes, ValidUtf8PassesAndEveryOtherByteBecomesHex) {
  EXPECT_EQ(escape_bytes("plain ascii"), "plain ascii");
  EXPECT_EQ(escape_bytes("größer 猫 🙂"), "größer 猫 🙂");
  EXPECT_EQ(escape_bytes("a\xff"
                         "b"),
            "a\\xFFb");
  EXPECT_EQ(escape_bytes("\xc3"), "\\xC3");                             // a sequence cut short
  EXPECT_EQ(escape_bytes("\xc0\xaf"), "\\xC0\\xAF");                    // overlong '/'
  EXPECT_EQ(escape_bytes("\xed\xa0\x80"), "\\xED\\xA0\\x80");           // a UTF-16 surrogate
  EXPECT_EQ(escape_bytes("\xf4\x90\x80\x80"), "\\xF4\\x90\\x80\\x80");  // above U+10FFFF
  EXPECT_EQ(escape_bytes(std::string("two\nlines\t\0end", 14)), "two\\x0Alines\\x09\\x00end");
}

TEST(EscapeBytes, ErrorMessagesAreAlwaysOneLineOfValidUtf8) {
  Error e("x.h5: unknown task 'a\xfe'\nsecond line");
  EXPECT_STREQ(e.what(), "x.h5: unknown task 'a\\xFE'\\x0Asecond line");
}

}  // namespace
}  // namespace qkv
