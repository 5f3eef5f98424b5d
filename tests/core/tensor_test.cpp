#include <gtest/gtest.h>

#include "core/pool.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "test_files.h"

namespace qkv {
namespace {

TEST(Tensor, ZerosFromAndReshapeShareStorage) {
  Tensor<float> t = Tensor<float>::from({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.numel(), 6);
  Tensor<float> r = t.reshape({3, 2});
  r[0] = 10;
  EXPECT_EQ(t[0], 10);
  Tensor<float> c = t.clone();
  c[1] = 20;
  EXPECT_EQ(t[1], 2);
  EXPECT_EQ(Tensor<double>(Shape{4})[3], 0.0);
}

TEST(Tensor, BadReshapeNamesBothShapes) {
  Tensor<double> t(Shape{2, 3});
  try {
    t.reshape({4, 2});
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "reshape: cannot view [2, 3] (6 elements) as [4, 2] (8)");
  }
}

TEST(Tensor, MoreThanFourDimensionsIsRejected) {
  EXPECT_THROW((Shape{1, 2, 3, 4, 5}), Error);
}

TEST(Tensor, EigenMapsAreRowMajor) {
  Tensor<double> t = Tensor<double>::from({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(t.mat()(1, 0), 4);
  EXPECT_EQ(t.mat(3, 2)(1, 0), 3);
}

TEST(Shape, ElementCountsThatOverflowInt64AreErrorsNotWrappedNumbers) {
  const int64_t big = int64_t{1} << 40;
  EXPECT_EQ((Shape{big, 1 << 20}).numel(), int64_t{1} << 60);
  EXPECT_EQ(test::error_of([] {
              (void)(Shape{int64_t{1} << 40, int64_t{1} << 30}).numel();
            }),
            "shape [1099511627776, 1073741824] has more elements than a 64-bit count can hold");
  EXPECT_THROW((void)(Shape{int64_t{1} << 62, 2, 2}).span(0, 3), Error);
}

TEST(Tensor, AShapeTooLargeForMemoryIsAnErrorBeforeAnyAllocation) {
  // 2^46 floats: the element count fits, the 256 TiB do not (the pool's last bucket is 128 TiB).
  EXPECT_EQ(test::error_of([] { Tensor<float>::empty(Shape{int64_t{1} << 46}); }),
            "cannot allocate a tensor of 281474976710720 bytes (262144 GiB): the most one tensor "
            "can take is 131072 GiB");
  // 2^62 doubles: the byte count itself overflows.
  EXPECT_EQ(
      test::error_of([] { Tensor<double>::empty(Shape{int64_t{1} << 62}); }),
      "a tensor of shape [4611686018427387904] needs more bytes than a 64-bit count can hold");
}

TEST(Pool, RefusesWhatItCannotServeWithAnError) {
  EXPECT_THROW(pool::acquire(pool::kMaxBytes + 1), Error);
  EXPECT_THROW(pool::acquire(SIZE_MAX), Error);
  // The largest size it serves is still a valid bucket (the system may or may not have it).
  try {
    void* p = pool::acquire(size_t{1} << 20);
    pool::release(p, size_t{1} << 20);
  } catch (const Error&) {
    ADD_FAILURE() << "a 1 MiB block was refused";
  }
}

TEST(Rng, SameSeedSameStreamAndStateRestores) {
  Rng a(42), b(42);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
  Rng::State s = a.state();
  double x1 = a.normal(), x2 = a.uniform();
  a.set_state(s);
  EXPECT_EQ(a.normal(), x1);
  EXPECT_EQ(a.uniform(), x2);
  Rng c(43);
  EXPECT_NE(Rng(42).next_u64(), c.next_u64());
}

TEST(Rng, NormalHasUnitMomentsAndPermutationIsOne) {
  Rng r(7);
  double s = 0, s2 = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    double x = r.normal();
    s += x;
    s2 += x * x;
  }
  EXPECT_NEAR(s / n, 0.0, 0.01);
  EXPECT_NEAR(s2 / n, 1.0, 0.01);
  auto p = r.permutation(100);
  std::vector<int> seen(100, 0);
  for (auto v : p) seen[static_cast<size_t>(v)]++;
  for (int c : seen) EXPECT_EQ(c, 1);
}

}  // namespace
}  // namespace qkv
