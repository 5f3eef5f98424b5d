#include "datasets/batch_io.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>

#include "core/error.h"
#include "core/h5.h"
#include "test_files.h"

namespace qkv {
namespace {

using qkv::test::error_of;
using qkv::test::temp_path;

/// B = 2, T = 4, vocab 10, 3 classes; the second example has one pad token at the end.
Batch encoder_batch() {
  Batch b;
  b.tokens = IndexTensor(Shape{2, 4}, {1, 2, 3, 4, 5, 6, 7, 0});
  b.targets = IndexTensor(Shape{2}, {2, 0});
  b.positions = IndexTensor(Shape{2}, {0, 2});
  b.mask = BoolTensor(Shape{2, 4}, {1, 1, 1, 1, 1, 1, 1, 0});
  return b;
}
BatchSpec encoder_spec() {
  return {"encoder", 10, 3, 8, 0, 0};
}

Batch decoder_batch() {
  Batch b;
  b.tokens = IndexTensor(Shape{2, 3}, {1, 2, 3, 4, 5, 0});
  b.targets = IndexTensor(Shape{2, 3}, {2, 3, 9, 5, -1, -1});
  return b;
}
BatchSpec decoder_spec() {
  return {"decoder", 10, 0, 3, 0, 0};
}

Batch seq2seq_batch() {
  Batch b;
  b.tokens = IndexTensor(Shape{2, 3}, {1, 4, 5, 1, 6, 0});
  b.targets = IndexTensor(Shape{2, 3}, {4, 5, 2, 6, 2, -1});
  b.mask = BoolTensor(Shape{2, 3}, {1, 1, 1, 1, 1, 0});
  b.src = IndexTensor(Shape{2, 5}, {10, 11, 12, 13, 14, 19, 18, 0, 0, 0});
  b.src_mask = BoolTensor(Shape{2, 5}, {1, 1, 1, 1, 1, 1, 1, 0, 0, 0});
  return b;
}
BatchSpec seq2seq_spec() {
  return {"seq2seq", 7, 0, 3, 20, 5};
}

template <typename I>
void expect_equal(const IntegralTensor<I>& a, const IntegralTensor<I>& b, const char* what) {
  EXPECT_EQ(a.shape, b.shape) << what;
  EXPECT_EQ(a.data, b.data) << what;
}

void expect_same(const Batch& a, const Batch& b) {
  expect_equal(a.tokens, b.tokens, "tokens");
  expect_equal(a.targets, b.targets, "targets");
  expect_equal(a.positions, b.positions, "positions");
  expect_equal(a.mask, b.mask, "mask");
  expect_equal(a.src, b.src, "src");
  expect_equal(a.src_mask, b.src_mask, "src_mask");
}

TEST(BatchIo, EncoderRoundTrip) {
  std::string path = temp_path("encoder.h5");
  write_batch(path, encoder_batch());
  expect_same(read_batch(path, encoder_spec()), encoder_batch());
  h5::File f = h5::File::open(path);
  EXPECT_EQ(f.info("tokens").dtype, h5::DType::kInt32);
  EXPECT_EQ(f.info("mask").dtype, h5::DType::kUInt8);
  EXPECT_FALSE(f.exists("src"));
}

TEST(BatchIo, DecoderRoundTrip) {
  std::string path = temp_path("decoder.h5");
  write_batch(path, decoder_batch());
  Batch b = read_batch(path, decoder_spec());
  expect_same(b, decoder_batch());
  EXPECT_TRUE(b.mask.empty());
  EXPECT_TRUE(b.positions.empty());
}

TEST(BatchIo, Seq2seqRoundTrip) {
  std::string path = temp_path("seq2seq.h5");
  write_batch(path, seq2seq_batch());
  expect_same(read_batch(path, seq2seq_spec()), seq2seq_batch());
}

TEST(BatchIo, NumpyInt64AndBoolDatasetsAreRead) {
  std::string path = temp_path("int64.h5");
  {
    // What numpy writes by default: int64 ids and bool masks (h5py's FALSE/TRUE enum).
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[2] = {2, 3};
    hid_t s = H5Screate_simple(2, dims, nullptr);
    int64_t tokens[6] = {1, 2, 3, 4, 5, 0};
    int64_t targets[6] = {2, 3, 9, 5, -1, -1};
    for (auto [name, data] : {std::pair{"tokens", tokens}, std::pair{"targets", targets}}) {
      hid_t d = H5Dcreate2(f, name, H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
      H5Dclose(d);
    }
    hid_t bool_t = H5Tenum_create(H5T_NATIVE_INT8);
    int8_t no = 0, yes = 1;
    H5Tenum_insert(bool_t, "FALSE", &no);
    H5Tenum_insert(bool_t, "TRUE", &yes);
    int8_t mask[6] = {1, 1, 1, 1, 1, 0};
    hid_t d = H5Dcreate2(f, "mask", bool_t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, bool_t, H5S_ALL, H5S_ALL, H5P_DEFAULT, mask);
    H5Dclose(d);
    H5Tclose(bool_t);
    H5Sclose(s);
    H5Fclose(f);
  }
  Batch b = read_batch(path, decoder_spec());
  Batch want = decoder_batch();
  want.mask = BoolTensor(Shape{2, 3}, {1, 1, 1, 1, 1, 0});
  expect_same(b, want);
}

// ---- validation: each error, through a file (read_batch) --------------------------------------

/// Writes `b` after `edit` and returns read_batch's error against `spec`.
std::string file_error(const std::string& name, Batch b, const BatchSpec& spec) {
  std::string path = temp_path(name);
  write_batch(path, b);
  return error_of([&] { read_batch(path, spec); });
}

TEST(BatchIoErrors, MissingFileAndDatasets) {
  std::string path = temp_path("absent.h5");
  EXPECT_EQ(error_of([&] { read_batch(path, decoder_spec()); }), path + ": does not exist");
  {
    h5::File f = h5::File::create(path);
    f.write("targets", IndexTensor(Shape{1}, 0));
  }
  EXPECT_EQ(error_of([&] { read_batch(path, decoder_spec()); }),
            path + ": missing dataset /tokens");
  Batch b = decoder_batch();
  b.targets = IndexTensor();
  path = temp_path("no_targets.h5");
  write_batch(path, b);
  EXPECT_EQ(error_of([&] { read_batch(path, decoder_spec()); }),
            path + ": missing dataset /targets");
}

TEST(BatchIoErrors, TokensNotTwoDimensionalOrFloat) {
  std::string path = temp_path("tokens_1d.h5");
  {
    h5::File f = h5::File::create(path);
    f.write("tokens", IndexTensor(Shape{4}, 1));
    f.write("targets", IndexTensor(Shape{4}, 1));
  }
  EXPECT_EQ(error_of([&] { read_batch(path, decoder_spec()); }),
            path + ": /tokens has shape [4]; expected [B, T] with B, T ≥ 1");
  path = temp_path("tokens_float.h5");
  {
    h5::File f = h5::File::create(path);
    f.write("tokens", Tensor<float>::zeros({2, 3}));
    f.write("targets", IndexTensor(Shape{2, 3}, 1));
  }
  EXPECT_EQ(error_of([&] { read_batch(path, decoder_spec()); }),
            path + ": dataset /tokens has dtype float32; expected int32");
}

TEST(BatchIoErrors, AHugeDeclaredShapeIsRefusedBeforeAllocating) {
  // What h5py writes for f.create_dataset("tokens", shape=(2**40, 2), dtype="i4"): a few KB.
  std::string path = temp_path("huge_tokens.h5");
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t dims[2] = {hsize_t{1} << 40, 2};
  hid_t s = H5Screate_simple(2, dims, nullptr);
  H5Dclose(H5Dcreate2(f, "tokens", H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  H5Dclose(H5Dcreate2(f, "targets", H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  H5Sclose(s);
  H5Fclose(f);
  const std::string msg = error_of([&] { read_batch(path, decoder_spec()); });
  EXPECT_EQ(msg.rfind(path + ": dataset /tokens of shape [1099511627776, 2] needs 8192 GiB; this "
                             "machine has ",
                      0),
            0u)
      << msg;
}

TEST(BatchIoErrors, SequenceLongerThanMaxLen) {
  BatchSpec spec = decoder_spec();
  spec.max_len = 2;
  EXPECT_EQ(file_error("too_long.h5", decoder_batch(), spec),
            temp_path("too_long.h5") + ": /tokens has 3 positions; the model's max_len is 2");
}

TEST(BatchIoErrors, TokenOutsideTheVocabulary) {
  Batch b = decoder_batch();
  b.tokens[4] = 10;
  EXPECT_EQ(file_error("bad_token.h5", b, decoder_spec()),
            temp_path("bad_token.h5") + ": /tokens[1, 1] = 10 is outside the vocabulary [0, 10)");
  b.tokens[4] = -1;
  EXPECT_EQ(file_error("neg_token.h5", b, decoder_spec()),
            temp_path("neg_token.h5") + ": /tokens[1, 1] = -1 is outside the vocabulary [0, 10)");
}

TEST(BatchIoErrors, TargetsOfTheWrongShape) {
  Batch b = decoder_batch();
  b.targets = IndexTensor(Shape{2}, {1, 2});
  EXPECT_EQ(file_error("dec_targets.h5", b, decoder_spec()),
            temp_path("dec_targets.h5") +
                ": /targets has shape [2]; expected [2, 3] (a decoder batch has one target per "
                "position)");
  b = encoder_batch();
  b.targets = IndexTensor(Shape{2, 4}, 0);
  EXPECT_EQ(file_error("enc_targets.h5", b, encoder_spec()),
            temp_path("enc_targets.h5") +
                ": /targets has shape [2, 4]; expected [2] (an encoder batch has one class per "
                "example)");
}

TEST(BatchIoErrors, TargetOutsideTheClasses) {
  Batch b = encoder_batch();
  b.targets[1] = 3;
  EXPECT_EQ(file_error("bad_class.h5", b, encoder_spec()),
            temp_path("bad_class.h5") +
                ": /targets[1] = 3 is outside the classes [0, 3) and not -1 (ignored)");
  b = decoder_batch();
  b.targets[2] = -2;
  EXPECT_EQ(file_error("bad_target.h5", b, decoder_spec()),
            temp_path("bad_target.h5") +
                ": /targets[0, 2] = -2 is outside the classes [0, 10) and not -1 (ignored)");
}

TEST(BatchIoErrors, Positions) {
  Batch b = encoder_batch();
  b.positions = IndexTensor();
  EXPECT_EQ(file_error("no_positions.h5", b, encoder_spec()),
            temp_path("no_positions.h5") +
                ": missing dataset /positions (an encoder batch reads out one position per "
                "example)");
  b.positions = IndexTensor(Shape{3}, 0);
  EXPECT_EQ(file_error("positions_shape.h5", b, encoder_spec()),
            temp_path("positions_shape.h5") +
                ": /positions has shape [3]; expected [2] (one read-out position per example)");
  b.positions = IndexTensor(Shape{2}, {0, 4});
  EXPECT_EQ(
      file_error("position_outside.h5", b, encoder_spec()),
      temp_path("position_outside.h5") + ": /positions[1] = 4 is outside the sequence [0, 4)");
  b.positions = IndexTensor(Shape{2}, {0, 3});
  EXPECT_EQ(
      file_error("position_on_pad.h5", b, encoder_spec()),
      temp_path("position_on_pad.h5") + ": /positions[1] = 3 points at padding (/mask[1, 3] = 0)");
}

TEST(BatchIoErrors, Masks) {
  Batch b = encoder_batch();
  b.mask = BoolTensor(Shape{2, 3}, 1);
  EXPECT_EQ(file_error("mask_shape.h5", b, encoder_spec()),
            temp_path("mask_shape.h5") + ": /mask has shape [2, 3]; expected [2, 4] (as /tokens)");
  b.mask = BoolTensor(Shape{2, 4}, 1);
  b.mask[6] = 2;
  EXPECT_EQ(file_error("mask_values.h5", b, encoder_spec()),
            temp_path("mask_values.h5") +
                ": /mask[1, 2] = 2; mask values must be 0 (padding) or 1 (real token)");
  b = seq2seq_batch();
  b.src_mask = BoolTensor(Shape{2, 4}, 1);
  EXPECT_EQ(
      file_error("src_mask_shape.h5", b, seq2seq_spec()),
      temp_path("src_mask_shape.h5") + ": /src_mask has shape [2, 4]; expected [2, 5] (as /src)");
}

TEST(BatchIoErrors, Seq2seqSource) {
  Batch b = seq2seq_batch();
  b.src = IndexTensor();
  b.src_mask = BoolTensor();
  EXPECT_EQ(
      file_error("no_src.h5", b, seq2seq_spec()),
      temp_path("no_src.h5") + ": missing dataset /src (a seq2seq batch needs source ids [B, S])");
  b.src = IndexTensor(Shape{3, 5}, 1);
  EXPECT_EQ(file_error("src_batch.h5", b, seq2seq_spec()),
            temp_path("src_batch.h5") +
                ": /src has shape [3, 5]; expected [2, S] with S ≥ 1 (B as /tokens)");
  b = seq2seq_batch();
  b.src[3] = 20;
  EXPECT_EQ(file_error("src_id.h5", b, seq2seq_spec()),
            temp_path("src_id.h5") + ": /src[0, 3] = 20 is outside the source vocabulary [0, 20)");
  BatchSpec spec = seq2seq_spec();
  spec.src_max_len = 4;
  EXPECT_EQ(file_error("src_long.h5", seq2seq_batch(), spec),
            temp_path("src_long.h5") + ": /src has 5 positions; the model's src_max_len is 4");
  EXPECT_EQ(file_error("src_for_decoder.h5", seq2seq_batch(), decoder_spec()),
            temp_path("src_for_decoder.h5") +
                ": /src is only read by seq2seq models; this is a decoder batch");
}

TEST(BatchIoErrors, UnknownArch) {
  BatchSpec spec = decoder_spec();
  spec.arch = "rnn";
  EXPECT_EQ(file_error("arch.h5", decoder_batch(), spec),
            temp_path("arch.h5") + ": unknown arch 'rnn' (expected encoder, decoder or seq2seq)");
}

TEST(BatchIo, CheckBatchWorksOnBatchesInMemory) {
  EXPECT_NO_THROW(check_batch(decoder_batch(), decoder_spec(), "copy task"));
  Batch b = decoder_batch();
  b.targets = IndexTensor();  // inference batches may carry no targets
  EXPECT_NO_THROW(check_batch(b, decoder_spec(), "copy task"));
  b.tokens[0] = 99;
  EXPECT_EQ(error_of([&] { check_batch(b, decoder_spec(), "copy task"); }),
            "copy task: /tokens[0, 0] = 99 is outside the vocabulary [0, 10)");
}

}  // namespace
}  // namespace qkv
