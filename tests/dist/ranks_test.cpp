// `mpirun -np N qkv train` against the run of one process: the same global batch and seed give
// the same run up to float reduction order; one rank under mpirun is the plain run bit for bit; a
// resumed 2-rank run is the uninterrupted one bit for bit; and a bad file, a non-finite loss or
// SIGINT on one rank stop every rank with the usual exit status, never a hang. Registered only
// when qkv is built with QKV_MPI (tests/CMakeLists.txt); every launch runs under a timeout.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "apps/bench_dist.h"
#include "nn/model.h"
#include "run_qkv.h"
#include "test_files.h"
#include "train/checkpoint.h"
#include "train/metrics.h"

#ifndef QKV_MPIEXEC
#error "QKV_MPIEXEC (the mpirun program) must be defined by tests/CMakeLists.txt"
#endif

namespace qkv {
namespace {

namespace fs = std::filesystem;
using test::temp_path;

/// A tiny decoder run on `copy` (variable lengths, ignored targets: the shares of a batch count
/// different numbers of targets, so the loss weighting matters). One thread per rank.
std::vector<std::string> copy_run(const std::string& out, int steps, int eval_every = 25) {
  // clang-format off
  return {"train", "--task", "copy", "--steps", std::to_string(steps), "--batch-size", "16",
          "--d-model", "32", "--n-heads", "2", "--n-layers", "1", "--d-ff", "64",
          "--eval-every", std::to_string(eval_every), "--eval-examples", "64",
          "--threads", "1", "--progress", "lines", "--out", out};
  // clang-format on
}

/// `qkv ARGS` under `mpirun -np ranks` (ranks 0: no mpirun at all), killed after 120 s.
test::RunResult run_ranks(int ranks, const std::vector<std::string>& args, const std::string& dir) {
  if (ranks == 0) return test::run_qkv(args, dir);
  std::vector<std::string> all = {"-k",
                                  "5",
                                  "120",
                                  QKV_MPIEXEC,
                                  "-np",
                                  std::to_string(ranks),
                                  "--oversubscribe",
                                  "--allow-run-as-root",
                                  QKV_BIN};
  all.insert(all.end(), args.begin(), args.end());
  std::string cmd = "timeout";
  for (const std::string& a : all) cmd += " " + test::quote(a);
  cmd += " >" + test::quote(dir + "/stdout.txt") + " 2>" + test::quote(dir + "/stderr.txt");
  const int raw = std::system(cmd.c_str());
  test::RunResult r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = test::slurp(dir + "/stdout.txt");
  r.err = test::slurp(dir + "/stderr.txt");
  return r;
}

std::string fresh_dir(const std::string& name) {
  const std::string d = temp_path(name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::vector<double> losses(const std::string& run) {
  std::vector<double> out;
  for (const MetricsRecord& r : read_metrics(run + "/metrics.jsonl"))
    if (r.loss) out.push_back(*r.loss);
  return out;
}

TEST(Ranks, TwoRanksFollowOneProcess) {
  const std::string d = fresh_dir("follow");
  ASSERT_EQ(run_ranks(0, copy_run(d + "/one", 50), d).status, 0);
  const test::RunResult two = run_ranks(2, copy_run(d + "/two", 50), d);
  ASSERT_EQ(two.status, 0) << two.err;
  EXPECT_NE(two.err.find("over 2 ranks"), std::string::npos) << two.err;
  EXPECT_EQ(test::count_of(two.out, "trained 50 steps"), 1u) << "rank 0 alone reports: " << two.out;

  const std::vector<double> a = losses(d + "/one"), b = losses(d + "/two");
  ASSERT_EQ(a.size(), 50u);
  ASSERT_EQ(b.size(), 50u);
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_LE(std::abs(a[i] - b[i]), 1e-5 * std::abs(a[i])) << "step " << i + 1;
  const std::vector<MetricsRecord> ma = read_metrics(d + "/one/metrics.jsonl");
  const std::vector<MetricsRecord> mb = read_metrics(d + "/two/metrics.jsonl");
  ASSERT_TRUE(ma.back().val_loss && mb.back().val_loss);
  EXPECT_NEAR(*mb.back().val_loss, *ma.back().val_loss, 1e-5 * *ma.back().val_loss)
      << "the sharded evaluation sums to the whole split's";
  EXPECT_EQ(*mb.back().val_accuracy, *ma.back().val_accuracy);

  // Parameters: the whole model within 1e-5 relative (L2), and no element off by more than 1e-5
  // of the model's largest. (Per tensor would not do: W_K.bias has an exactly-zero gradient, as
  // softmax ignores a shift shared by every key, so Adam turns its rounding noise into steps.)
  const Checkpoint ca = load_checkpoint(d + "/one/last.h5");
  const Checkpoint cb = load_checkpoint(d + "/two/last.h5");
  ASSERT_EQ(ca.params.size(), cb.params.size());
  double diff2 = 0, norm2 = 0, max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < ca.params.size(); ++i) {
    const Tensor<float>& x = ca.params[i].second;
    const Tensor<float>& y = cb.params[i].second;
    ASSERT_EQ(x.numel(), y.numel()) << ca.params[i].first;
    for (int64_t j = 0; j < x.numel(); ++j) {
      const double dx = double(x.data()[j]) - double(y.data()[j]);
      diff2 += dx * dx;
      norm2 += double(x.data()[j]) * double(x.data()[j]);
      max_diff = std::max(max_diff, std::abs(dx));
      max_abs = std::max(max_abs, std::abs(double(x.data()[j])));
    }
  }
  EXPECT_LE(std::sqrt(diff2), 1e-5 * std::sqrt(norm2));
  EXPECT_LE(max_diff, 1e-5 * max_abs);
  EXPECT_GT(diff2, 0.0) << "two ranks add in another order: equal bits would mean one rank "
                           "did all the work";
}

TEST(Ranks, AnEncoderWithProbesFollowsOneProcess) {
  // pronoun: an encoder (the loss is a mean over examples) whose validation probes rank 0 runs
  // over the whole split while the training-split accuracy is sharded.
  const std::string d = fresh_dir("pronoun");
  auto args = [&](const std::string& out) {
    return std::vector<std::string>{"train", "--task",       "pronoun", "--steps",
                                    "10",    "--eval-every", "10",      "--batch-size",
                                    "32",    "--threads",    "1",       "--progress",
                                    "lines", "--out",        out};
  };
  ASSERT_EQ(run_ranks(0, args(d + "/one"), d).status, 0);
  const test::RunResult two = run_ranks(2, args(d + "/two"), d);
  ASSERT_EQ(two.status, 0) << two.err;
  const std::vector<MetricsRecord> a = read_metrics(d + "/one/metrics.jsonl");
  const std::vector<MetricsRecord> b = read_metrics(d + "/two/metrics.jsonl");
  ASSERT_EQ(a.size(), b.size());
  const MetricsRecord &x = a.back(), &y = b.back();
  ASSERT_TRUE(x.val_loss && y.val_loss && x.loss && y.loss);
  EXPECT_LE(std::abs(*x.loss - *y.loss), 1e-5 * *x.loss);
  EXPECT_LE(std::abs(*x.val_loss - *y.val_loss), 1e-5 * *x.val_loss);
  EXPECT_EQ(*x.val_accuracy, *y.val_accuracy);
  EXPECT_EQ(x.extra.at("train_accuracy"), y.extra.at("train_accuracy"));
  ASSERT_TRUE(y.extra.contains("probes")) << "rank 0 reports the probes";
  EXPECT_NEAR(y.extra["probes"]["referent_attention"].begin()->get<double>(),
              x.extra["probes"]["referent_attention"].begin()->get<double>(), 1e-5);
}

TEST(Ranks, ASetupFailureOnRank1AloneStopsRank0Too) {
  // Two programs in one job (mpirun's "A : B"): rank 1 is given a broken --config.
  const std::string d = fresh_dir("rank1_fails");
  std::ofstream(d + "/broken.json") << "{not json";
  std::vector<std::string> rank0 = copy_run(d + "/run", 5);
  std::vector<std::string> args = rank0;
  args.insert(args.end(), {":", "-np", "1", QKV_BIN});
  args.insert(args.end(), rank0.begin(), rank0.end());
  args.insert(args.end(), {"--config", d + "/broken.json"});
  const test::RunResult r = run_ranks(1, args, d);
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(test::count_of(r.err, "qkv: rank 1 of 2: --config"), 1u) << r.err;
  EXPECT_EQ(test::count_of(r.err, "qkv: "), 1u) << "rank 0 stops quietly: " << r.err;
  EXPECT_EQ(r.out, "") << "no rank trained";
}

TEST(RankBench, TwoRanksReportTheAllreduceAndItsBytes) {
  const std::string d = fresh_dir("bench");
  const test::RunResult r = run_ranks(
      2, {"bench", "--config", "tiny,small", "--steps", "3", "--warmup", "1", "--json"}, d);
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<nlohmann::json> lines;
  std::istringstream out(r.out);
  for (std::string line; std::getline(out, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 2u) << "rank 0 alone prints, one line per configuration: " << r.out;
  for (const nlohmann::json& j : lines) {
    const BenchConfig& c = bench_config(j["config"].get<std::string>());
    const Model<float> model(c.model, 1);
    const int64_t tensors = static_cast<int64_t>(model.named_parameters().size());
    EXPECT_EQ(j["ranks"], 2);
    // Every gradient, a defined flag per tensor and five scalars, in float32.
    EXPECT_EQ(j["bytes_reduced"].get<int64_t>(), 4 * (model.num_parameters() + tensors + 5));
    EXPECT_EQ(j["ring_bytes_per_rank"].get<double>(), j["bytes_reduced"].get<double>());
    EXPECT_GT(j["allreduce_ms"].get<double>(), 0.0);
    EXPECT_LT(j["allreduce_ms"].get<double>(), j["ms_per_step"].get<double>());
    const double tokens_per_s =
        double(c.batch * c.seq_len()) / (j["ms_per_step"].get<double>() / 1000);
    EXPECT_NEAR(j["tokens_per_s"].get<double>(), tokens_per_s, 1e-3 * tokens_per_s)
        << "ms_per_step is printed to 3 decimals";
  }
}

TEST(RankBench, ConfigListsNameEachConfiguration) {
  const std::vector<const BenchConfig*> two = bench_config_list("medium,large");
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0]->name, "medium");
  EXPECT_EQ(two[1]->name, "large");
  EXPECT_EQ(bench_config_list("all").size(), bench_configs().size());
  EXPECT_EQ(test::error_of([] { bench_config_list("medium,huge"); }),
            "--config: unknown configuration 'huge'; choose tiny, small, medium, large or all");
}

/// Every parameter of two checkpoints, bit for bit.
void expect_same_bits(const std::string& a, const std::string& b) {
  const Checkpoint ca = load_checkpoint(a), cb = load_checkpoint(b);
  ASSERT_EQ(ca.params.size(), cb.params.size());
  for (size_t i = 0; i < ca.params.size(); ++i) {
    const Tensor<float>& x = ca.params[i].second;
    const Tensor<float>& y = cb.params[i].second;
    ASSERT_EQ(x.numel(), y.numel());
    EXPECT_EQ(std::memcmp(x.data(), y.data(), sizeof(float) * size_t(x.numel())), 0)
        << ca.params[i].first << " differs between " << a << " and " << b;
  }
  EXPECT_EQ(ca.train.step, cb.train.step);
}

TEST(Ranks, OneRankUnderMpirunIsThePlainRunBitForBit) {
  const std::string d = fresh_dir("one_rank");
  std::vector<std::string> plain = copy_run(d + "/plain", 20), ranked = copy_run(d + "/ranked", 20);
  for (auto* args : {&plain, &ranked}) args->insert(args->end(), {"--dropout", "0.1"});
  ASSERT_EQ(run_ranks(0, plain, d).status, 0);
  const test::RunResult r = run_ranks(1, ranked, d);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(losses(d + "/plain"), losses(d + "/ranked"));
  expect_same_bits(d + "/plain/last.h5", d + "/ranked/last.h5");
}

TEST(Ranks, ResumedTwoRankRunIsTheUninterruptedOneBitForBit) {
  // Dropout on: each rank's masks must come back the same after a resume.
  const std::string d = fresh_dir("resume");
  std::vector<std::string> whole = copy_run(d + "/whole", 30);
  whole.insert(whole.end(), {"--dropout", "0.1", "--save-every", "15", "--keep", "5"});
  ASSERT_EQ(run_ranks(2, whole, d).status, 0);
  const test::RunResult r = run_ranks(2,
                                      {"train", "--resume", d + "/whole/step-000015.h5", "--out",
                                       d + "/resumed", "--threads", "1", "--progress", "lines"},
                                      d);
  ASSERT_EQ(r.status, 0) << r.err;
  expect_same_bits(d + "/whole/last.h5", d + "/resumed/last.h5");
  const std::vector<double> a = losses(d + "/whole"), b = losses(d + "/resumed");
  ASSERT_EQ(a.size(), 30u);
  ASSERT_EQ(b.size(), 30u);  // the history up to step 15 comes along
  EXPECT_EQ(a, b);
}

TEST(Ranks, ABadFileStopsEveryRankWithStatus2AndOneMessage) {
  const std::string d = fresh_dir("bad_file");
  std::ofstream(d + "/broken.h5") << "not a checkpoint";
  const test::RunResult r = run_ranks(2, {"train", "--resume", d + "/broken.h5"}, d);
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(test::count_of(r.err, "broken.h5"), 1u)
      << "one message, from the rank that failed: " << r.err;
}

TEST(Ranks, ANonFiniteLossStopsEveryRankWithStatus1) {
  const std::string d = fresh_dir("nonfinite");
  std::vector<std::string> args = copy_run(d + "/run", 50);
  args.insert(args.end(), {"--optimizer", "sgd", "--lr", "1e30", "--clip", "0"});
  const test::RunResult r = run_ranks(2, args, d);
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(test::count_of(r.err, "training stopped"), 1u) << r.err;
}

TEST(Ranks, AFailedWriteOnRank0StopsEveryRankWithStatus2) {
  // Rank 0 alone writes; its error travels with the next step's allreduce.
  const test::Tmpfs disk("dist_tiny_disk", "64k");
  if (!disk.error().empty()) GTEST_SKIP() << disk.error();
  std::vector<std::string> args = copy_run(disk.dir() + "/run", 40);
  args.insert(args.end(), {"--save-every", "5"});
  const test::RunResult r = run_ranks(2, args, fresh_dir("disk_full"));
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(test::count_of(r.err, "No space left on device"), 1u) << r.err;
}

/// The pid of the process running rank `rank` of a job whose command line holds `marker`.
pid_t find_rank(int rank, const std::string& marker) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string cmdline = test::slurp("/proc/" + pid + "/cmdline");
    if (cmdline.find(marker) == std::string::npos || cmdline.find(QKV_BIN) != 0) continue;
    const std::string env = test::slurp("/proc/" + pid + "/environ");
    if (env.find(std::string("OMPI_COMM_WORLD_RANK=") + std::to_string(rank) + '\0') !=
        std::string::npos)
      return static_cast<pid_t>(std::stol(pid));
  }
  return -1;
}

