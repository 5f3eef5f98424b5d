#include "core/pool.h"

#include <array>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

namespace qkv::pool {
namespace {

constexpr size_t kAlign = 64;
constexpr int kBuckets = 48;

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
  if (!p) throw std::bad_alloc();
  return p;
}

void release(void* p, size_t bytes) noexcept {
  if (!p) return;
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
