#include "train/distributed.h"

#include <cstdio>
#include <cstdlib>
#include <new>
#include <vector>

#include "core/error.h"

namespace qkv {
namespace {

class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(float*, int64_t) override {}
  void allreduce_sum(double*, int64_t) override {}
  void broadcast(double*, int64_t, int) override {}
  void barrier() override {}
  [[noreturn]] void abort(int status) override { std::_Exit(status); }
};

}  // namespace

Communicator& local_communicator() {
  static LocalCommunicator local;
  return local;
}

#ifndef QKV_HAVE_MPI
// Without MPI every process is alone (train/mpi/ holds the MPI versions of these two).
Communicator& world() {
  return local_communicator();
}
DistributedSession::DistributedSession(int&, char**&) {
  // Started by mpirun all the same: each process would train alone, into the same folder.
  const char* n = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (n && std::atoi(n) > 1)
    std::fprintf(stderr,
                 "qkv: note: this qkv was built without MPI (QKV_MPI off), so each of the %s "
                 "processes mpirun started runs alone; rebuild with libopenmpi-dev installed\n",
                 n);
}
DistributedSession::~DistributedSession() = default;
#endif

int exit_status_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const StoppedByRank& s) {
    return s.status;
  } catch (const AgreedError& e) {
    return e.status;
  } catch (const Error&) {
    return 2;
  } catch (const std::bad_alloc&) {
    return 2;
  } catch (...) {
    return 1;
  }
}

AgreedStatus agree_status(Communicator& comm, int status) {
  if (comm.size() == 1) return status ? AgreedStatus{status, 0} : AgreedStatus{};
  // Slot r holds rank r's status; the sum leaves every slot as its rank wrote it.
  std::vector<double> all(static_cast<size_t>(comm.size()), 0.0);
  all[static_cast<size_t>(comm.rank())] = status;
  comm.allreduce_sum(all.data(), static_cast<int64_t>(all.size()));
  for (int r = 0; r < comm.size(); ++r)
    if (all[static_cast<size_t>(r)] != 0) return {static_cast<int>(all[static_cast<size_t>(r)]), r};
  return {};
}

void rethrow_from_rank(Communicator& comm, const std::exception_ptr& error) {
  const int status = exit_status_of(error);
  const std::string prefix = comm.rank() > 0 ? "rank " + std::to_string(comm.rank()) + " of " +
                                                   std::to_string(comm.size()) + ": "
                                             : "";
  try {
    std::rethrow_exception(error);
  } catch (const StoppedByRank&) {
    throw;
  } catch (const AgreedError&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw AgreedError(prefix + "out of memory; try a smaller model or batch size", status);
  } catch (const std::exception& e) {
    throw AgreedError(prefix + e.what(), status);
  } catch (...) {
    throw AgreedError(prefix + "an unknown error", status);
  }
}

void run_together(Communicator& comm, const std::function<void()>& work) {
  if (comm.size() == 1) return work();
  std::exception_ptr error;
  try {
    work();
  } catch (...) {
    error = std::current_exception();
  }
  const AgreedStatus agreed = agree_status(comm, error ? exit_status_of(error) : 0);
  if (agreed.status == 0) return;
  if (agreed.rank == comm.rank()) rethrow_from_rank(comm, error);
  throw StoppedByRank(agreed.status, agreed.rank);
}

}  // namespace qkv