TEST(Ranks, SigintOnOneRankStopsEveryRankWithStatus130AndACheckpoint) {
  const std::string d = fresh_dir("sigint");
  const std::string out = d + "/run";
  const std::vector<std::string> args = copy_run(out, 1000000, /*eval_every=*/1000000);
  pid_t job = ::fork();
  ASSERT_GE(job, 0);
  if (job == 0) {
    const test::RunResult r = run_ranks(2, args, d);
    std::_Exit(r.status < 0 ? 255 : r.status);
  }
  // Wait for training to start (the step-0 evaluation is in metrics.jsonl), then interrupt rank 1.
  pid_t rank1 = -1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int raw = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    ASSERT_EQ(::waitpid(job, &raw, WNOHANG), 0)
        << "the job ended early: " << test::slurp(d + "/stderr.txt");
    if (rank1 < 0) rank1 = find_rank(1, out);
    if (rank1 > 0 && fs::exists(out + "/metrics.jsonl")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GT(rank1, 0) << "rank 1 was not found";
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(::kill(rank1, SIGINT), 0);
  ASSERT_EQ(::waitpid(job, &raw, 0), job);
  ASSERT_TRUE(WIFEXITED(raw));
  const std::string err = test::slurp(d + "/stderr.txt");
  EXPECT_EQ(WEXITSTATUS(raw), 130) << err;
  EXPECT_EQ(test::count_of(err, "interrupted after step"), 1u) << err;
  EXPECT_TRUE(fs::exists(out + "/last.h5"));
  // The checkpoint holds the step every rank stopped at.
  const Checkpoint c = load_checkpoint(out + "/last.h5");
  EXPECT_GT(c.train.step, 0);
  EXPECT_EQ(static_cast<int64_t>(losses(out).size()), c.train.step);
}

}  // namespace
}  // namespace qkv
