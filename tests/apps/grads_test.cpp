// `qkv grads` and `qkv gradcheck`, run as a user runs them: the qkv program (QKV_BIN) on files
// this test writes. Bad input must exit with status 2 and one line naming the file and the
// problem; good input writes every tensor docs/checkpoint-format.md lists.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "core/h5.h"
#include "datasets/batch_io.h"
#include "nn/config.h"
#include "nn/model.h"
#include "run_qkv.h"
#include "train/checkpoint.h"

namespace qkv {
namespace {

namespace fs = std::filesystem;

using test::quote;
using test::RunResult;
using test::slurp;

const char* kConfig = R"({"arch": "encoder", "vocab_size": 11, "max_len": 6, "d_model": 8,
  "n_heads": 2, "n_layers": 1, "d_ff": 16, "n_out": 3})";

class GradsCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "qkv-grads-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    config_ = ModelConfig::parse(kConfig);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  /// Runs `qkv ARGS` (each argument shell-quoted), capturing stdout, stderr and the status.
  RunResult run(const std::vector<std::string>& args) const { return test::run_qkv(args, dir_); }

  RunResult grads(const std::string& ckpt, const std::string& batch,
                  const std::string& dtype = "float32") const {
    return run({"grads", "--checkpoint", ckpt, "--batch", batch, "--out", path("out.h5"), "--dtype",
                dtype});
  }

  /// A valid checkpoint of config_ (seeded parameters) at `name`.
  std::string write_checkpoint(const std::string& name) const {
    Model<float> model(config_, 3);
    Checkpoint c;
    c.model_config = config_.to_json();
    c.params = model.export_parameters();
    save_checkpoint(path(name), c);
    return path(name);
  }

  /// A valid encoder batch for config_: B = 2, T = 4, example 1 padded at the end.
  Batch make_batch() const {
    Batch b;
    b.tokens = IndexTensor(Shape{2, 4}, {1, 2, 3, 4, 5, 6, 7, 0});
    b.mask = BoolTensor(Shape{2, 4}, {1, 1, 1, 1, 1, 1, 0, 0});
    b.positions = IndexTensor(Shape{2}, {3, 1});
    b.targets = IndexTensor(Shape{2}, {2, 0});
    return b;
  }
  std::string write_batch_file(const std::string& name, const Batch& b) const {
    write_batch(path(name), b);
    return path(name);
  }

  /// Status 2, nothing on stdout, and exactly `message` as one line on stderr.
  void expect_bad_input(const RunResult& r, const std::string& message) const {
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_EQ(r.err, "qkv: " + message + "\n");
    EXPECT_EQ(r.out, "");
    EXPECT_FALSE(fs::exists(path("out.h5")));
    EXPECT_FALSE(fs::exists(path("out.h5.tmp")));
  }

  std::string dir_;
  ModelConfig config_;
};

TEST_F(GradsCommand, MissingCheckpointFile) {
  std::string batch = write_batch_file("batch.h5", make_batch());
  expect_bad_input(grads(path("nope.h5"), batch), path("nope.h5") + ": does not exist");
}

TEST_F(GradsCommand, CheckpointThatIsNotHdf5) {
  std::ofstream(path("text.h5")) << "this is not an HDF5 file\n";
  std::string batch = write_batch_file("batch.h5", make_batch());
  expect_bad_input(grads(path("text.h5"), batch), path("text.h5") + ": not an HDF5 file");
}

TEST_F(GradsCommand, WrongFormatAttribute) {
  {
    h5::File f = h5::File::create(path("other.h5"));
    f.set_string_attr("format", "pytorch-state-dict");
    f.set_int_attr("format_version", 1);
    f.close();
  }
  std::string batch = write_batch_file("batch.h5", make_batch());
  expect_bad_input(grads(path("other.h5"), batch),
                   path("other.h5") +
                       ": not a qkv checkpoint (attribute 'format' is \"pytorch-state-dict\", "
                       "expected \"qkv-checkpoint\")");
}

TEST_F(GradsCommand, ParameterOfTheWrongShape) {
  Model<float> model(config_, 3);
  Checkpoint c;
  c.model_config = config_.to_json();
  c.params = model.export_parameters();
  for (auto& [name, t] : c.params)
    if (name == "blocks.0.attn.W_Q.weight") t = Tensor<float>::full({8, 4}, 0.5f);
  save_checkpoint(path("bad_shape.h5"), c);
  std::string batch = write_batch_file("batch.h5", make_batch());
  expect_bad_input(grads(path("bad_shape.h5"), batch),
                   path("bad_shape.h5") +
                       ": parameter 'blocks.0.attn.W_Q.weight' has shape [8, 4]; the model "
                       "expects [8, 8]");
}

