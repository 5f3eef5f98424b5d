// The caching pool: a steady state that allocates nothing, on any thread, and blocks that cross
// threads (a batch shard's gradients, freed by the thread that sums them). The pool is one cache
// under one mutex today; these are the promises a per-thread cache in front of it must keep too.
#include "core/pool.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "core/tensor.h"

namespace qkv {
namespace {

TEST(Pool, SteadyStateReusesBuffers) {
  { Tensor<float> warm(Shape{128, 64}); }
  const auto before = pool::stats();
  for (int i = 0; i < 100; ++i) Tensor<float> t(Shape{128, 64});
  const auto after = pool::stats();
  EXPECT_EQ(after.system_allocs, before.system_allocs);
  EXPECT_GE(after.reuses, before.reuses + 100);
}

TEST(Pool, ASteadyStateOnAnotherThreadReusesBuffersToo) {
  const auto before = pool::stats();
  std::thread([] {
    for (int i = 0; i < 100; ++i) Tensor<float> t(Shape{96, 64});
  }).join();
  const auto after = pool::stats();
  EXPECT_LE(after.system_allocs, before.system_allocs + 1);  // the first, unless one was cached
  EXPECT_GE(after.reuses, before.reuses + 99);
}

// One thread takes blocks, another frees them, round after round: the taking thread must stop
// asking the system, however much a freeing thread may keep for itself.
TEST(Pool, BlocksFreedOnAnotherThreadAreReusedNotLeaked) {
  constexpr size_t kBytes = 48 << 10;  // a 64 KiB block
  constexpr int kPerRound = 8;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<void*> handed;
  bool done = false;
  std::thread freer([&] {
    std::unique_lock<std::mutex> lock(mu);
    while (!done || !handed.empty()) {
      cv.wait(lock, [&] { return done || !handed.empty(); });
      for (void* p : handed) pool::release(p, kBytes);
      handed.clear();
      cv.notify_all();
    }
  });
  size_t allocs_late = 0;
  for (int round = 0; round < 1200; ++round) {
    if (round == 600) allocs_late = pool::stats().system_allocs;
    std::vector<void*> taken;
    for (int i = 0; i < kPerRound; ++i) taken.push_back(pool::acquire(kBytes));
    std::unique_lock<std::mutex> lock(mu);
    handed = taken;
    cv.notify_all();
    cv.wait(lock, [&] { return handed.empty(); });
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
  }
  cv.notify_all();
  freer.join();
  // None of the last 600 rounds took a block from the system.
  EXPECT_EQ(pool::stats().system_allocs, allocs_late);
}

TEST(Pool, AThreadThatEndsLeavesItsBlocksToTheOthers) {
  constexpr size_t kBytes = 200 << 10;  // a 256 KiB block, a size no other test here uses
  std::thread([] { pool::release(pool::acquire(kBytes), kBytes); }).join();
  const auto before = pool::stats();
  void* p = pool::acquire(kBytes);
  const auto after = pool::stats();
  pool::release(p, kBytes);
  EXPECT_EQ(after.system_allocs, before.system_allocs);
  EXPECT_EQ(after.reuses, before.reuses + 1);
}

TEST(Pool, TrimFreesBlocksEveryThreadFreed) {
  std::mutex mu;
  std::condition_variable cv;
  int stage = 0;  // 1: the other thread has parked a block; 2: it may end
  std::thread other([&] {
    pool::release(pool::acquire(4096), 4096);
    std::unique_lock<std::mutex> lock(mu);
    stage = 1;
    cv.notify_all();
    cv.wait(lock, [&] { return stage == 2; });
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return stage == 1; });
  }
  pool::release(pool::acquire(8192), 8192);
  EXPECT_GE(pool::stats().cached_bytes, size_t{4096 + 8192});
  pool::trim();
  EXPECT_EQ(pool::stats().cached_bytes, 0u);
  {
    std::lock_guard<std::mutex> lock(mu);
    stage = 2;
  }
  cv.notify_all();
  other.join();
}

}  // namespace
}  // namespace qkv
