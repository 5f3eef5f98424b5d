#include "train/metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"

namespace qkv {
namespace {

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "qkv_metrics_" + std::to_string(getpid()) + "_" + name;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

TEST(Metrics, FixedFieldOrderAndShortestRoundTripNumbers) {
  MetricsRecord r;
  r.step = 3;
  r.loss = 2.5;
  r.lr = 1e-3;
  r.val_accuracy = 0.75;
  r.extra = {{"zeta", 1}, {"epoch", 2}, {"note", "a \"b\""}};
  EXPECT_EQ(format_metrics(r),
            R"({"step":3,"loss":2.5,"val_accuracy":0.75,"lr":0.001,"epoch":2,"note":"a \"b\"",)"
            R"("zeta":1})");
  MetricsRecord only;
  only.step = 0;
  EXPECT_EQ(format_metrics(only), R"({"step":0})");
}

TEST(Metrics, RoundTripKeepsEveryBitOfAFloat32Loss) {
  const std::string path = temp_path("roundtrip.jsonl");
  std::remove(path.c_str());
  std::vector<MetricsRecord> written;
  {
    MetricsWriter w(path, /*append=*/false);
    for (int i = 0; i < 20; ++i) {
      MetricsRecord r;
      r.step = i * 10;
      r.loss = static_cast<double>(2.302585f / static_cast<float>(1 + i) + 1e-7f * i);
      r.lr = 3e-4 * (i + 1) / 20.0;
      r.grad_norm = std::sqrt(static_cast<double>(i) + 0.1);
      r.tokens_per_s = 12345.678 + i;
      if (i % 5 == 4) {
        r.val_loss = 1.0 / 3.0 + i;
        r.val_accuracy = i / 20.0;
        r.extra["seen"] = i * 64;
      }
      w.write(r);
      written.push_back(r);
      // Flushed per line: the file already holds this line.
      EXPECT_EQ(read_metrics(path).size(), static_cast<size_t>(i + 1));
    }
  }
  const std::vector<MetricsRecord> read = read_metrics(path);
  ASSERT_EQ(read.size(), written.size());
  for (size_t i = 0; i < read.size(); ++i) {
    EXPECT_EQ(read[i].step, written[i].step);
    EXPECT_EQ(read[i].loss, written[i].loss);  // exact
    EXPECT_EQ(static_cast<float>(*read[i].loss), static_cast<float>(*written[i].loss));
    EXPECT_EQ(read[i].lr, written[i].lr);
    EXPECT_EQ(read[i].grad_norm, written[i].grad_norm);
    EXPECT_EQ(read[i].tokens_per_s, written[i].tokens_per_s);
    EXPECT_EQ(read[i].val_loss, written[i].val_loss);
    EXPECT_EQ(read[i].val_accuracy, written[i].val_accuracy);
    EXPECT_EQ(read[i].extra, written[i].extra);
    EXPECT_EQ(format_metrics(read[i]), format_metrics(written[i]));  // deterministic
  }
  // Appending continues the file.
  {
    MetricsWriter w(path);
    MetricsRecord r;
    r.step = 999;
    w.write(r);
  }
  EXPECT_EQ(read_metrics(path).back().step, 999);
  std::remove(path.c_str());
}

TEST(Metrics, NonFiniteValuesAreNullAndReadBackAsNaN) {
  MetricsRecord r;
  r.step = 1;
  r.loss = std::numeric_limits<double>::quiet_NaN();
  r.grad_norm = std::numeric_limits<double>::infinity();
  const std::string line = format_metrics(r);
  EXPECT_EQ(line, R"({"step":1,"loss":null,"grad_norm":null})");
  const MetricsRecord back = parse_metrics(line);
  ASSERT_TRUE(back.loss.has_value());
  EXPECT_TRUE(std::isnan(*back.loss));
  EXPECT_FALSE(back.val_loss.has_value());
}

TEST(Metrics, ReaderSkipsACutLastLineAndNamesBadLines) {
  const std::string path = temp_path("bad.jsonl");
  {
    std::ofstream f(path);
    f << "{\"step\":1,\"loss\":2}\n\n{\"step\":2,\"loss\":1.5}\n{\"step\":3,\"lo";
  }
  const auto records = read_metrics(path);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].loss, 1.5);
  {
    std::ofstream f(path);
    f << "{\"step\":1}\n{\"loss\":2}\n";
  }
  try {
    read_metrics(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "metrics file '" + path + "', line 2: no integer 'step' field in {\"loss\":2}");
  }
  std::remove(path.c_str());
  EXPECT_THROW(read_metrics(path), Error);
}

TEST(Metrics, ExtraFieldsMayNotShadowStandardOnes) {
  MetricsRecord r;
  r.extra = {{"loss", 1.0}};
  EXPECT_THROW(format_metrics(r), Error);
}

TEST(Metrics, TruncateKeepsLinesUpToAStepVerbatim) {
  const std::string path = temp_path("truncate.jsonl");
  {
    std::ofstream f(path);
    f << "{\"step\":10,\"loss\":1.0}\n{\"step\":20,\"loss\":0.5}\n{\"step\":30,\"loss\":0.25}\n";
  }
  truncate_metrics(path, 20);
  EXPECT_EQ(slurp(path), "{\"step\":10,\"loss\":1.0}\n{\"step\":20,\"loss\":0.5}\n");
  std::remove(path.c_str());
  EXPECT_NO_THROW(truncate_metrics(path, 5));  // a missing file stays missing
  EXPECT_THROW(MetricsWriter("/nonexistent-dir/metrics.jsonl"), Error);
}

}  // namespace
}  // namespace qkv
