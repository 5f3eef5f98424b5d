#include "core/pool.h"

#include <array>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

#include "core/error.h"

namespace qkv::pool {
namespace {

constexpr size_t kAlign = 64;
constexpr int kBuckets = 48;
static_assert(kMaxBytes == size_t{1} << (kBuckets - 1), "the largest block has the last bucket");
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

/// The smallest b with 2^b >= bytes (at least 6: 64 bytes); callers keep bytes <= kMaxBytes, so
/// b < kBuckets.
int bucket_of(size_t bytes) {
  int b = 6;  // 64 bytes, the smallest block
  while ((size_t{1} << b) < bytes) ++b;
  return b;
}

struct Cache {
  std::mutex mu;
  std::array<std::vector<void*>, kBuckets> free;
  Stats stats;
  ~Cache() {
    for (auto& list : free)
      for (void* p : list) std::free(p);
  }
};

Cache& cache() {
  static Cache* c = new Cache;  // never destroyed: tensors may outlive static destruction
  return *c;
}

}  // namespace

void* acquire(size_t bytes) {
  if (bytes > kMaxBytes)
    fail(
        "cannot allocate a tensor of {} bytes ({:.0f} GiB): the most one tensor can take is {} GiB",
        bytes, static_cast<double>(bytes) / kGiB, kMaxBytes >> 30);
  int b = bucket_of(bytes);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto& list = c.free[static_cast<size_t>(b)];
    if (!list.empty()) {
      void* p = list.back();
      list.pop_back();
      c.stats.reuses++;
      c.stats.cached_bytes -= size_t{1} << b;
      return p;
    }
    c.stats.system_allocs++;
  }
  void* p = std::aligned_alloc(kAlign, size_t{1} << b);
  if (!p)
    fail("out of memory: cannot allocate a tensor of {:.2f} GiB",
         static_cast<double>(bytes) / kGiB);
  return p;
}

void release(void* p, size_t bytes) noexcept {
  if (!p) return;
  if (bytes > kMaxBytes) {  // never handed out by acquire
    std::free(p);
    return;
  }
  int b = bucket_of(bytes);
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  try {
    c.free[static_cast<size_t>(b)].push_back(p);
    c.stats.cached_bytes += size_t{1} << b;
  } catch (...) {
    std::free(p);
  }
}

Stats stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.stats;
}

void trim() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  for (auto& list : c.free) {
    for (void* p : list) std::free(p);
    list.clear();
  }
  c.stats.cached_bytes = 0;
}

}  // namespace qkv::pool
