#include <omp.h>

#include <string>
#include <vector>

#include "test_threads.h"
#include "test_util.h"

namespace qkv {
namespace {

using testing::error_of;
using testing::randn;

/// Element of a contiguous tensor of shape s at a multi-index.
double at(const Tensor<double>& t, std::initializer_list<int64_t> idx) {
  int64_t flat = 0;
  int i = 0;
  for (int64_t v : idx) flat = flat * t.shape()[i++] + v;
  return t[flat];
}

// ---- reshape ---------------------------------------------------------------------------------

TEST(Reshape, GradcheckAndInference) {
  Rng rng(1);
  auto x = randn({2, 3, 4}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return reshape(x, {6, 4}) * reshape(x, {6, 4}); }, {x}));
  EXPECT_EQ(reshape(x, {-1, 4}).shape(), Shape({6, 4}));
  EXPECT_EQ(reshape(x, {2, -1}).shape(), Shape({2, 12}));
  EXPECT_EQ(reshape(x, {24}).shape(), Shape({24}));
  EXPECT_EQ(reshape(x, {1, 2, 3, 4}).shape(), Shape({1, 2, 3, 4}));
  Var<double> one(Tensor<double>::from({1}, {3.0}), true);
  EXPECT_EQ(reshape(one, {}).shape(), Shape({}));
}

TEST(Reshape, Errors) {
  Var<double> x(Tensor<double>({2, 3}));
  EXPECT_EQ(error_of([&] {
              reshape(x, {4, 2});
            }),
            "reshape: cannot view [2, 3] (6 elements) as [4, 2] (8 elements)");
  EXPECT_EQ(error_of([&] {
              reshape(x, {-1, -1});
            }),
            "reshape: only one dimension may be -1, got [-1, -1]");
  EXPECT_EQ(error_of([&] {
              reshape(x, {-1, 4});
            }),
            "reshape: cannot view [2, 3] (6 elements) as [-1, 4]");
  EXPECT_THROW(reshape(x, {1, 1, 1, 2, 3}), Error);
}

// ---- permute / transpose ---------------------------------------------------------------------

TEST(Permute, ValuesFollowTheAxes) {
  Rng rng(2);
  auto x = randn({2, 3, 4, 5}, rng, false);
  Tensor<double> y = permute(x, {0, 2, 1, 3}).value();
  ASSERT_EQ(y.shape(), Shape({2, 4, 3, 5}));
  Tensor<double> z = permute(x, {3, 1, 0, 2}).value();
  ASSERT_EQ(z.shape(), Shape({5, 3, 2, 4}));
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t c = 0; c < 4; ++c)
        for (int64_t d = 0; d < 5; ++d) {
          const double v = at(x.value(), {a, b, c, d});
          EXPECT_EQ(at(y, {a, c, b, d}), v);
          EXPECT_EQ(at(z, {d, b, a, c}), v);
        }
  Tensor<double> t = transpose(x, -1, -2).value();
  ASSERT_EQ(t.shape(), Shape({2, 3, 5, 4}));
  EXPECT_EQ(at(t, {1, 2, 4, 3}), at(x.value(), {1, 2, 3, 4}));
}

TEST(Permute, Gradcheck) {
  Rng rng(3);
  auto x = randn({2, 3, 4}, rng);
  auto w = randn({3, 2, 4}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return permute(x, {1, 0, 2}) * w; }, {x, w}));
  EXPECT_GRADCHECK(gradcheck([&] { return permute(x, {2, 0, 1}); }, {x}));
  EXPECT_GRADCHECK(gradcheck([&] { return transpose(x, 0, 2); }, {x}));
  auto x4 = randn({2, 2, 3, 2}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return transpose(x4, 1, 2); }, {x4}));
  EXPECT_GRADCHECK(gradcheck([&] { return permute(x4, {3, 2, 1, 0}); }, {x4}));
}

TEST(Permute, InverseRoundTripIsIdentity) {
  Rng rng(4);
  auto x = randn({2, 3, 4, 5}, rng, false);
  Tensor<double> back = permute(permute(x, {2, 0, 3, 1}), {1, 3, 0, 2}).value();
  EXPECT_EQ(back.shape(), x.shape());
  EXPECT_EQ(back.to_vector(), x.value().to_vector());
}

