#include "core/h5.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "test_files.h"

namespace qkv::h5 {
namespace {

using qkv::test::error_of;
using qkv::test::temp_path;

TEST(H5, FloatTensorsRoundTripBitExactAtEveryRank) {
  std::string path = temp_path("floats.h5");
  Tensor<float> s = Tensor<float>::scalar(-0.0f);
  Tensor<float> v = Tensor<float>::from({4}, {1.5f, -2.25f, 1e-40f, 3.4e38f});
  Tensor<float> m = Tensor<float>::from({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor<double> d3 = Tensor<double>::from({2, 1, 2}, {0.1, 0.2, 1e-300, -7});
  Tensor<double> d4 = Tensor<double>::full({1, 2, 1, 3}, M_PI);
  Tensor<float> empty = Tensor<float>::zeros({0, 5});
  {
    File f = File::create(path);
    f.write("s", s);
    f.write("v", v);
    f.write("m", m);
    f.write("g/sub/d3", d3);  // missing groups on the way are created
    f.write("d4", d4);
    f.write("empty", empty);
    f.close();
  }
  File f = File::open(path);
  Tensor<float> s2 = f.read<float>("s");
  EXPECT_EQ(s2.shape(), Shape{});
  EXPECT_TRUE(std::signbit(s2.item()));
  for (auto [name, t] : {std::pair{"v", v}, std::pair{"m", m}}) {
    Tensor<float> r = f.read<float>(name);
    EXPECT_EQ(r.shape(), t.shape()) << name;
    EXPECT_EQ(r.to_vector(), t.to_vector()) << name;
  }
  EXPECT_EQ(f.read<double>("/g/sub/d3").to_vector(), d3.to_vector());
  EXPECT_EQ(f.group("g").read<double>("sub/d3").shape(), (Shape{2, 1, 2}));
  EXPECT_EQ(f.read<double>("d4").shape(), (Shape{1, 2, 1, 3}));
  EXPECT_EQ(f.read<float>("empty").shape(), (Shape{0, 5}));
  Info info = f.info("m");
  EXPECT_EQ(info.dtype, DType::kFloat32);
  EXPECT_EQ(info.dtype_name, "float32");
  EXPECT_EQ(info.dims, (std::vector<int64_t>{2, 3}));
}

TEST(H5, FloatWidthIsCheckedUnlessACastIsAsked) {
  std::string path = temp_path("cast.h5");
  {
    File f = File::create(path);
    f.write("d", Tensor<double>::from({2}, {0.1, -2.5}));
    f.write("f", Tensor<float>::from({2}, {0.5f, 3.0f}));
    f.write("i", IndexTensor(Shape{2}, 1));
  }
  File f = File::open(path);
  EXPECT_EQ(error_of([&] { f.read<float>("d"); }),
            path + ": dataset /d has dtype float64; expected float32");
  EXPECT_EQ(f.read<float>("d", /*allow_cast=*/true).to_vector(), (std::vector<float>{0.1f, -2.5f}));
  EXPECT_EQ(f.read<double>("f", /*allow_cast=*/true).to_vector(), (std::vector<double>{0.5, 3.0}));
  EXPECT_EQ(error_of([&] { f.read<double>("i", true); }),
            path + ": dataset /i has dtype int32; expected float64");
}

TEST(H5, IntegerAndMaskTensorsRoundTrip) {
  std::string path = temp_path("ints.h5");
  IndexTensor ids(Shape{2, 3}, {0, -1, 7, std::numeric_limits<int32_t>::max(),
                                std::numeric_limits<int32_t>::min(), 42});
  BoolTensor mask(Shape{2, 3}, {1, 1, 0, 1, 0, 255});
  {
    File f = File::create(path);
    f.write("ids", ids);
    f.write("mask", mask);
    f.write_scalar("loss", 2.5);
    f.write_u64("rng", Shape{2, 2}, {0, ~0ULL, 1ULL << 63, 12345});
  }
  File f = File::open(path);
  IndexTensor ids2 = f.read_index("ids");
  EXPECT_EQ(ids2.shape, ids.shape);
  EXPECT_EQ(ids2.data, ids.data);
  BoolTensor mask2 = f.read_bool("mask");
  EXPECT_EQ(mask2.shape, mask.shape);
  EXPECT_EQ(mask2.data, mask.data);
  EXPECT_EQ(f.info("mask").dtype, DType::kUInt8);
  EXPECT_EQ(f.read_scalar("loss"), 2.5);
  Shape shape;
  EXPECT_EQ(f.read_u64("rng", &shape), (std::vector<uint64_t>{0, ~0ULL, 1ULL << 63, 12345}));
  EXPECT_EQ(shape, (Shape{2, 2}));
  // Narrower or wider integer widths convert when the values fit.
  EXPECT_EQ(f.read_index("mask").data, (std::vector<int32_t>{1, 1, 0, 1, 0, 255}));
  EXPECT_EQ(error_of([&] { f.read_bool("ids"); }),
            path + ": dataset /ids holds -1 at index 1, outside the uint8 range");
  EXPECT_EQ(error_of([&] { f.read_index("loss"); }),
            path + ": dataset /loss has dtype float64; expected int32");
}

TEST(H5, Int64DatasetsNarrowToInt32WithARangeCheck) {
  // What numpy writes by default: int64. Written here through the C API.
  std::string path = temp_path("int64.h5");
  {
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[1] = {3};
    hid_t s = H5Screate_simple(1, dims, nullptr);
    int64_t small[3] = {3, -1, 9};
    int64_t big[3] = {1, 2, int64_t{1} << 40};
    for (auto [name, data] : {std::pair{"small", small}, std::pair{"big", big}}) {
      hid_t d = H5Dcreate2(f, name, H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
      H5Dclose(d);
    }
    H5Sclose(s);
    H5Fclose(f);
  }
  File f = File::open(path);
  EXPECT_EQ(f.read_index("small").data, (std::vector<int32_t>{3, -1, 9}));
  EXPECT_EQ(error_of([&] { f.read_index("big"); }),
            path + ": dataset /big holds 1099511627776 at index 2, outside the int32 range");
}

TEST(H5, StringsAndAttributesRoundTrip) {
  std::string path = temp_path("attrs.h5");
  std::vector<std::string> vocab = {"<pad>", "the", "", "größer", "猫", "a b"};
  {
    File f = File::create(path);
    f.set_string_attr("format", "qkv-checkpoint");
    f.set_int_attr("format_version", 1);
    Group g = f.create_group("optimizer");
    g.set_float_attr("lr", 3e-4);
    g.set_bool_attr("amsgrad", true);
    g.set_floats_attr("betas", {0.9, 0.999});
    g.set_ints_attr("sizes", {-3, 4});
    g.set_string_attr("note", "ü");
    g.set_int_attr("step", 1);
    g.set_int_attr("step", 7);  // replaces
    f.write_strings("vocab", vocab);
  }
  File f = File::open(path);
  EXPECT_EQ(f.string_attr("format"), "qkv-checkpoint");
  EXPECT_EQ(f.int_attr("format_version"), 1);
  Group g = f.group("optimizer");
  EXPECT_EQ(g.path(), "/optimizer");
  EXPECT_EQ(g.float_attr("lr"), 3e-4);
  EXPECT_TRUE(g.bool_attr("amsgrad"));
  EXPECT_EQ(g.attr_info("amsgrad").dtype, DType::kBool);
  EXPECT_EQ(g.floats_attr("betas"), (std::vector<double>{0.9, 0.999}));
  EXPECT_EQ(g.ints_attr("sizes"), (std::vector<int64_t>{-3, 4}));
  EXPECT_EQ(g.float_attr("step"), 7.0);  // integers read as numbers too
  EXPECT_EQ(g.int_attr("step"), 7);
  EXPECT_EQ(g.string_attr("note"), "ü");
  // Creation order is kept; "step" was replaced, so it moves to the end.
  EXPECT_EQ(g.attr_names(),
            (std::vector<std::string>{"lr", "amsgrad", "betas", "sizes", "note", "step"}));
  EXPECT_EQ(f.read_strings("vocab"), vocab);
  EXPECT_EQ(f.info("vocab").dtype, DType::kString);
  EXPECT_TRUE(f.has_attr("format"));
  EXPECT_FALSE(f.has_attr("nope"));
  EXPECT_EQ(error_of([&] { f.string_attr("nope"); }), path + ": missing attribute 'nope' on /");
  EXPECT_EQ(error_of([&] { g.string_attr("lr"); }),
            path + ": attribute 'lr' on /optimizer is float64 []; expected a string");
  EXPECT_EQ(error_of([&] { g.int_attr("betas"); }),
            path + ": attribute 'betas' on /optimizer is float64 [2]; expected integers");
}

TEST(H5, FixedLengthStringsAsNumpyBytesWritesThem) {
  std::string path = temp_path("fixed.h5");
  {
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 8);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    hid_t scalar = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "format", t, scalar, H5P_DEFAULT, H5P_DEFAULT);
    char value[8] = {'q', 'k', 'v', 0, 0, 0, 0, 0};
    H5Awrite(a, t, value);
    H5Aclose(a);
    hsize_t dims[1] = {2};
    hid_t s = H5Screate_simple(1, dims, nullptr);
    hid_t d = H5Dcreate2(f, "words", t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    char words[16] = {'a', 'b', 0, 0, 0, 0, 0, 0, 'e', 'i', 'g', 'h', 't', 'c', 'h', 'r'};
    H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, words);
    H5Dclose(d);
    H5Sclose(s);
    H5Sclose(scalar);
    H5Tclose(t);
    H5Fclose(f);
  }
  File f = File::open(path);
  EXPECT_EQ(f.string_attr("format"), "qkv");
  EXPECT_EQ(f.read_strings("words"), (std::vector<std::string>{"ab", "eightchr"}));
  // A file without creation-order tracking lists in name order.
  EXPECT_EQ(f.members(), (std::vector<std::string>{"words"}));
  EXPECT_EQ(f.attr_names(), (std::vector<std::string>{"format"}));
}

TEST(H5, MembersKeepCreationOrderAndNamesMayHoldDots) {
  std::string path = temp_path("members.h5");
  {
    File f = File::create(path);
    Group m = f.create_group("model");
    for (const char* name : {"tok_emb.weight", "blocks.0.attn.W_Q.weight", "a", "head.bias"})
      m.write(name, Tensor<float>::zeros({1}));
    m.create_group("sub");
  }
  File f = File::open(path);
  EXPECT_EQ(f.group("model").members(),
            (std::vector<std::string>{"tok_emb.weight", "blocks.0.attn.W_Q.weight", "a",
                                      "head.bias", "sub"}));
  EXPECT_TRUE(f.exists("model/head.bias"));
  EXPECT_TRUE(f.exists("/model/sub"));
  EXPECT_FALSE(f.exists("model/head.weight"));
  EXPECT_FALSE(f.exists("nothing/at/all"));
  EXPECT_FALSE(f.exists("model/a/below_a_dataset"));
  EXPECT_EQ(f.kind("model"), Kind::kGroup);
  EXPECT_EQ(f.kind("model/a"), Kind::kDataset);
  EXPECT_EQ(f.kind("model/zzz"), Kind::kMissing);
  EXPECT_EQ(f.members(), (std::vector<std::string>{"model"}));
}

TEST(H5, MissingObjectsAreNamedWithTheFile) {
  std::string path = temp_path("missing.h5");
  {
    File f = File::create(path);
    f.create_group("model").write("x", Tensor<float>::zeros({2}));
  }
  File f = File::open(path);
  EXPECT_EQ(error_of([&] { f.read<float>("model/head.weight"); }),
            path + ": missing dataset /model/head.weight");
  EXPECT_EQ(error_of([&] { f.group("model").read<float>("head.weight"); }),
            path + ": missing dataset /model/head.weight");
  EXPECT_EQ(error_of([&] { f.group("optimizer"); }), path + ": missing group /optimizer");
  EXPECT_EQ(error_of([&] { f.read<float>("model"); }), path + ": /model is a group, not a dataset");
  EXPECT_EQ(error_of([&] { f.group("model/x"); }), path + ": /model/x is a dataset, not a group");
  EXPECT_EQ(error_of([&] { f.read_strings("model/x"); }),
            path + ": dataset /model/x is float32 [2]; expected a 1-D array of strings");
}

TEST(H5, WritingRefusesToOverwriteOrToWriteReadOnlyFiles) {
  std::string path = temp_path("overwrite.h5");
  {
    File f = File::create(path);
    f.write("x", Tensor<float>::zeros({2}));
    EXPECT_EQ(error_of([&] { f.write("x", Tensor<float>::zeros({2})); }),
              path + ": cannot write /x: it already exists");
    EXPECT_EQ(error_of([&] { f.create_group("x"); }),
              path + ": cannot create group /x: it already exists");
  }
  File f = File::open(path);
  EXPECT_EQ(error_of([&] { f.write("y", Tensor<float>::zeros({2})); }),
            path + ": cannot write /y: the file is open read-only");
}

TEST(H5, MissingFileIsReportedExactly) {
  std::string path = temp_path("no_such_file.h5");
  std::remove(path.c_str());
  EXPECT_EQ(error_of([&] { File::open(path); }), path + ": does not exist");
  EXPECT_EQ(error_of([&] { File::open(temp_path("no_such_folder/x.h5")); }),
            temp_path("no_such_folder/x.h5") + ": does not exist");
}

TEST(H5, NonHdf5FileIsReportedExactly) {
  std::string path = temp_path("not_hdf5.h5");
  std::ofstream(path) << "step,loss\n1,2.3\n";
  EXPECT_EQ(error_of([&] { File::open(path); }), path + ": not an HDF5 file");
  std::string empty = temp_path("empty.h5");
  std::ofstream{empty};
  EXPECT_EQ(error_of([&] { File::open(empty); }), empty + ": not an HDF5 file");
  EXPECT_EQ(error_of([&] { File::open(::testing::TempDir()); }),
            ::testing::TempDir() + ": is a folder, not an HDF5 file");
}

TEST(H5, TruncatedFileIsReportedAsDamaged) {
  std::string path = temp_path("truncated.h5");
  {
    File f = File::create(path);
    f.write("x", Tensor<float>::zeros({1000}));
  }
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes.substr(0, 600);
  std::string msg = error_of([&] {
    File f = File::open(path);
    f.read<float>("x");
  });
  EXPECT_EQ(msg, path + ": the file is damaged: it is 600 bytes long, its checksum header says " +
                     std::to_string(bytes.size()) + " (truncated or extended)");
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

/// A float32 dataset of shape [n] written with the HDF5 C API (no qkv checksum), like h5py's
/// f.create_dataset("x", shape=(n,), dtype="f4"): a few KB on disk, whatever n is.
void write_huge_unallocated(const std::string& path, hsize_t n) {
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hid_t s = H5Screate_simple(1, &n, nullptr);
  hid_t d = H5Dcreate2(f, "x", H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dclose(d);
  H5Sclose(s);
  H5Fclose(f);
}

TEST(H5, WrittenFilesStartWithAChecksumHeaderAndStayHdf5) {
  std::string path = temp_path("header.h5");
  {
    File f = File::create(path);
    f.write("x", Tensor<float>::from({3}, {1, 2, 3}));
  }
  std::string bytes = read_all(path);
  ASSERT_GT(bytes.size(), kHeaderBytes);
  EXPECT_EQ(bytes.substr(0, 16), "QKV-CHECKSUM-V1\n");
  EXPECT_EQ(bytes.substr(kHeaderBytes, 4), "\x89HDF");  // HDF5's signature after the user block
  // The HDF5 library itself (not only qkv) opens it and finds the user block.
  hid_t fid = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(fid, 0);
  hid_t fcpl = H5Fget_create_plist(fid);
  hsize_t userblock = 0;
  H5Pget_userblock(fcpl, &userblock);
  EXPECT_EQ(userblock, kHeaderBytes);
  H5Pclose(fcpl);
  H5Fclose(fid);
  EXPECT_EQ(File::open(path).read<float>("x").to_vector(), (std::vector<float>{1, 2, 3}));
}

TEST(H5, WritingTheSameContentTwiceGivesTheSameBytes) {
  std::string a = temp_path("same_a.h5"), b = temp_path("same_b.h5");
  for (const std::string& p : {a, b}) {
    File f = File::create(p);
    f.set_string_attr("format", "x");
    f.write("g/x", Tensor<float>::full({7, 5}, 0.25f));
    f.write_strings("vocab", {"a", "bc"});
  }
  EXPECT_EQ(read_all(a), read_all(b));
}

TEST(H5, EveryFlippedBitIsDetected) {
  std::string path = temp_path("flips.h5"), bad = temp_path("flipped.h5");
  const Tensor<float> x = Tensor<float>::full({64}, 1.5f);
  {
    File f = File::create(path);
    f.set_string_attr("note", "n");
    f.write("m/x", x);
    f.write_strings("vocab", {"a", "b"});
  }
  const std::string good = read_all(path);
  int detected = 0, unchanged = 0, tried = 0;
  // Every byte of the header and the superblock, then every 29th byte (a different bit each).
  for (size_t i = 0; i < good.size(); i += i < 1024 ? 1 : 29) {
    ++tried;
    std::string flipped = good;
    flipped[i] = static_cast<char>(flipped[i] ^ (1 << (i % 8)));
    write_all(bad, flipped);
    std::string msg = error_of([&] {
      File f = File::open(bad);
      EXPECT_EQ(f.read<float>("m/x").to_vector(), x.to_vector()) << "byte " << i;
      EXPECT_EQ(f.read_strings("vocab"), (std::vector<std::string>{"a", "b"})) << "byte " << i;
      EXPECT_EQ(f.string_attr("note"), "n");
      ++unchanged;
    });
    if (msg == "(no error)") continue;
    ++detected;
    EXPECT_EQ(msg.rfind(bad + ": ", 0), 0u) << "byte " << i << ": " << msg;
    EXPECT_NE(msg.find("damaged"), std::string::npos) << "byte " << i << ": " << msg;
  }
  // A flip in the magic is caught too: the rest of the header still says "qkv wrote this".
  EXPECT_EQ(unchanged, 0);
  EXPECT_EQ(detected, tried);
}

TEST(H5, AFlipInTheContentNamesTheChecksum) {
  std::string path = temp_path("flip_content.h5");
  {
    File f = File::create(path);
    f.write("x", Tensor<float>::zeros({16}));
  }
  std::string bytes = read_all(path);
  bytes[bytes.size() - 3] ^= 4;
  write_all(path, bytes);
  EXPECT_EQ(error_of([&] { File::open(path); }),
            path +
                ": checksum mismatch: the file is damaged (restore it from a copy or use "
                "another one)");
}

TEST(H5, HugeDatasetsAreRefusedBeforeAnythingIsAllocated) {
  for (int log2 : {40, 46}) {
    std::string path = temp_path("huge.h5");
    write_huge_unallocated(path, hsize_t{1} << log2);
    File f = File::open(path);
    const std::string gib = std::to_string((int64_t{4} << log2) >> 30);
    std::string msg = error_of([&] { f.read<float>("x"); });
    EXPECT_EQ(msg.rfind(path + ": dataset /x of shape [" + std::to_string(int64_t{1} << log2) +
                            "] needs " + gib + " GiB; this machine has ",
                        0),
              0u)
        << msg;
  }
}

TEST(H5, UncheckedFilesAreReadInAChildWithLimits) {
  std::string path = temp_path("unchecked.h5");
  {
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t n = 4 << 20;  // 16 MB of float32
    hid_t s = H5Screate_simple(1, &n, nullptr);
    hid_t d = H5Dcreate2(f, "big", H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    std::vector<float> v(n, 1.0f);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
    H5Dclose(d);
    H5Sclose(s);
    H5Fclose(f);
  }
  const ProbeLimits saved = probe_limits();
  EXPECT_EQ(File::open(path).read<float>("big").numel(), 4 << 20);  // the defaults let it through
  ProbeLimits quick = saved;
  quick.seconds = 1e-6;
  set_probe_limits(quick);
  EXPECT_EQ(
      error_of([&] { File::open(path); }),
      path + ": the file is damaged: reading it took more than 1e-06 s (HDF5 did not finish)");
  set_probe_limits(saved);
}

// Under AddressSanitizer (which reserves terabytes of address space) the check sets no limit.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QKV_ADDRESS_SANITIZER 1
#endif
#endif
#if !defined(__SANITIZE_ADDRESS__) && !defined(QKV_ADDRESS_SANITIZER)
TEST(H5, AnUncheckedFileThatUnpacksBeyondTheMemoryLimitIsRefused) {
  // 64 MB of zeros, gzip-compressed into a file of a few hundred KB.
  std::string path = temp_path("bomb.h5");
  {
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t n = 16 << 20, chunk = 1 << 20;
    hid_t s = H5Screate_simple(1, &n, nullptr);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &chunk);
    H5Pset_deflate(dcpl, 1);
    hid_t d = H5Dcreate2(f, "zeros", H5T_IEEE_F32LE, s, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    std::vector<float> v(n, 0.0f);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(s);
    H5Fclose(f);
  }
  const ProbeLimits saved = probe_limits();
  ProbeLimits small = saved;
  small.memory_bytes = 0;  // only 4 × the file's size beyond what the process has
  set_probe_limits(small);
  std::string msg = error_of([&] { File::open(path); });
  set_probe_limits(saved);
  EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
  EXPECT_NE(msg.find("damaged"), std::string::npos) << msg;
  EXPECT_EQ(File::open(path).read<float>("zeros").numel(), 16 << 20);  // 512 MiB is enough
}
#endif

TEST(H5, CreatingInAMissingFolderFails) {
  std::string path = temp_path("missing_folder/x.h5");
  EXPECT_EQ(error_of([&] { File::create(path); }),
            path + ": cannot create: folder " + temp_path("missing_folder") + " does not exist");
}

TEST(H5, ClosedFileCannotBeUsed) {
  File f = File::create(temp_path("closed.h5"));
  Group g = f.create_group("g");
  f.close();
  EXPECT_FALSE(f.is_open());
  EXPECT_EQ(error_of([&] { f.exists("g"); }), "h5: use of a closed file");
  EXPECT_THROW(g.write("x", Tensor<float>::zeros({1})), Error);  // its group was closed too
}

}  // namespace
}  // namespace qkv::h5
