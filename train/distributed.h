// The ranks of a data-parallel run and the few collectives the trainer needs from them. A run
// under `mpirun -np N` talks over Open MPI (train/mpi/, compiled when QKV_MPI is on); any other
// run is one process alone, and every collective is then the identity. No MPI header is needed
// to use this one.
//
//   int main(int argc, char** argv) {
//     qkv::DistributedSession session(argc, argv);  // MPI_Init under mpirun, MPI_Finalize at exit
//     qkv::Communicator& comm = qkv::world();       // rank() in [0, size())
//     comm.allreduce_sum(grads.data(), n);          // every rank now holds the sum
//   }
//
// Every collective must be called by every rank in the same order; a rank that stops calling
// them leaves the others waiting. Failures are therefore agreed on (agree_status), never
// thrown past a collective on one rank alone.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>

namespace qkv {

class Communicator {
 public:
  virtual ~Communicator() = default;
  /// This process's rank, 0 .. size() − 1; rank 0 writes the run's files.
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// data[i] := Σ_ranks data[i], on every rank.
  virtual void allreduce_sum(float* data, int64_t n) = 0;
  virtual void allreduce_sum(double* data, int64_t n) = 0;
  /// data[i] := root's data[i], on every rank.
  virtual void broadcast(double* data, int64_t n, int root) = 0;
  virtual void barrier() = 0;
  /// Ends every rank of the job at once with exit status `status` (the last resort when the ranks
  /// cannot agree, e.g. an error outside the trainer's collective points).
  [[noreturn]] virtual void abort(int status) = 0;
};

/// One process alone: rank 0 of 1, every collective the identity.
Communicator& local_communicator();

/// The communicator of this process: every rank of the job while a DistributedSession under
/// mpirun is alive, local_communicator() otherwise.
Communicator& world();

/// Starts MPI when this process was launched by mpirun (and qkv was built with QKV_MPI), and
/// finalizes it when destroyed. A process not started by mpirun never touches MPI, so a plain run
/// is exactly the run of a build without MPI.
class DistributedSession {
 public:
  DistributedSession(int& argc, char**& argv);
  ~DistributedSession();
  DistributedSession(const DistributedSession&) = delete;
  DistributedSession& operator=(const DistributedSession&) = delete;
};

/// Thrown on the ranks that did not fail when another rank did: that rank reports the error, and
/// this one ends quietly with the same exit status.
struct StoppedByRank : std::exception {
  int status;  // the failing rank's exit status (1, 2, 130)
  int rank;    // the lowest failing rank
  StoppedByRank(int status_, int rank_) : status(status_), rank(rank_) {}
  const char* what() const noexcept override { return "stopped because another rank failed"; }
};

/// An error that every rank knows of (agreed through a collective): the rank that failed throws
/// it with its message, the others StoppedByRank. An exception of any other type escaping a
/// rank's work is known to that rank alone, and the others may be waiting for it in a
/// collective: that rank must end the job (Communicator::abort).
struct AgreedError : std::runtime_error {
  int status;  // the exit status (2 bad input, 1 otherwise)
  AgreedError(const std::string& message, int status_)
      : std::runtime_error(message), status(status_) {}
};

/// The exit status an exception ends the program with: 2 for qkv::Error and out of memory (bad
/// input), 1 for anything else.
int exit_status_of(const std::exception_ptr& error);

/// Collective: every rank passes its own status (0 = fine) and learns the lowest failing rank's;
/// returns {status, rank}, {0, -1} when no rank failed.
struct AgreedStatus {
  int status = 0;
  int rank = -1;
};
AgreedStatus agree_status(Communicator& comm, int status);

/// Collective: runs `work` on every rank and agrees on how it went. When some rank threw, the
/// lowest such rank rethrows its exception (prefixed "rank R of N: " when R > 0) and every other
/// rank throws StoppedByRank; when none did, returns. With one rank it is just work().
void run_together(Communicator& comm, const std::function<void()>& work);

/// `error` rethrown as an AgreedError, its message prefixed by "rank R of N: " for ranks other
/// than 0.
[[noreturn]] void rethrow_from_rank(Communicator& comm, const std::exception_ptr& error);

}  // namespace qkv
