// qkv runs with OMP_WAIT_POLICY=passive unless the user chose a policy (apps/wait_policy.h).
// libgomp prints the settings it loaded with under OMP_DISPLAY_ENV=verbose; its spin count is
// what the policy changes (300000 by default, 0 when passive), and the last block printed is the
// one the program ran with.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "run_qkv.h"
#include "test_files.h"

namespace qkv {
namespace {

/// The GOMP_SPINCOUNT of the last settings block libgomp printed when `env` ran `qkv --version`,
/// and how many blocks it printed (one per program load).
struct Loaded {
  std::string spincount;
  int loads = 0;
};
Loaded loaded_with(const std::string& env) {
  const std::string dir = test::temp_folder();
  const std::string cmd = "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose " +
                          env + " " + test::quote(QKV_BIN) + " --version >/dev/null 2>" +
                          test::quote(dir + "e.txt");
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  const std::string err = test::slurp(dir + "e.txt");
  Loaded l;
  const std::string key = "GOMP_SPINCOUNT = '";
  for (size_t at = err.find(key); at != std::string::npos; at = err.find(key, at + 1)) {
    const size_t begin = at + key.size();
    l.spincount = err.substr(begin, err.find('\'', begin) - begin);
    ++l.loads;
  }
  return l;
}

TEST(WaitPolicy, PassiveWhenTheUserChoseNothing) {
  const Loaded l = loaded_with("");
  EXPECT_EQ(l.spincount, "0") << "workers sleep at once instead of spinning";
  EXPECT_EQ(l.loads, 2) << "set in the environment, then the program ran itself again";
}

TEST(WaitPolicy, TheUsersChoiceStands) {
  Loaded l = loaded_with("GOMP_SPINCOUNT=1234");
  EXPECT_EQ(l.spincount, "1234");
  EXPECT_EQ(l.loads, 1);
  l = loaded_with("OMP_WAIT_POLICY=active");
  EXPECT_NE(l.spincount, "0");
  EXPECT_EQ(l.loads, 1);
}

// Started through the dynamic loader by hand (as a bundle with its own libraries is), the
// program's /proc/self/exe is the loader: running that again would run the loader on qkv's flags
// (`--version` printed the loader's version). qkv then keeps OpenMP's default policy.
TEST(WaitPolicy, StartedThroughTheLoaderRunsItselfNotTheLoader) {
  const char* loader = "/lib64/ld-linux-x86-64.so.2";
  if (::access(loader, X_OK) != 0) GTEST_SKIP() << loader << " is not on this machine";
  const std::string dir = test::temp_folder();
  const std::string cmd = "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose " +
                          std::string(loader) + " " + test::quote(QKV_BIN) + " --version >" +
                          test::quote(dir + "o.txt") + " 2>" + test::quote(dir + "e.txt");
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  const std::string out = test::slurp(dir + "o.txt");
  EXPECT_EQ(out.rfind("qkv ", 0), 0u) << "qkv's version, not the loader's: " << out;
  const std::string err = test::slurp(dir + "e.txt");
  EXPECT_EQ(err.find("GOMP_SPINCOUNT = '"), err.rfind("GOMP_SPINCOUNT = '"))
      << "loaded once, not run again";
}

#ifdef QKV_OPENBLAS
/// The GEMM line of `qkv --version` run with `env`.
std::string gemm_line(const std::string& env) {
  const std::string dir = test::temp_folder();
  const std::string cmd = "env -u OPENBLAS_CORETYPE " + env + " " + test::quote(QKV_BIN) +
                          " --version >" + test::quote(dir + "o.txt");
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  const std::string out = test::slurp(dir + "o.txt");
  const size_t at = out.find("GEMM: ");
  return at == std::string::npos ? out : out.substr(at, out.find('\n', at) - at);
}

// OpenBLAS picks its kernels when it is loaded; on a CPU newer than it knows it falls back to a
// generic SSE3 core ("Prescott", 2-4x slower than Eigen on an AVX-512 Xeon). qkv then names the
// newest core this CPU can run and runs itself again with OPENBLAS_CORETYPE set.
TEST(OpenBlasCore, AFallbackCoreIsReplacedWhenTheCpuHasAvx2) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
    GTEST_SKIP() << "this CPU has no AVX2 and FMA: OpenBLAS's choice stands";
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vl");
  const std::string want = avx512 ? "SkylakeX" : "Haswell";
  EXPECT_NE(gemm_line("QKV_TEST_OPENBLAS_CORE=Prescott").find(", core " + want), std::string::npos)
      << gemm_line("QKV_TEST_OPENBLAS_CORE=Prescott");
  // A core with AVX2 that OpenBLAS chose itself, and a core the user forced, both stand.
  EXPECT_NE(gemm_line("QKV_TEST_OPENBLAS_CORE=Zen").find("GEMM: OpenBLAS"), std::string::npos);
  EXPECT_NE(gemm_line("OPENBLAS_CORETYPE=Prescott").find(", core Prescott"), std::string::npos)
      << gemm_line("OPENBLAS_CORETYPE=Prescott");
}
#endif

}  // namespace
}  // namespace qkv
