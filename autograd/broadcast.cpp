#include "autograd/broadcast.h"

#include <algorithm>

#include "core/error.h"

namespace qkv::bcast {

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  Shape out;
  out.nd = std::max(a.nd, b.nd);
  for (int i = 1; i <= out.nd; ++i) {  // i-th axis from the right
    const int64_t x = i <= a.nd ? a.d[static_cast<size_t>(a.nd - i)] : 1;
    const int64_t y = i <= b.nd ? b.d[static_cast<size_t>(b.nd - i)] : 1;
    QKV_CHECK(x == y || x == 1 || y == 1, "{}: cannot broadcast {} with {}", op, a, b);
    out.d[static_cast<size_t>(out.nd - i)] = x == 1 ? y : x;
  }
  return out;
}

bool broadcasts_to(const Shape& from, const Shape& to) {
  if (from.nd > to.nd) return false;
  for (int i = 1; i <= from.nd; ++i) {
    const int64_t x = from.d[static_cast<size_t>(from.nd - i)];
    if (x != 1 && x != to.d[static_cast<size_t>(to.nd - i)]) return false;
  }
  return true;
}

}  // namespace qkv::bcast
