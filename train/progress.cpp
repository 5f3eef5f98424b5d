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

namespace {

Progress resolve(Progress mode) {
  if (mode != Progress::kAuto) return mode;
  return isatty(fileno(stderr)) ? Progress::kBar : Progress::kLines;
}

}  // namespace

ProgressDisplay::ProgressDisplay(Progress mode, int64_t total, int64_t start)
    : mode_(resolve(mode)), total_(total), start_(start), t0_(std::chrono::steady_clock::now()) {}

EvalMeter::EvalMeter(Progress mode, std::string label)
    : mode_(resolve(mode)),
      label_(std::move(label)),
      t0_(std::chrono::steady_clock::now()),
      last_(t0_) {}

EvalMeter::~EvalMeter() {
  if (!drawn_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
}

void EvalMeter::operator()(int64_t done, int64_t total) {
  if (mode_ == Progress::kQuiet || done >= total) return;
  using namespace std::chrono;
  const auto now = steady_clock::now();
  const double since_start = duration<double>(now - t0_).count();
  const double since_last = duration<double>(now - last_).count();
  const std::string text = fmt::format("evaluating {}: {}/{} examples ({})", label_, done, total,
                                       clock_text(since_start));
  if (mode_ == Progress::kBar) {
    if (since_start < 0.5 || (drawn_ && since_last < 0.1)) return;
    std::fprintf(stderr, "\r\033[K%s", text.c_str());
    drawn_ = true;
  } else {
    if (since_last < 10) return;
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  last_ = now;
  std::fflush(stderr);
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
