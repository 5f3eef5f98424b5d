#include "train/stop.h"

#include <signal.h>

#include <csignal>

namespace qkv {

namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_stop_signal(int sig) {
  if (g_stop) {  // a second signal: stop now, with the default action
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_stop = 1;
}

}  // namespace

void request_stop() {
  g_stop = 1;
}
bool stop_requested() {
  return g_stop != 0;
}
void clear_stop_request() {
  g_stop = 0;
}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace qkv