TEST_F(GradsCommand, TokenIdOutsideTheVocabulary) {
  std::string ckpt = write_checkpoint("ckpt.h5");
  Batch b = make_batch();
  b.tokens[6] = 11;  // vocab_size is 11
  std::string batch = write_batch_file("batch.h5", b);
  expect_bad_input(grads(ckpt, batch),
                   batch + ": /tokens[1, 2] = 11 is outside the vocabulary [0, 11)");
}

TEST_F(GradsCommand, ReadOutPositionOutsideTheSequence) {
  std::string ckpt = write_checkpoint("ckpt.h5");
  Batch b = make_batch();
  b.positions[0] = 4;
  std::string batch = write_batch_file("batch.h5", b);
  expect_bad_input(grads(ckpt, batch),
                   batch + ": /positions[0] = 4 is outside the sequence [0, 4)");
}

TEST_F(GradsCommand, WritesLossLogitsEveryGradientAndAttentionMap) {
  std::string ckpt = write_checkpoint("ckpt.h5");
  Batch batch = make_batch();
  std::string batch_file = write_batch_file("batch.h5", batch);

  // The same numbers in process, float64, dropout off.
  Model<float> model(config_, 3);
  Model<double> model64 = convert_model<double>(model);
  model64.eval();
  ForwardResult<double> want = model64.forward(batch, /*keep_attention=*/true);
  want.loss.backward();

  for (const std::string dtype : {"float64", "float32"}) {
    SCOPED_TRACE(dtype);
    RunResult r = grads(ckpt, batch_file, dtype);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_FALSE(fs::exists(path("out.h5.tmp")));
    const double tol = dtype == "float64" ? 1e-12 : 1e-5;
    h5::File f = h5::File::open(path("out.h5"));
    EXPECT_EQ(f.string_attr("dtype"), dtype);
    EXPECT_EQ(f.info("loss").dtype_name, dtype);
    EXPECT_EQ(f.info("loss").rank(), 0);
    EXPECT_NEAR(f.read_scalar("loss"), want.loss.item(), tol);
    Tensor<double> logits = f.read<double>("logits", /*allow_cast=*/true);
    ASSERT_EQ(logits.shape(), (Shape{2, 3}));
    for (int64_t i = 0; i < logits.numel(); ++i)
      EXPECT_NEAR(logits[i], want.logits.value()[i], tol);
    std::vector<std::string> names = f.group("grad").members();
    EXPECT_EQ(names.size(), model64.named_parameters().size());
    for (const auto& [name, p] : model64.named_parameters()) {
      SCOPED_TRACE(name);
      Tensor<double> g = f.read<double>("grad/" + name, /*allow_cast=*/true);
      ASSERT_EQ(g.shape(), p.shape());
      for (int64_t i = 0; i < g.numel(); ++i) EXPECT_NEAR(g[i], p.grad()[i], tol);
    }
    Tensor<double> P = f.read<double>("attention/blocks.0.attn", /*allow_cast=*/true);
    EXPECT_EQ(P.shape(), (Shape{2, 2, 4, 4}));
    f.close();
    fs::remove(path("out.h5"));
  }
}

TEST(GradcheckCommand, EveryArchitecturePasses) {
  std::string out =
      (fs::temp_directory_path() / ("qkv-gradcheck-test-" + std::to_string(getpid()) + ".txt"))
          .string();
  std::string cmd = std::string("'") + QKV_BIN + "' gradcheck --arch all >" + out + " 2>&1";
  int raw = std::system(cmd.c_str());
  std::string text = slurp(out);
  std::remove(out.c_str());
  ASSERT_TRUE(WIFEXITED(raw));
  EXPECT_EQ(WEXITSTATUS(raw), 0) << text;
  EXPECT_NE(text.find("all checks passed"), std::string::npos) << text;
  for (const char* name : {"blocks.0.attn.W_Q.weight", "enc.blocks.1.attn.W_K.weight",
                           "dec.blocks.0.xattn.W_V.weight", "dec.blocks.1.ln_x.weight"})
    EXPECT_NE(text.find(name), std::string::npos) << name;
  EXPECT_EQ(text.find("FAIL"), std::string::npos) << text;
}

}  // namespace
}  // namespace qkv
