#include "train/checkpoint.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/h5.h"
#include "core/version.h"
#include "nn/model.h"
#include "test_files.h"

namespace qkv {
namespace {

using nlohmann::json;

using qkv::test::error_of;
using qkv::test::temp_path;

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Tensor<float> randn(const Shape& shape, Rng& rng) {
  Tensor<float> t = Tensor<float>::empty(shape);
  for (float& x : t) x = static_cast<float>(rng.normal());
  return t;
}

bool bit_equal(const Tensor<float>& a, const Tensor<float>& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<size_t>(a.numel()) * sizeof(float)) == 0;
}

/// A small decoder checkpoint with every optional part filled in.
Checkpoint sample() {
  Rng rng(3);
  Checkpoint c;
  c.model_config = {{"arch", "decoder"}, {"vocab_size", 5}, {"d_model", 4}, {"n_layers", 1}};
  c.train_config = {{"lr", 3e-4}, {"steps", 100}, {"optimizer", "adamw"}};
  c.task_config = {{"name", "copy"}, {"length", 6}};
  Tensor<float> emb = randn({5, 4}, rng);
  emb[0] = -0.0f;
  emb[1] = 1e-40f;  // subnormal
  emb[2] = std::numeric_limits<float>::max();
  c.params = {{"tok_emb.weight", emb},
              {"blocks.0.attn.W_Q.weight", randn({4, 4}, rng)},
              {"head.bias", randn({5}, rng)}};
  OptimizerState<float> o;
  o.type = "adamw";
  o.step = 7;
  o.hparams = {
      {"lr", 3e-4},           {"beta1", 0.9},     {"beta2", 0.999},        {"eps", 1e-8},
      {"weight_decay", 0.01}, {"amsgrad", false}, {"betas", {0.9, 0.999}}, {"sizes", {1, 2}},
      {"note", "größer"},     {"max_steps", 100}};
  for (const char* slot : {"m", "v"})
    for (const auto& [name, t] : c.params) o.slots[slot].emplace_back(name, randn(t.shape(), rng));
  c.optimizer = o;
  c.train.step = 7;
  c.train.epoch = 2;
  c.train.extra = {{"best_val_loss", 1.25}, {"cursor", {{"split", "train"}, {"index", 3}}}};
  Rng data(11), dropout(12);
  dropout.next_u64();
  c.train.rng = {{"data", data.state()}, {"dropout", dropout.state()}};
  c.vocab = {"<pad>", "the", "größer", "猫", "a b"};
  c.src_vocab = {"<pad>", "one", "two"};
  return c;
}

ParamShapes sample_shapes() {
  return {{"tok_emb.weight", {5, 4}}, {"blocks.0.attn.W_Q.weight", {4, 4}}, {"head.bias", {5}}};
}

void expect_same(const Checkpoint& a, const Checkpoint& b) {
  EXPECT_EQ(a.model_config, b.model_config);
  EXPECT_EQ(a.train_config, b.train_config);
  EXPECT_EQ(a.task_config, b.task_config);
  ASSERT_EQ(a.params.size(), b.params.size());
  for (size_t i = 0; i < a.params.size(); ++i) {
    EXPECT_EQ(a.params[i].first, b.params[i].first);
    EXPECT_TRUE(bit_equal(a.params[i].second, b.params[i].second)) << a.params[i].first;
  }
  ASSERT_EQ(a.optimizer.has_value(), b.optimizer.has_value());
  if (a.optimizer) {
    EXPECT_EQ(a.optimizer->type, b.optimizer->type);
    EXPECT_EQ(a.optimizer->step, b.optimizer->step);
    EXPECT_EQ(a.optimizer->hparams, b.optimizer->hparams);
    ASSERT_EQ(a.optimizer->slots.size(), b.optimizer->slots.size());
    for (const auto& [slot, list] : a.optimizer->slots) {
      const auto& other = b.optimizer->slots.at(slot);
      ASSERT_EQ(list.size(), other.size()) << slot;
      for (size_t i = 0; i < list.size(); ++i) {
        EXPECT_EQ(list[i].first, other[i].first);
        EXPECT_TRUE(bit_equal(list[i].second, other[i].second)) << slot << " " << list[i].first;
      }
    }
  }
  EXPECT_EQ(a.train.step, b.train.step);
  EXPECT_EQ(a.train.epoch, b.train.epoch);
  EXPECT_EQ(a.train.extra, b.train.extra);
  EXPECT_EQ(a.train.rng, b.train.rng);
  EXPECT_EQ(a.vocab, b.vocab);
  EXPECT_EQ(a.src_vocab, b.src_vocab);
}

TEST(Checkpoint, RoundTripIsBitExact) {
  std::string path = temp_path("roundtrip.h5");
  Checkpoint c = sample();
  save_checkpoint(path, c);
  Checkpoint back = load_checkpoint(path);
  expect_same(c, back);
  EXPECT_EQ(back.qkv_version, QKV_VERSION);  // core/version.h, generated from project(VERSION)
  Checkpoint validated = load_checkpoint(path, sample_shapes());
  expect_same(c, validated);
  EXPECT_TRUE(bit_equal(validated.param("head.bias"), c.params[2].second));
  EXPECT_EQ(error_of([&] { validated.param("nope"); }), "checkpoint has no parameter 'nope'");
}

TEST(Checkpoint, ModelOnlyCheckpointRoundTrips) {
  std::string path = temp_path("model_only.h5");
  Checkpoint c;
  c.model_config = {{"arch", "encoder"}};
  c.params = {{"w", Tensor<float>::from({2}, {1, 2})}};
  save_checkpoint(path, c);
  Checkpoint back = load_checkpoint(path);
  expect_same(c, back);
  EXPECT_FALSE(back.optimizer.has_value());
  EXPECT_TRUE(back.vocab.empty());
  EXPECT_TRUE(back.train.rng.empty());
}

TEST(Checkpoint, ValidatedLoadReturnsParametersInTheExpectedOrder) {
  std::string path = temp_path("order.h5");
  save_checkpoint(path, sample());
  ParamShapes shapes = sample_shapes();
  std::swap(shapes[0], shapes[2]);
  Checkpoint c = load_checkpoint(path, shapes);
  EXPECT_EQ(c.params[0].first, "head.bias");
  EXPECT_EQ(c.params[2].first, "tok_emb.weight");
}

TEST(Checkpoint, ModelCheckpointIsCheckedAgainstItsOwnConfig) {
  ModelConfig config;
  config.arch = Arch::kDecoder;
  config.vocab_size = 7;
  config.max_len = 5;
  config.d_model = 8;
  config.n_heads = 2;
  config.n_layers = 1;
  config.d_ff = 16;
  const Model<float> model(config, 1);
  Checkpoint c;
  c.model_config = config.to_json();
  c.params = model.export_parameters();
  std::reverse(c.params.begin(), c.params.end());  // the file's order is not the model's
  const std::string good = temp_path("model.h5");
  save_checkpoint(good, c);

  ModelConfig read;
  const Checkpoint back = load_model_checkpoint(good, read);
  EXPECT_EQ(read.to_json(), config.to_json());
  EXPECT_EQ(back.params.size(), param_shapes(config).size());
  for (size_t i = 0; i < back.params.size(); ++i)  // in the model's canonical order
    EXPECT_EQ(back.params[i].first, param_shapes(config)[i].first);

  // One parameter short: named. A config that is no model: the file named.
  c.params.pop_back();  // the reversed list ends with the first parameter, tok_emb.weight
  const std::string missing = temp_path("missing.h5");
  save_checkpoint(missing, c);
  EXPECT_NE(error_of([&] { load_model_checkpoint(missing, read); }).find("'tok_emb.weight'"),
            std::string::npos);
  c.model_config["d_model"] = 7;  // not divisible by n_heads
  const std::string bad = temp_path("bad_config.h5");
  save_checkpoint(bad, c);
  EXPECT_NE(error_of([&] {
              load_model_checkpoint(bad, read);
            }).find(bad + ": /config attribute 'model' does not describe a model"),
            std::string::npos)
      << error_of([&] { load_model_checkpoint(bad, read); });
}

TEST(Checkpoint, SaveIsAtomicAndLeavesNoTemporaryFile) {
  std::string path = temp_path("atomic.h5");
  Checkpoint c = sample();
  save_checkpoint(path, c);
  c.train.step = 8;
  c.params[2].second[0] = 42.0f;
  save_checkpoint(path, c);  // replaces the first
  EXPECT_FALSE(file_exists(path + ".tmp"));
  Checkpoint back = load_checkpoint(path);
  EXPECT_EQ(back.train.step, 8);
  EXPECT_EQ(back.params[2].second[0], 42.0f);
}

TEST(Checkpoint, SavingIntoAMissingFolderThrowsAndTouchesNothing) {
  std::string good = temp_path("kept.h5");
  save_checkpoint(good, sample());
  std::string before = file_bytes(good);
  std::string path = temp_path("no_such_folder/ckpt.h5");
  EXPECT_EQ(error_of([&] { save_checkpoint(path, sample()); }),
            "cannot save checkpoint " + path + ": folder " + temp_path("no_such_folder") +
                " does not exist");
  EXPECT_FALSE(file_exists(path + ".tmp"));
  EXPECT_EQ(file_bytes(good), before);
}

TEST(Checkpoint, RefusesNonFiniteValuesAndKeepsThePreviousFile) {
  std::string path = temp_path("nan_refused.h5");
  save_checkpoint(path, sample());
  std::string before = file_bytes(path);
  Checkpoint bad = sample();
  bad.params[1].second[5] = std::nanf("");
  EXPECT_EQ(error_of([&] { save_checkpoint(path, bad); }),
            "cannot save checkpoint " + path +
                ": parameter 'blocks.0.attn.W_Q.weight' holds a non-finite value (nan at index 5)");
  bad = sample();
  bad.optimizer->slots["v"][0].second[1] = -INFINITY;
  EXPECT_EQ(error_of([&] { save_checkpoint(path, bad); }),
            "cannot save checkpoint " + path +
                ": optimizer state v of 'tok_emb.weight' holds a non-finite value (-inf at index "
                "1)");
  EXPECT_EQ(file_bytes(path), before);
  EXPECT_FALSE(file_exists(path + ".tmp"));
}

TEST(Checkpoint, RefusesWhatCannotBeStored) {
  std::string path = temp_path("refused.h5");
  Checkpoint c = sample();
  c.params.push_back(c.params[0]);
  EXPECT_EQ(error_of([&] { save_checkpoint(path, c); }),
            "cannot save checkpoint " + path + ": parameter 'tok_emb.weight' appears twice");
  c = sample();
  c.params[0].first = "tok_emb/weight";
  EXPECT_EQ(error_of([&] { save_checkpoint(path, c); }),
            "cannot save checkpoint " + path +
                ": parameter name 'tok_emb/weight' is not valid (names are dotted paths without "
                "'/')");
  c = sample();
  c.optimizer->hparams["schedule"] = {{"warmup", 10}};
  EXPECT_EQ(error_of([&] { save_checkpoint(path, c); }),
            "cannot save checkpoint " + path +
                ": optimizer hyper-parameter 'schedule' is {\"warmup\":10}; only numbers, bools, "
                "strings and arrays of numbers can be HDF5 attributes");
  EXPECT_FALSE(file_exists(path));
  EXPECT_FALSE(file_exists(path + ".tmp"));
}

TEST(Checkpoint, FailureAfterWritingRemovesTheTemporaryFile) {
  // The target is a folder, so the final rename fails after the .tmp file was written.
  std::string path = temp_path("target_is_a_folder");
  ::mkdir(path.c_str(), 0755);
  std::ofstream(path + "/keep") << "x";
  EXPECT_EQ(error_of([&] { save_checkpoint(path, sample()); }),
            "cannot save checkpoint " + path + ": cannot rename " + path + ".tmp to " + path +
                " (Is a directory)");
  EXPECT_FALSE(file_exists(path + ".tmp"));
  EXPECT_TRUE(file_exists(path + "/keep"));
}

TEST(Checkpoint, FailureToCreateTheTemporaryFileKeepsThePreviousFile) {
  std::string path = temp_path("tmp_blocked.h5");
  save_checkpoint(path, sample());
  std::string before = file_bytes(path);
  ::mkdir((path + ".tmp").c_str(), 0755);  // something in the way of the .tmp file
  EXPECT_EQ(error_of([&] { save_checkpoint(path, sample()); }),
            "cannot save checkpoint " + path + ": " + path + ".tmp: cannot create: it is a folder");
  EXPECT_EQ(file_bytes(path), before);
  ::rmdir((path + ".tmp").c_str());
}

TEST(Checkpoint, AFullDiskFailsCleanlyAndKeepsThePreviousCheckpoint) {
  const test::Tmpfs disk("full_disk", "64k");
  if (!disk.error().empty()) GTEST_SKIP() << disk.error();
  const std::string& dir = disk.dir();
  const std::string small = dir + "/small.h5", big = dir + "/big.h5";
  save_checkpoint(small, sample());
  const std::string before = file_bytes(small);
  Checkpoint huge = sample();
  Rng rng(5);
  huge.params.emplace_back("pad.weight", randn({128, 256}, rng));  // 128 KiB: cannot fit
  EXPECT_EQ(error_of([&] { save_checkpoint(big, huge); }),
            "cannot save checkpoint " + big + ": " + big +
                ".tmp: cannot write (No space left on device)");
  EXPECT_FALSE(file_exists(big + ".tmp"));
  EXPECT_FALSE(file_exists(big));
  EXPECT_EQ(file_bytes(small), before);
  expect_same(load_checkpoint(small), sample());
  // The file system has room again: the same save now works.
  ::unlink(small.c_str());
  huge.params.back().second = randn({64, 128}, rng);
  save_checkpoint(big, huge);
  EXPECT_EQ(load_checkpoint(big).params.size(), huge.params.size());
}

TEST(Checkpoint, OptimizerStateRoundTripsIntoAnOptimizer) {
  for (const char* type : {"adamw", "sgd"}) {
    Rng rng(5);
    OptimParams<float> params = {{"w", Var<float>(randn({3, 2}, rng), true)},
                                 {"b", Var<float>(randn({2}, rng), true)}};
    json h = std::string(type) == "sgd" ? json{{"momentum", 0.9}, {"nesterov", true}} : json{};
    auto opt = make_optimizer<float>(type, params, h);
    for (int step = 0; step < 3; ++step) {
      for (auto& [name, p] : params) p.grad() = randn(p.value().shape(), rng);
      opt->step();
    }
    Checkpoint c;
    for (const auto& [name, p] : params) c.params.emplace_back(name, p.value().clone());
    c.optimizer = opt->export_state();
    std::string path = temp_path(std::string("optimizer_") + type + ".h5");
    save_checkpoint(path, c);
    Checkpoint back = load_checkpoint(path, {{"w", {3, 2}}, {"b", {2}}});
    OptimParams<float> fresh = {{"w", Var<float>(back.params[0].second, true)},
                                {"b", Var<float>(back.params[1].second, true)}};
    auto restored = make_optimizer<float>(type, fresh);
    restored->import_state(*back.optimizer);
    EXPECT_EQ(restored->steps(), 3) << type;
    EXPECT_EQ(restored->hparams(), opt->hparams()) << type;
    for (const std::string& slot : opt->slot_names())
      for (const char* name : {"w", "b"})
        EXPECT_TRUE(bit_equal(restored->slot(slot, name), opt->slot(slot, name)))
            << type << " " << slot << " " << name;
  }
}

// ---- loading failures, each with a file built here through core/h5 ---------------------------

/// The parts of a raw checkpoint file that the failure tests vary.
struct Raw {
  bool has_format = true;
  std::string format = "qkv-checkpoint";
  bool format_as_int = false;
  bool has_version = true;
  int64_t version = 1;
  bool has_config = true;
  std::string model_json = R"({"arch": "decoder"})";
  bool has_model = true;
  std::vector<std::pair<std::string, Tensor<float>>> params = sample().params;
  std::vector<std::pair<std::string, Tensor<double>>> double_params;
};

std::string write_raw(const std::string& name, const Raw& raw) {
  std::string path = temp_path(name);
  h5::File f = h5::File::create(path);
  if (raw.has_format && raw.format_as_int) f.set_int_attr("format", 1);
  if (raw.has_format && !raw.format_as_int) f.set_string_attr("format", raw.format);
  if (raw.has_version) f.set_int_attr("format_version", raw.version);
  if (raw.has_config) f.create_group("config").set_string_attr("model", raw.model_json);
  if (raw.has_model) {
    h5::Group m = f.create_group("model");
    for (const auto& [n, t] : raw.params) m.write(n, t);
    for (const auto& [n, t] : raw.double_params) m.write(n, t);
  }
  f.close();
  return path;
}

std::string load_error(const std::string& path) {
  return error_of([&] { load_checkpoint(path, sample_shapes()); });
}

TEST(CheckpointLoad, TheRawBuilderMakesAValidFile) {
  std::string path = write_raw("raw_ok.h5", Raw{});
  Checkpoint c = load_checkpoint(path, sample_shapes());
  EXPECT_EQ(c.model_config["arch"], "decoder");
  EXPECT_EQ(c.train_config, json::object());
  EXPECT_FALSE(c.optimizer.has_value());
}

TEST(CheckpointLoad, MissingFile) {
  std::string path = temp_path("does_not_exist.h5");
  EXPECT_EQ(load_error(path), path + ": does not exist");
}

TEST(CheckpointLoad, NotHdf5) {
  std::string path = temp_path("not_hdf5.h5");
  std::ofstream(path) << "{\"this\": \"is json\"}\n";
  EXPECT_EQ(load_error(path), path + ": not an HDF5 file");
}

TEST(CheckpointLoad, MissingFormat) {
  Raw raw;
  raw.has_format = false;
  std::string path = write_raw("no_format.h5", raw);
  EXPECT_EQ(load_error(path), path + ": not a qkv checkpoint (missing attribute 'format')");
}

TEST(CheckpointLoad, WrongFormat) {
  Raw raw;
  raw.format = "pytorch";
  std::string path = write_raw("wrong_format.h5", raw);
  EXPECT_EQ(load_error(path), path +
                                  ": not a qkv checkpoint (attribute 'format' is \"pytorch\", "
                                  "expected \"qkv-checkpoint\")");
  raw.format_as_int = true;
  path = write_raw("int_format.h5", raw);
  EXPECT_EQ(load_error(path), path +
                                  ": not a qkv checkpoint (attribute 'format' is int64 [], "
                                  "expected \"qkv-checkpoint\")");
}

TEST(CheckpointLoad, NewerFormatVersion) {
  Raw raw;
  raw.version = 2;
  std::string path = write_raw("v2.h5", raw);
  EXPECT_EQ(load_error(path),
            path + ": written by a newer qkv (format_version 2); this qkv reads version 1");
  raw.has_version = false;
  path = write_raw("no_version.h5", raw);
  EXPECT_EQ(load_error(path), path + ": not a qkv checkpoint (missing attribute 'format_version')");
  raw.has_version = true;
  raw.version = 0;
  path = write_raw("v0.h5", raw);
  EXPECT_EQ(load_error(path), path + ": format_version 0 is not valid; this qkv reads version 1");
}

TEST(CheckpointLoad, MissingParameter) {
  Raw raw;
  raw.params.pop_back();
  std::string path = write_raw("missing_param.h5", raw);
  EXPECT_EQ(load_error(path), path + ": missing parameter 'head.bias' [5] in /model");
  raw.params.pop_back();
  path = write_raw("missing_params.h5", raw);
  EXPECT_EQ(load_error(path),
            path +
                ": missing parameters in /model: 'blocks.0.attn.W_Q.weight' [4, 4], "
                "'head.bias' [5]");
}

TEST(CheckpointLoad, UnexpectedParameter) {
  Raw raw;
  raw.params.emplace_back("head.weight", Tensor<float>::zeros({5, 4}));
  std::string path = write_raw("unexpected_param.h5", raw);
  EXPECT_EQ(load_error(path),
            path +
                ": unexpected parameter 'head.weight' in /model (the model has no such "
                "parameter)");
}

TEST(CheckpointLoad, WrongShape) {
  Raw raw;
  raw.params[0].second = Tensor<float>::zeros({4, 5});
  std::string path = write_raw("wrong_shape.h5", raw);
  EXPECT_EQ(load_error(path),
            path + ": parameter 'tok_emb.weight' has shape [4, 5]; the model expects [5, 4]");
}

TEST(CheckpointLoad, WrongDtype) {
  Raw raw;
  raw.params.pop_back();
  raw.double_params.emplace_back("head.bias", Tensor<double>::zeros({5}));
  std::string path = write_raw("wrong_dtype.h5", raw);
  EXPECT_EQ(load_error(path),
            path + ": parameter 'head.bias' is float64; qkv checkpoints store float32");
  // The unvalidated load checks dtypes too.
  EXPECT_EQ(error_of([&] { load_checkpoint(path); }),
            path + ": parameter 'head.bias' is float64; qkv checkpoints store float32");
}

TEST(CheckpointLoad, NonFiniteValue) {
  Raw raw;
  raw.params[2].second = raw.params[2].second.clone();
  raw.params[2].second[3] = std::nanf("");
  std::string path = write_raw("nan.h5", raw);
  EXPECT_EQ(load_error(path),
            path + ": parameter 'head.bias' holds a non-finite value (nan at index 3)");
  EXPECT_EQ(error_of([&] { load_checkpoint(path); }),
            path + ": parameter 'head.bias' holds a non-finite value (nan at index 3)");
  raw.params[2].second[3] = INFINITY;
  path = write_raw("inf.h5", raw);
  EXPECT_EQ(load_error(path),
            path + ": parameter 'head.bias' holds a non-finite value (inf at index 3)");
}

TEST(CheckpointLoad, ConfigThatIsNotJson) {
  Raw raw;
  raw.model_json = "{\"arch\": decoder}";
  std::string path = write_raw("bad_json.h5", raw);
  EXPECT_EQ(load_error(path),
            path +
                ": /config attribute 'model' is not valid JSON (parse error at line 1, column 10: "
                "syntax error while parsing value - invalid literal; last read: '\"arch\": d')");
  raw.model_json = "[1, 2]";
  path = write_raw("json_array.h5", raw);
  EXPECT_EQ(load_error(path),
            path + ": /config attribute 'model' is not a JSON object (it is array)");
}

TEST(CheckpointLoad, MissingGroups) {
  Raw raw;
  raw.has_config = false;
  std::string path = write_raw("no_config.h5", raw);
  EXPECT_EQ(load_error(path), path + ": missing group /config");
  raw.has_config = true;
  raw.has_model = false;
  path = write_raw("no_model.h5", raw);
  EXPECT_EQ(load_error(path), path + ": missing group /model");
}

TEST(CheckpointLoad, NestedGroupsInModelAreNotParameters) {
  std::string path = write_raw("nested.h5", Raw{});
  {
    // Add /model/blocks/0 through the raw C API (core/h5 opens files read-only).
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, "/model/blocks", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(g);
    H5Fclose(f);
  }
  // Edited behind qkv's back, the file no longer matches its checksum: exactly what it is for.
  EXPECT_EQ(load_error(path).rfind(path + ": the file is damaged: it is ", 0), 0u);
  // With the checksum header blanked out (as an outside tool's file has none), the file is
  // checked by reading it in a child process and then loads as far as its real problem.
  {
    std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
    io.write(std::string(h5::kHeaderBytes, '\0').data(), h5::kHeaderBytes);
  }
  EXPECT_EQ(load_error(path),
            path +
                ": /model/blocks is not a dataset; parameters are datasets named with dots "
                "(e.g. /model/blocks.0.ln1.weight)");
}

TEST(CheckpointLoad, OptimizerStateMustMatchTheParameters) {
  Checkpoint c = sample();
  c.optimizer->slots["m"][2].second = Tensor<float>::zeros({6});
  std::string path = temp_path("bad_slot_shape.h5");
  save_checkpoint(path, c);
  EXPECT_EQ(load_error(path),
            path +
                ": optimizer state /optimizer/m/head.bias has shape [6]; parameter "
                "'head.bias' has [5]");
  c = sample();
  c.optimizer->slots["m"].emplace_back("ghost.weight", Tensor<float>::zeros({1}));
  path = temp_path("ghost_slot.h5");
  save_checkpoint(path, c);
  EXPECT_EQ(load_error(path), path +
                                  ": optimizer state /optimizer/m/ghost.weight belongs to no "
                                  "parameter of the model ('ghost.weight')");
}

// ---- h5py interoperability ---------------------------------------------------------------------

bool have_h5py() {
  return std::system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") == 0;
}

int run_python(const std::string& name, const std::string& script, const std::string& arg) {
  std::string file = temp_path(name + ".py");
  std::ofstream(file) << script;
  return std::system(("/usr/bin/python3 " + file + " " + arg).c_str());
}

TEST(CheckpointH5py, AFileWrittenByH5pyLoads) {
  if (!have_h5py()) GTEST_SKIP() << "/usr/bin/python3 has no h5py";
  std::string path = temp_path("h5py_written.h5");
  const char* script = R"PY(
import json, sys
import h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["format"] = "qkv-checkpoint"
    f.attrs["format_version"] = 1
    f.attrs["qkv_version"] = "h5py"
    f.attrs["exported_from"] = "torch"          # unknown extras are ignored
    c = f.create_group("config")
    c.attrs["model"] = json.dumps({"arch": "decoder", "vocab_size": 5, "d_model": 4})
    c.attrs["train"] = json.dumps({"lr": 0.001})
    c.attrs["task"] = json.dumps({"name": "copy"})
    c.attrs["comment"] = np.bytes_("fixed-length bytes")
    m = f.create_group("model")
    m["tok_emb.weight"] = (np.arange(20, dtype=np.float32) / 8).reshape(5, 4)
    m["blocks.0.attn.W_Q.weight"] = np.eye(4, dtype=np.float32)
    m["head.bias"] = np.array([0.5, -1, 2, 0, 1e-3], dtype=np.float32)
    o = f.create_group("optimizer")
    o.attrs["type"] = "adam"
    o.attrs["step"] = 3
    o.attrs["lr"] = 1e-3
    o.attrs["amsgrad"] = False
    o.attrs["betas"] = [0.9, 0.999]
    o.create_group("m")["head.bias"] = np.full(5, 0.25, np.float32)
    t = f.create_group("train")
    t.attrs["step"] = 3
    t.attrs["epoch"] = 1
    t.attrs["state"] = json.dumps({"best": 0.5})
    t["rng"] = np.array([[1, 2, 3, 2**64 - 1]], dtype=np.uint64)
    t.create_dataset("rng_names", data=["data"], dtype=h5py.string_dtype())
    f.create_dataset("vocab", data=["<pad>", "the", "cat", "größer", "猫"],
                     dtype=h5py.string_dtype())
)PY";
  ASSERT_EQ(run_python("h5py_write", script, path), 0);
  Checkpoint c = load_checkpoint(path, sample_shapes());
  EXPECT_EQ(c.qkv_version, "h5py");
  EXPECT_EQ(c.model_config["vocab_size"], 5);
  EXPECT_EQ(c.train_config["lr"], 0.001);
  EXPECT_EQ(c.task_config["name"], "copy");
  EXPECT_EQ(c.param("tok_emb.weight")[19], 19.0f / 8);
  EXPECT_EQ(c.param("head.bias")[4], 1e-3f);
  ASSERT_TRUE(c.optimizer.has_value());
  EXPECT_EQ(c.optimizer->type, "adam");
  EXPECT_EQ(c.optimizer->step, 3);
  EXPECT_EQ(c.optimizer->hparams,
            (json{{"lr", 1e-3}, {"amsgrad", false}, {"betas", {0.9, 0.999}}}));
  EXPECT_EQ(c.optimizer->slots.at("m").at(0).first, "head.bias");
  EXPECT_EQ(c.optimizer->slots.at("m").at(0).second[0], 0.25f);
  EXPECT_EQ(c.train.step, 3);
  EXPECT_EQ(c.train.epoch, 1);
  EXPECT_EQ(c.train.extra, (json{{"best", 0.5}}));
  ASSERT_EQ(c.train.rng.size(), 1u);
  EXPECT_EQ(c.train.rng[0].first, "data");
  EXPECT_EQ(c.train.rng[0].second, (Rng::State{1, 2, 3, ~0ULL}));
  EXPECT_EQ(c.vocab, (std::vector<std::string>{"<pad>", "the", "cat", "größer", "猫"}));
}

