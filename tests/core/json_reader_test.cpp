// The one rule for typed JSON values: integers are JSON integers or numbers with an exact
// integral value below 2^53; booleans are true or false only; messages name the key.
#include "core/json_reader.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "test_files.h"

namespace qkv {
namespace {

using nlohmann::json;
using test::error_of;

TEST(JsonInteger, IntegralFloatsBelowTwoToThe53AreIntegers) {
  EXPECT_EQ(json_integer(json::parse("64")), 64);
  EXPECT_EQ(json_integer(json::parse("64.0")), 64);
  EXPECT_EQ(json_integer(json::parse("1000.0")), 1000);
  EXPECT_EQ(json_integer(json::parse("1e3")), 1000);
  EXPECT_EQ(json_integer(json::parse("-7.0")), -7);
  EXPECT_EQ(json_integer(json::parse("9007199254740991.0")), 9007199254740991);  // 2^53 − 1
  EXPECT_EQ(json_integer(json::parse("9223372036854775807")), INT64_MAX);  // an integer literal
  EXPECT_EQ(json_integer(json::parse("64.5")), std::nullopt);
  EXPECT_EQ(json_integer(json::parse("9007199254740992.0")), std::nullopt);  // 2^53: not exact
  EXPECT_EQ(json_integer(json::parse("1e300")), std::nullopt);
  EXPECT_EQ(json_integer(json::parse("18446744073709551615")), std::nullopt);  // past int64
  EXPECT_EQ(json_integer(json::parse("\"64\"")), std::nullopt);
  EXPECT_EQ(json_integer(json::parse("true")), std::nullopt);
}

TEST(JsonReader, ReadsEachTypeAndLeavesAbsentOrNullKeysAlone) {
  const json j =
      json::parse(R"({"steps": 1000.0, "lr": 3, "name": "adamw", "on": false, "gone": null})");
  JsonReader r("train config", j);
  int64_t steps = 0, gone = 5, missing = 6;
  double lr = 0;
  std::string name;
  bool on = true;
  r.integer("steps", steps);
  r.number("lr", lr);
  r.string("name", name);
  r.boolean("on", on);
  r.integer("gone", gone);
  r.integer("missing", missing);
  EXPECT_EQ(steps, 1000);
  EXPECT_EQ(lr, 3.0);
  EXPECT_EQ(name, "adamw");
  EXPECT_FALSE(on);
  EXPECT_EQ(gone, 5);
  EXPECT_EQ(missing, 6);
}

TEST(JsonReader, MessagesNameTheKeyAndTheValue) {
  const json j =
      json::parse(R"({"d_model": 64.5, "n": "8", "flag": 1, "zero": 0, "x": [1], "s": 3})");
  JsonReader r("model config", j);
  int64_t i = 0;
  bool b = false;
  double d = 0;
  std::string s;
  EXPECT_EQ(error_of([&] { r.integer("d_model", i); }),
            "model config: 'd_model' must be an integer, got 64.5");
  EXPECT_EQ(error_of([&] { r.integer("n", i); }),
            "model config: 'n' must be an integer, got \"8\"");
  EXPECT_EQ(error_of([&] { r.boolean("flag", b); }),
            "model config: 'flag' must be true or false, got 1");
  EXPECT_EQ(error_of([&] { r.boolean("zero", b); }),
            "model config: 'zero' must be true or false, got 0");
  EXPECT_EQ(error_of([&] { r.number("x", d); }), "model config: 'x' must be a number, got [1]");
  EXPECT_EQ(error_of([&] { r.string("s", s); }), "model config: 's' must be a string, got 3");
}

TEST(ParseJson, ASyntaxErrorIsOneLineNamingTheSource) {
  EXPECT_EQ(parse_json(R"({"a": [1, 2]})", "x.json")["a"][1], 2);
  const std::string e = error_of([] { parse_json("{\"a\": }", "--config x.json"); });
  EXPECT_EQ(e.rfind("--config x.json: not valid JSON (parse error at line 1, column 7", 0), 0u)
      << e;
  EXPECT_EQ(e.find('\n'), std::string::npos);
  EXPECT_EQ(e.find("[json.exception"), std::string::npos);
  EXPECT_EQ(error_of([] { read_json_file("/no/such/file.json", "--config /no/such/file.json"); }),
            "--config /no/such/file.json: cannot read the file");
}

}  // namespace
}  // namespace qkv