// Large enough for several row blocks on several threads (the attention's head split, [B, T, H,
// d_k] → [B, H, T, d_k], and a permutation with a strided last axis): every element, and every
// gradient element, lands where the index arithmetic says, at one thread and at two.
TEST(Permute, LargeTensorsOnAnyThreadCount) {
  Rng rng(5);
  const Shape s{6, 129, 8, 17};  // 105 264 elements, rows of 17 or 6
  Tensor<double> xv = randn(s, rng, false).value();
  Tensor<double> gv = randn({6, 8, 129, 17}, rng, false).value();
  test::ScopedThreads threads(1);
  for (const std::vector<int>& perm : {std::vector<int>{0, 2, 1, 3}, {3, 1, 2, 0}}) {
    Shape so = s;
    for (int i = 0; i < 4; ++i) so[i] = s[perm[static_cast<size_t>(i)]];
    for (int t : {1, 2}) {
      threads.set(t);
      Var<double> x(xv.clone(), true);
      Var<double> y = permute(x, perm);
      ASSERT_EQ(y.shape(), so);
      y.backward(gv.reshape(so));
      int64_t in[4];
      for (in[0] = 0; in[0] < s[0]; ++in[0])
        for (in[1] = 0; in[1] < s[1]; ++in[1])
          for (in[2] = 0; in[2] < s[2]; ++in[2])
            for (in[3] = 0; in[3] < s[3]; ++in[3]) {
              const int64_t src = ((in[0] * s[1] + in[1]) * s[2] + in[2]) * s[3] + in[3];
              int64_t dst = 0;
              for (int i = 0; i < 4; ++i) dst = dst * so[i] + in[perm[static_cast<size_t>(i)]];
              ASSERT_EQ(y.value()[dst], xv[src]) << "threads " << t;
              ASSERT_EQ(x.grad()[src], gv[dst]) << "threads " << t;
            }
    }
  }
}

TEST(Permute, Errors) {
  Var<double> x(Tensor<double>({2, 3}));
  EXPECT_EQ(error_of([&] { permute(x, {0}); }),
            "permute: 1 axes given for shape [2, 3] of 2 dimensions");
  EXPECT_EQ(error_of([&] {
              permute(x, {1, 1});
            }),
            "permute: axis 1 appears twice for shape [2, 3]");
  EXPECT_THROW(transpose(x, 0, 2), Error);
}

// ---- slice, concat, split --------------------------------------------------------------------

TEST(Slice, ValuesAndGradcheck) {
  Rng rng(5);
  auto x = randn({3, 4, 2}, rng);
  Tensor<double> y = slice(x, 1, 1, 3).value();
  ASSERT_EQ(y.shape(), Shape({3, 2, 2}));
  EXPECT_EQ(at(y, {2, 1, 1}), at(x.value(), {2, 2, 1}));
  EXPECT_GRADCHECK(gradcheck([&] { return slice(x, 1, 1, 3); }, {x}));
  EXPECT_GRADCHECK(gradcheck([&] { return slice(x, 0, 2, 3); }, {x}));
  EXPECT_GRADCHECK(gradcheck([&] { return slice(x, -1, 0, 1); }, {x}));
  // Two overlapping slices of the same input: both contributions accumulate.
  EXPECT_GRADCHECK(gradcheck([&] { return slice(x, 1, 0, 3) * slice(x, 1, 1, 4); }, {x}));
}

TEST(Slice, Errors) {
  Var<double> x(Tensor<double>({2, 3}));
  EXPECT_EQ(error_of([&] { slice(x, 1, 2, 5); }),
            "slice: range [2, 5) is out of bounds for axis 1 of shape [2, 3]");
  EXPECT_THROW(slice(x, 2, 0, 1), Error);
  EXPECT_THROW(slice(x, 0, 2, 1), Error);
}

TEST(Concat, ValuesAndGradcheck) {
  Rng rng(6);
  auto a = randn({2, 1, 3}, rng), b = randn({2, 2, 3}, rng), c = randn({2, 3, 3}, rng);
  Tensor<double> y = concat<double>({a, b, c}, 1).value();
  ASSERT_EQ(y.shape(), Shape({2, 6, 3}));
  EXPECT_EQ(at(y, {1, 0, 2}), at(a.value(), {1, 0, 2}));
  EXPECT_EQ(at(y, {1, 2, 0}), at(b.value(), {1, 1, 0}));
  EXPECT_EQ(at(y, {0, 5, 1}), at(c.value(), {0, 2, 1}));
  EXPECT_GRADCHECK(gradcheck([&] { return concat<double>({a, b, c}, 1); }, {a, b, c}));
  EXPECT_GRADCHECK(gradcheck([&] { return concat<double>({c, b}, -2); }, {c, b}));
  // More than four inputs (the node's inline input list spills) and a repeated input.
  EXPECT_GRADCHECK(gradcheck([&] { return concat<double>({a, b, a, c, a, b}, 1); }, {a, b, c}));
  auto p = randn({1, 2}, rng), q = randn({3, 2}, rng);
  EXPECT_GRADCHECK(gradcheck([&] { return concat<double>({p, q}, 0); }, {p, q}));
}