TEST(CheckpointH5py, H5pyReadsWhatQkvWrites) {
  if (!have_h5py()) GTEST_SKIP() << "/usr/bin/python3 has no h5py";
  std::string path = temp_path("for_h5py.h5");
  save_checkpoint(path, sample());
  const char* script = R"PY(
import json, sys
import h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    assert f.userblock_size == 512, f.userblock_size  # qkv's checksum header
    assert f.attrs["format"] == "qkv-checkpoint", f.attrs["format"]
    assert f.attrs["format_version"] == 1
    assert json.loads(f["config"].attrs["model"])["arch"] == "decoder"
    names = list(f["model"])
    assert names == ["tok_emb.weight", "blocks.0.attn.W_Q.weight", "head.bias"], names
    for n in names:
        assert f["model"][n].dtype == np.float32
    assert f["model"]["tok_emb.weight"].shape == (5, 4)
    o = f["optimizer"]
    assert o.attrs["type"] == "adamw" and o.attrs["step"] == 7
    assert o.attrs["amsgrad"] is np.False_ or o.attrs["amsgrad"] == False
    assert list(o.attrs["betas"]) == [0.9, 0.999]
    assert o.attrs["note"] == "größer"
    assert sorted(o) == ["m", "v"]
    assert f["train"]["rng"].dtype == np.uint64 and f["train"]["rng"].shape == (2, 4)
    assert json.loads(f["train"].attrs["state"])["best_val_loss"] == 1.25
    assert list(f["vocab"].asstr()[:]) == ["<pad>", "the", "größer", "猫", "a b"]
)PY";
  EXPECT_EQ(run_python("h5py_read", script, path), 0);
}

}  // namespace
}  // namespace qkv
