// ThreadShards: a batch cut into shards whose forward and backward run on separate threads, each
// into its own parameter gradients (LeafGradScope), then summed weighted by each shard's counted
// targets. The sum must be the whole batch's gradient, and its bits must not depend on the thread
// count.
#include <omp.h>

#include <cmath>

#include <gtest/gtest.h>

#include "autograd/var.h"
#include "core/error.h"
#include "nn/model.h"
#include "nn/nn_test_util.h"
#include "nn/random_batch.h"
#include "test_threads.h"
#include "train/data_parallel.h"
#include "train/evaluate.h"
#include "train/thread_shards.h"

namespace qkv {
namespace {

double forward_backward(Model<float>& model, const Batch& b) {
  ForwardResult<float> r = model.forward(b);
  r.loss.backward();
  return r.loss.item();
}

std::vector<Tensor<float>> grads_of(const Model<float>& model) {
  std::vector<Tensor<float>> g;
  for (auto& [name, p] : model.named_parameters()) g.push_back(p.grad().clone());
  return g;
}

/// The sharded step's loss and gradients at `threads` OpenMP threads.
std::pair<double, std::vector<Tensor<float>>> sharded(Model<float>& model, const Batch& b,
                                                      int shards, int threads) {
  model.zero_grad();
  test::ScopedThreads scoped(threads);
  ThreadShards s(shards, model.named_parameters());
  const ShardTotals t = s.run(b, model);
  EXPECT_EQ(t.count, double(count_targets(b)));
  EXPECT_EQ(t.tokens, double(count_tokens(b)));
  return {t.loss, grads_of(model)};
}

TEST(ThreadShards, ShardsSumToTheWholeBatchGradient) {
  for (const char* arch : {"decoder", "encoder", "seq2seq"}) {
    SCOPED_TRACE(arch);
    Model<float> model(testing::tiny(arch), 3);
    // Ignored targets (padded): the shards count different numbers of targets.
    const Batch b = testing::batch_of(model.config(), 5, 6, /*padded=*/true);
    model.zero_grad();
    const double whole_loss = forward_backward(model, b);
    const std::vector<Tensor<float>> want = grads_of(model);

    const auto [loss, got] = sharded(model, b, 2, 2);
    EXPECT_NEAR(loss, whole_loss, 1e-6 * std::abs(whole_loss));
    size_t i = 0;
    for (auto& [name, p] : model.named_parameters()) {
      const Tensor<float>& w = want[i];
      const Tensor<float>& g = got[i++];
      ASSERT_TRUE(g.defined()) << name;
      for (int64_t j = 0; j < w.numel(); ++j)
        EXPECT_NEAR(g.data()[j], w.data()[j], 1e-6 + 1e-5 * std::abs(w.data()[j]))
            << name << "[" << j << "]";
    }
  }
}

TEST(ThreadShards, TheBitsDoNotDependOnTheThreadCount) {
  Model<float> model(testing::tiny("decoder", 2), 4);
  const Batch b = testing::batch_of(model.config(), 7, 6, /*padded=*/true);
  for (int shards : {2, 3}) {
    const auto [loss1, g1] = sharded(model, b, shards, 1);
    const auto [loss2, g2] = sharded(model, b, shards, 2);
    EXPECT_EQ(loss1, loss2);
    for (size_t i = 0; i < g1.size(); ++i)
      EXPECT_EQ(0, std::memcmp(g1[i].data(), g2[i].data(), g1[i].numel() * sizeof(float)))
          << model.named_parameters()[i].first << " with " << shards << " shards";
  }
}

TEST(ThreadShards, AModelForwardLeavesNoAttentionMapInItsModules) {
  // Shards run one model's forward on two threads at once, so a forward without keep_attention
  // must write nothing in the model. A module holding a kept map would be written by both (each
  // dropping it): Model::forward hands the maps over instead of leaving them in the modules.
  for (const char* arch : {"decoder", "encoder", "seq2seq"}) {
    SCOPED_TRACE(arch);
    Model<float> model(testing::tiny(arch), 3);
    const Batch b = testing::batch_of(model.config(), 3, 5, /*padded=*/true);
    const ForwardResult<float> r = model.forward(b, /*keep_attention=*/true);
    ASSERT_FALSE(r.attention.empty());
    for (const auto& a : r.attention) EXPECT_TRUE(a.P.defined()) << a.path;
    for (const auto& a : model.attention_modules())
      EXPECT_FALSE(a.module->last_attention().defined()) << a.path;
  }
}

TEST(ThreadShards, AutoRunsTwoShardsForSmallModelsWithoutDropoutOnly) {
  TrainConfig t;  // shards 0: auto
  t.batch_size = 64;
  Model<float> small(testing::tiny("decoder"), 1);
  EXPECT_EQ(resolve_shards(t, small), 2);
  // Above kAutoShardWork (6 · parameters · batch · max_len): one shard.
  t.batch_size = static_cast<int64_t>(
      kAutoShardWork / (6.0 * double(small.num_parameters()) * double(small.config().max_len)) + 1);
  EXPECT_EQ(resolve_shards(t, small), 1);
  t.batch_size = 64;
  ModelConfig c = testing::tiny("encoder");
  c.dropout = 0.1;
  Model<float> with_dropout(c, 1);
  EXPECT_EQ(resolve_shards(t, with_dropout), 1);
  t.shards = 3;
  EXPECT_EQ(resolve_shards(t, small), 3);
  EXPECT_EQ(test::error_of([&] { resolve_shards(t, with_dropout); }),
            "train config: 'shards' is 3, but the model has dropout 0.1 and one generator for it, "
            "which two shards cannot share; set shards to 1 (--shards 1) or dropout to 0");
  t.shards = 1;
  EXPECT_EQ(resolve_shards(t, with_dropout), 1);
}

TEST(ThreadShards, AScopeKeepsLeafGradientsOutOfTheLeaves) {
  Var<double> w(Tensor<double>::full({3}, 2.0), true);
  Var<double> x(Tensor<double>::full({3}, 5.0), false);
  {
    LeafGradScope<double> scope;
    sum(mul(w, x)).backward();
    EXPECT_FALSE(w.grad().defined()) << "the leaf's own .grad must stay untouched";
    ASSERT_TRUE(scope.grad(w).defined());
    EXPECT_EQ(scope.grad(w).data()[2], 5.0);
  }
  sum(mul(w, x)).backward();  // no scope: into .grad, as always
  ASSERT_TRUE(w.grad().defined());
  EXPECT_EQ(w.grad().data()[0], 5.0);
}

TEST(ThreadShards, AnErrorInAShardIsRethrownAndNoGradientChanges) {
  Model<float> model(testing::tiny("decoder"), 3);
  const Batch b = testing::batch_of(model.config(), 4, 6, /*padded=*/false);
  model.zero_grad();
  ThreadShards s(2, model.named_parameters());
  EXPECT_EQ(test::error_of([&] {
              s.run(b, [&](const Batch& part) {
                if (part.tokens.data == batch_rows(b, 2, 4).tokens.data) fail("shard 1 failed");
                return forward_backward(model, part);
              });
            }),
            "shard 1 failed");
  for (auto& [name, p] : model.named_parameters())
    EXPECT_FALSE(p.grad().defined() && p.grad().vec().cwiseAbs().maxCoeff() > 0) << name;
}

}  // namespace
}  // namespace qkv
