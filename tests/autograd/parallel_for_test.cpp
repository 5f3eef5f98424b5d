// parallel_for (autograd/kernels.h): a loop forks only when it is worth it, more than one thread
// is allowed and no parallel region is active on the calling thread; otherwise its iterations run
// in order on that thread without entering a region at all (libgomp would still start a team of
// one and pass it through a barrier). omp_get_level() counts regions entered, active or not, so
// it tells a loop that stayed outside from one run as a team of one.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "autograd/kernels.h"
#include "test_threads.h"
#include "test_util.h"

namespace qkv {
namespace {

/// For each iteration: the region level it ran at and its thread.
struct Seen {
  std::vector<int64_t> order;
  std::vector<int> level, thread;
};

Seen run(int64_t n, bool worth) {
  Seen s;
  s.level.assign(static_cast<size_t>(n), -1);
  s.thread.assign(static_cast<size_t>(n), -1);
  parallel_for(n, worth, [&](int64_t i) {
    s.level[static_cast<size_t>(i)] = omp_get_level();
    s.thread[static_cast<size_t>(i)] = omp_get_thread_num();
#pragma omp critical
    s.order.push_back(i);
  });
  return s;
}

TEST(ParallelFor, ALoopNotWorthItRunsInOrderOutsideAnyRegion) {
  test::ScopedThreads two(2);
  const Seen s = run(7, false);
  EXPECT_EQ(s.order, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(s.level, std::vector<int>(7, 0));
}

TEST(ParallelFor, OneThreadAllowedMeansNoRegion) {
  test::ScopedThreads one(1);
  const Seen s = run(7, true);
  EXPECT_EQ(s.order, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(s.level, std::vector<int>(7, 0));
}

TEST(ParallelFor, ALoopWorthItSharesTheIterationsBetweenTheThreads) {
  test::ScopedThreads two(2);
  Seen s = run(100, true);
  std::sort(s.order.begin(), s.order.end());
  for (int64_t i = 0; i < 100; ++i) ASSERT_EQ(s.order[static_cast<size_t>(i)], i);  // each once
  EXPECT_EQ(s.level, std::vector<int>(100, 1));
  // schedule(static): the first half on thread 0, the second on thread 1
  EXPECT_EQ(s.thread[0], 0);
  EXPECT_EQ(s.thread[99], 1);
}

TEST(ParallelFor, InsideAnActiveRegionItRunsOnTheCallingThreadWithoutNesting) {
  test::ScopedThreads two(2);
  std::vector<Seen> per_thread(2);
#pragma omp parallel num_threads(2)
  per_thread[static_cast<size_t>(omp_get_thread_num())] = run(9, true);
  for (const Seen& s : per_thread) {
    EXPECT_EQ(s.order, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
    EXPECT_EQ(s.level, std::vector<int>(9, 1));  // the outer region's level: none nested
  }
  EXPECT_EQ(per_thread[1].thread, std::vector<int>(9, 1));
}

}  // namespace
}  // namespace qkv
