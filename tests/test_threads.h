// The OpenMP threads a test runs with, put back when it ends, also when an ASSERT returns early.
#pragma once

#include <omp.h>

namespace qkv::test {

/// Sets exactly n threads (dynamic adjustment off) for its lifetime; set() changes n; the
/// destructor restores the thread count and dynamic setting found at construction.
class ScopedThreads {
 public:
  explicit ScopedThreads(int n) : before_(omp_get_max_threads()), dynamic_(omp_get_dynamic()) {
    omp_set_dynamic(0);
    set(n);
  }
  ~ScopedThreads() {
    omp_set_num_threads(before_);
    omp_set_dynamic(dynamic_);
  }
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;

  void set(int n) { omp_set_num_threads(n); }
  /// The thread count before this scope.
  int before() const { return before_; }

 private:
  int before_, dynamic_;
};

}  // namespace qkv::test
