// The gradient average of data-parallel training without MPI: two ranks played one after the
// other through a communicator that remembers rank 1's buffer and adds it to rank 0's. Their
// average must be the gradient of the whole batch (the loss weighted by each share's counted
// targets), and agree_status / run_together must name the lowest failing rank.
#include <cmath>

#include <gtest/gtest.h>

#include "autograd/var.h"
#include "core/error.h"
#include "nn/model.h"
#include "nn/nn_test_util.h"
#include "nn/random_batch.h"
#include "test_files.h"
#include "train/data_parallel.h"
#include "train/evaluate.h"

namespace qkv {
namespace {

/// Rank `rank` of 2, both played in this process: rank 1's sums are remembered, rank 0's add them.
struct TwoRanksInTurn : Communicator {
  int me = 1;
  std::vector<float> floats;
  std::vector<double> doubles;
  int rank() const override { return me; }
  int size() const override { return 2; }
  void allreduce_sum(float* data, int64_t n) override {
    if (me == 1)
      floats.assign(data, data + n);
    else
      for (int64_t i = 0; i < n; ++i) data[i] += floats[static_cast<size_t>(i)];
  }
  void allreduce_sum(double* data, int64_t n) override {
    if (me == 1)
      doubles.assign(data, data + n);
    else
      for (int64_t i = 0; i < n; ++i) data[i] += doubles[static_cast<size_t>(i)];
  }
  void broadcast(double*, int64_t, int) override {}
  void barrier() override {}
  [[noreturn]] void abort(int) override { std::abort(); }
};

double loss_and_backward(Model<float>& model, const Batch& b) {
  for (auto& [name, p] : model.named_parameters()) p.zero_grad();
  ForwardResult<float> r = model.forward(b);
  r.loss.backward();
  return r.loss.item();
}

TEST(DataParallel, TwoSharesAverageToTheWholeBatchGradient) {
  Model<float> model(testing::tiny("decoder"), 3);
  // Ignored targets: the two shares count different numbers of targets.
  const Batch whole = testing::batch_of(model.config(), 4, 6, /*padded=*/true);
  const Batch first = batch_rows(whole, 0, 1), rest = batch_rows(whole, 1, 4);
  ASSERT_NE(count_targets(first) * 3, count_targets(rest)) << "the shares must weigh unequally";

  const double whole_loss = loss_and_backward(model, whole);
  std::vector<Tensor<float>> expected;
  for (auto& [name, p] : model.named_parameters()) expected.push_back(p.grad().clone());

  TwoRanksInTurn comm;
  GradientAverager avg(comm, model.named_parameters());
  RankShare share;
  share.loss = loss_and_backward(model, rest);
  share.count = double(count_targets(rest));
  avg.average(share);  // rank 1: remembered
  comm.me = 0;
  share.loss = loss_and_backward(model, first);
  share.count = double(count_targets(first));
  const BatchTotals total = avg.average(share);

  EXPECT_NEAR(total.loss, whole_loss, 1e-6 * whole_loss);
  EXPECT_EQ(total.count, double(count_targets(whole)));
  EXPECT_FALSE(total.failed);
  size_t i = 0;
  for (auto& [name, p] : model.named_parameters()) {
    const Tensor<float>& want = expected[i++];
    for (int64_t j = 0; j < want.numel(); ++j)
      EXPECT_NEAR(p.grad().data()[j], want.data()[j], 1e-6 + 1e-5 * std::abs(want.data()[j]))
          << name << "[" << j << "]";
  }
  EXPECT_EQ(avg.bytes_per_step(),
            int64_t(sizeof(float)) *
                (model.num_parameters() + int64_t(model.named_parameters().size()) + 5));
}

TEST(DataParallel, BatchRowsCutsEveryTensorAlongTheBatch) {
  const Batch b = testing::batch_of(testing::tiny("decoder"), 3, 4, /*padded=*/false);
  const Batch r = batch_rows(b, 1, 3);
  EXPECT_EQ(r.batch_size(), 2);
  EXPECT_EQ(r.tokens.data, std::vector<int32_t>(b.tokens.data.begin() + 4, b.tokens.data.end()));
  EXPECT_EQ(r.targets.data, std::vector<int32_t>(b.targets.data.begin() + 4, b.targets.data.end()));
  EXPECT_EQ(test::error_of([&] { batch_rows(b, 2, 4); }),
            "batch_rows: examples [2, 4) of a batch of 3");
}

TEST(DataParallel, TheLowestFailingRankReportsAndTheOthersStop) {
  TwoRanksInTurn comm;  // rank 1 fails with status 2 (it plays first), rank 0 does not
  const AgreedStatus seen_by_1 = agree_status(comm, 2);
  EXPECT_EQ(seen_by_1.status, 2);
  EXPECT_EQ(seen_by_1.rank, 1);
  comm.me = 0;
  const AgreedStatus seen_by_0 = agree_status(comm, 0);
  EXPECT_EQ(seen_by_0.status, 2);
  EXPECT_EQ(seen_by_0.rank, 1);

  // run_together: rank 1 reports its own message with its rank, rank 0 stops with its status.
  comm.me = 1;
  try {
    run_together(comm, [] { fail("cannot read 'x.h5'"); });
    FAIL() << "rank 1 failed";
  } catch (const AgreedError& e) {
    EXPECT_STREQ(e.what(), "rank 1 of 2: cannot read 'x.h5'");
    EXPECT_EQ(e.status, 2);
  }
  comm.me = 0;
  try {
    run_together(comm, [] {});
    FAIL() << "rank 0 must stop";
  } catch (const StoppedByRank& s) {
    EXPECT_EQ(s.status, 2);
    EXPECT_EQ(s.rank, 1);
  }
}

}  // namespace
}  // namespace qkv
