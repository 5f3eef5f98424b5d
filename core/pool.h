// A caching allocator for tensor buffers: freed buffers go back to a free list bucketed by
// power-of-two size, so a training step that repeats the same shapes allocates nothing from the
// system after its first step (PyTorch's CUDA caching allocator, on the CPU).
#pragma once

#include <cstddef>

namespace qkv::pool {

/// A 64-byte-aligned block of at least `bytes` bytes; reuses a cached one when it can.
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
