// The trainer's progress on stderr: a live bar on a terminal, a line per evaluation otherwise.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

namespace qkv {

/// How the trainer reports progress on stderr.
enum class Progress {
  kAuto,   // a live bar when stderr is a terminal, plain lines otherwise
  kBar,    // the live bar
  kLines,  // a line per evaluation
  kQuiet,  // nothing
};

/// "1:05", "2:03:04"; "?" for a negative or non-finite time.
std::string clock_text(double seconds);
/// "950 tok/s", "12.3k tok/s", "1.25M tok/s".
std::string rate_text(double tokens_per_s);

class ProgressDisplay {
 public:
  /// total: the run's last step; start: the step it starts from (a resumed run: not 0).
  ProgressDisplay(Progress mode, int64_t total, int64_t start);

  bool quiet() const { return mode_ == Progress::kQuiet; }

  /// A permanent line (above the bar).
  void line(const std::string& text) {
    if (quiet()) return;
    if (mode_ == Progress::kBar && drawn_) std::fputs("\r\033[K", stderr);
    std::fprintf(stderr, "%s\n", text.c_str());
    if (mode_ == Progress::kBar && drawn_) draw();
    std::fflush(stderr);
  }

  void step(int64_t s, double loss, double lr, double tokens_per_s) {
    step_ = s;
    lr_ = lr;
    if (std::isfinite(loss)) loss_ = loss_ < 0 ? loss : 0.9 * loss_ + 0.1 * loss;
    rate_ = rate_ < 0 ? tokens_per_s : 0.9 * rate_ + 0.1 * tokens_per_s;
    if (mode_ != Progress::kBar) return;
    const auto now = std::chrono::steady_clock::now();
    if (drawn_ && s < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    draw();
  }

  void val_accuracy(double acc) { val_acc_ = acc; }

  /// Ends the bar's line.
  void finish() {
    if (mode_ == Progress::kBar && drawn_) std::fputs("\n", stderr);
    drawn_ = false;
    std::fflush(stderr);
  }

  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }
  double eta() const {
    const int64_t done = step_ - start_;
    return done > 0 ? elapsed() / double(done) * double(total_ - step_) : -1;
  }
  double smoothed_rate() const { return rate_; }

 private:
  void draw();

  Progress mode_;
  int64_t total_, start_, step_ = 0;
  double loss_ = -1, lr_ = 0, rate_ = -1, val_acc_ = -1;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point t0_, last_draw_;
};

/// Progress of one evaluation on stderr, for evaluate()'s EvalProgress: nothing for the first
/// half second (a quick evaluation shows nothing), then "evaluating val: 1024/2048 examples (0:03)"
/// redrawn in place on a terminal (cleared when it ends, so a bar drawn before is redrawn by its
/// next step), or a plain line every 10 s otherwise.
///
///   EvalMeter meter(Progress::kAuto, "val");
///   evaluate(model, task, Split::kVal, 256, 0, std::ref(meter));
class EvalMeter {
 public:
  EvalMeter(Progress mode, std::string label);
  ~EvalMeter();
  EvalMeter(const EvalMeter&) = delete;
  EvalMeter& operator=(const EvalMeter&) = delete;

  void operator()(int64_t done, int64_t total);

 private:
  Progress mode_;
  std::string label_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point t0_, last_;
};

}  // namespace qkv
