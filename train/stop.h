// Stop requests: SIGINT / SIGTERM ask a running Trainer (and an evaluation) to stop after the
// current step or batch, so that it can save a checkpoint first.
#pragma once

namespace qkv {

/// Asks a running Trainer to stop after its current step (async-signal-safe: sets a flag).
void request_stop();
bool stop_requested();
void clear_stop_request();
/// SIGINT and SIGTERM call request_stop(); a second signal terminates at once.
void install_stop_handlers();

}  // namespace qkv
