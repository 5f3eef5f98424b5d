#include "train/progress.h"

#include <unistd.h>

#include <fmt/core.h>

namespace qkv {

std::string clock_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02d}", s / 60, s % 60);
}

std::string rate_text(double tokens_per_s) {
  if (tokens_per_s >= 1e6) return fmt::format("{:.2f}M tok/s", tokens_per_s / 1e6);
  if (tokens_per_s >= 1e3) return fmt::format("{:.1f}k tok/s", tokens_per_s / 1e3);
  return fmt::format("{:.0f} tok/s", tokens_per_s);
}

ProgressDisplay::ProgressDisplay(Progress mode, int64_t total, int64_t start)
    : total_(total), start_(start), t0_(std::chrono::steady_clock::now()) {
  if (mode == Progress::kAuto) mode = isatty(fileno(stderr)) ? Progress::kBar : Progress::kLines;
  mode_ = mode;
}

void ProgressDisplay::draw() {
  constexpr int kWidth = 24;
  const double f = total_ ? double(step_) / double(total_) : 1.0;
  const int fill = static_cast<int>(f * kWidth);
  std::string bar(static_cast<size_t>(fill), '=');
  if (fill < kWidth) bar += '>';
  bar.resize(kWidth, ' ');
  std::string text = fmt::format("\r\033[K{:>{}}/{} [{}] loss {:.4f}", step_,
                                 std::to_string(total_).size(), total_, bar, loss_);
  if (val_acc_ >= 0) text += fmt::format(" | val acc {:.2f}%", 100 * val_acc_);
  text += fmt::format(" | lr {:.2e} | {} | ETA {}", lr_, rate_text(rate_), clock_text(eta()));
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace qkv
