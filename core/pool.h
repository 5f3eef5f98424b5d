// A caching allocator for tensor buffers: freed buffers go back to a free list bucketed by
// power-of-two size, so a training step that repeats the same shapes allocates nothing from the
// system after its first step (PyTorch's CUDA caching allocator, on the CPU).
#pragma once

#include <cstddef>

namespace qkv::pool {

/// The largest block the pool serves: 2^47 bytes (128 TiB), its last bucket.
constexpr size_t kMaxBytes = size_t{1} << 47;

/// A 64-byte-aligned block of at least `bytes` bytes; reuses a cached one when it can. Throws
/// qkv::Error when bytes > kMaxBytes or the system has no memory for it (never std::bad_alloc).
void* acquire(size_t bytes);
/// Returns a block from acquire(bytes) to the cache.
void release(void* p, size_t bytes) noexcept;

struct Stats {
  size_t system_allocs = 0;  // blocks obtained from the system allocator
  size_t reuses = 0;         // blocks served from the cache
  size_t cached_bytes = 0;   // bytes now parked in the cache
};
Stats stats();
/// Frees every cached block back to the system.
void trim();

}  // namespace qkv::pool
