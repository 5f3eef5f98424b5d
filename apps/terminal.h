// Drawing in the terminal.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>

namespace qkv::cli {

/// A horizontal bar of `width` cells for p in [0, 1] (clamped), with eighth-block resolution.
inline std::string bar(double p, int width) {
  static const char* eighths[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
  const int units = static_cast<int>(std::lround(std::clamp(p, 0.0, 1.0) * width * 8));
  std::string s;
  for (int i = 0; i < units / 8; ++i) s += "█";
  return s + eighths[units % 8];
}

}  // namespace qkv::cli