TEST(Concat, Errors) {
  Var<double> a(Tensor<double>({2, 3})), b(Tensor<double>({3, 4}));
  EXPECT_EQ(error_of([&] {
              concat<double>({a, b}, 1);
            }),
            "concat: part 1 has shape [3, 4] but part 0 has shape [2, 3]; only axis 1 may differ");
  EXPECT_EQ(error_of([&] { concat<double>({}, 0); }), "concat: no parts to join");
}

TEST(Split, ConcatRoundTripAndGradcheck) {
  Rng rng(7);
  auto x = randn({2, 6, 2}, rng);
  std::vector<Var<double>> parts = split(x, 1, 3);
  ASSERT_EQ(parts.size(), 3u);
  for (const auto& p : parts) EXPECT_EQ(p.shape(), Shape({2, 2, 2}));
  EXPECT_EQ(concat(parts, 1).value().to_vector(), x.value().to_vector());
  EXPECT_GRADCHECK(gradcheck([&] { return concat(split(x, 1, 3), 1); }, {x}));
  // Reordered parts, and a part used with weights: each part's gradient reaches its own slice.
  auto w = randn({2, 2, 2}, rng);
  EXPECT_GRADCHECK(gradcheck(
      [&] {
        std::vector<Var<double>> s = split(x, 1, 3);
        return concat<double>({s[2], s[0] * w, s[1]}, -1);
      },
      {x, w}));
  EXPECT_GRADCHECK(gradcheck([&] { return split(x, -1, 2)[1]; }, {x}));
}

TEST(Split, UnevenIsAnError) {
  Var<double> x(Tensor<double>({2, 5}));
  EXPECT_EQ(error_of([&] { split(x, 1, 2); }),
            "split: axis 1 of shape [2, 5] (size 5) does not split into 2 equal parts");
}

// ---- select_positions ------------------------------------------------------------------------

TEST(SelectPositions, ValuesAndGradcheck) {
  Rng rng(8);
  auto x = randn({3, 4, 2}, rng);
  IndexTensor pos({3}, std::vector<int32_t>{2, 0, 2});
  Tensor<double> y = select_positions(x, pos).value();
  ASSERT_EQ(y.shape(), Shape({3, 2}));
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t c = 0; c < 2; ++c) EXPECT_EQ(at(y, {b, c}), at(x.value(), {b, pos[b], c}));
  EXPECT_GRADCHECK(gradcheck([&] { return select_positions(x, pos); }, {x}));
  Var<double> out = select_positions(x, pos);
  out.backward(Tensor<double>::full({3, 2}, 1.0));
  EXPECT_EQ(at(x.grad(), {0, 2, 1}), 1.0);
  EXPECT_EQ(at(x.grad(), {0, 1, 1}), 0.0);
}

TEST(SelectPositions, OutOfRangeNamesThePosition) {
  Var<double> x(Tensor<double>({2, 5, 3}));
  IndexTensor pos({2}, std::vector<int32_t>{1, 7});
  EXPECT_EQ(error_of([&] { select_positions(x, pos); }),
            "select_positions: position 7 of example 1 is out of range for T = 5");
  IndexTensor neg({2}, std::vector<int32_t>{-1, 0});
  EXPECT_THROW(select_positions(x, neg), Error);
  IndexTensor wrong({3}, std::vector<int32_t>{0, 0, 0});
  EXPECT_EQ(error_of([&] { select_positions(x, wrong); }),
            "select_positions: positions has shape [3] but x [2, 5, 3] needs [2]");
}

TEST(Shape, Float32AgreesWithFloat64) {
  Rng rng(9);
  auto x = randn({2, 4, 3}, rng, false);
  Var<float> xf(x.value().to<float>());
  auto same = [](const Tensor<double>& a, const Tensor<float>& b) {
    ASSERT_EQ(a.shape(), b.shape());
    for (int64_t i = 0; i < a.numel(); ++i) EXPECT_EQ(b[i], static_cast<float>(a[i]));
  };
  same(permute(x, {2, 0, 1}).value(), permute(xf, {2, 0, 1}).value());
  same(slice(x, 1, 1, 3).value(), slice(xf, 1, 1, 3).value());
  same(reshape(x, {-1}).value(), reshape(xf, {-1}).value());
  IndexTensor pos({2}, std::vector<int32_t>{3, 1});
  same(select_positions(x, pos).value(), select_positions(xf, pos).value());
}

}  // namespace
}  // namespace qkv
