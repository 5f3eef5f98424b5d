// A 64-bit checksum of a byte buffer: XXH64 (Yann Collet's xxHash, 64-bit variant, seed 0), so any
// xxhash tool can recompute what qkv stores. Not cryptographic: it detects damage, not forgery.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qkv {

/// XXH64 of bytes [data, data + n) with the given seed.
uint64_t xxh64(const void* data, size_t n, uint64_t seed = 0);

}  // namespace qkv
