// The Communicator over Open MPI: MPI_COMM_WORLD of a job started by mpirun. Compiled only when
// QKV_MPI is on; train/distributed.cpp holds the single-process versions of world() and
// DistributedSession otherwise.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>

#include "core/error.h"
#include "train/distributed.h"

namespace qkv {
namespace {

/// MPI counts are int: a longer buffer goes in pieces of at most INT_MAX elements.
template <typename F>
void in_pieces(int64_t n, F&& f) {
  for (int64_t done = 0; done < n;) {
    const int64_t piece = std::min<int64_t>(n - done, INT_MAX);
    f(done, static_cast<int>(piece));
    done += piece;
  }
}

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  fail("{} failed: {}", what, std::string(text, static_cast<size_t>(len)));
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    // Errors come back as codes (check() turns them into qkv::Error), not as an abort.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void allreduce_sum(float* data, int64_t n) override {
    in_pieces(n, [&](int64_t at, int count) {
      check(MPI_Allreduce(MPI_IN_PLACE, data + at, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
            "MPI_Allreduce");
    });
  }
  void allreduce_sum(double* data, int64_t n) override {
    in_pieces(n, [&](int64_t at, int count) {
      check(MPI_Allreduce(MPI_IN_PLACE, data + at, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
            "MPI_Allreduce");
    });
  }
  void broadcast(double* data, int64_t n, int root) override {
    in_pieces(n, [&](int64_t at, int count) {
      check(MPI_Bcast(data + at, count, MPI_DOUBLE, root, MPI_COMM_WORLD), "MPI_Bcast");
    });
  }
  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }
  [[noreturn]] void abort(int status) override {
    MPI_Abort(MPI_COMM_WORLD, status);
    std::_Exit(status);  // MPI_Abort does not return; this only satisfies [[noreturn]]
  }

 private:
  int rank_ = 0, size_ = 1;
};

MpiCommunicator* g_world = nullptr;

/// Whether a process manager started this process (mpirun of Open MPI, or a PMI/PMIx launcher).
bool launched_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

}  // namespace

Communicator& world() {
  return g_world ? static_cast<Communicator&>(*g_world) : local_communicator();
}

DistributedSession::DistributedSession(int& argc, char**& argv) {
  if (!launched_by_mpirun()) return;
  int provided = 0;
  // Only the main thread calls MPI (OpenMP threads compute between the calls).
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) return;
  g_world = new MpiCommunicator();
}

DistributedSession::~DistributedSession() {
  if (!g_world) return;
  delete g_world;
  g_world = nullptr;
  MPI_Finalize();
}

}  // namespace qkv
