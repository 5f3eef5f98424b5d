#!/usr/bin/env bash
# CI's reliability checks, run after README's test command (they reuse its build/):
#   1. the corruption corpus: 2000 seeded mutants of each kind of file qkv writes, through its
#      loaders (scripts/corrupt_corpus.py), with its table printed;
#   2. one clang build with AddressSanitizer + UndefinedBehaviorSanitizer (-O1) that runs a named
#      subset of the suite (core, autograd, checkpoint, batch_io, datasets tests) clean;
#   3. the same build's libFuzzer targets (fuzz/), each for a fixed time from a fixed seed over its
#      committed corpus.
# Installs clang and libFuzzer when missing (as root). FUZZ_SECONDS (45) sets each target's time.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc)"
fuzz_seconds="${FUZZ_SECONDS:-45}"

need=()
for p in clang libclang-rt-14-dev libomp-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

step() { echo; echo "== $1 ($(date +%T), ${SECONDS}s so far)"; }

step "corruption corpus"
cmake --build build -j"$jobs" --target qkv qkv_check_files >/dev/null
python3 scripts/corrupt_corpus.py --qkv build/qkv --checker build/fuzz/qkv_check_files -n 2000

step "ASan + UBSan build (clang, -O1)"
sanitized_tests=(tensor_test error_test h5_test
  attention_test elementwise_test embedding_test engine_test loss_test matmul_test norm_test
  reduce_test shape_test softmax_test
  checkpoint_test batch_io_test charlm_test numbers_test pronoun_test sequence_tasks_test
  thread_shards_test data_parallel_test
  task_test vocab_test winogrande_test)
fuzz_targets=(checkpoint batch config text)
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1" \
  -DQKV_SANITIZE=address,undefined -DQKV_FUZZ=ON -DQKV_NATIVE=OFF -DQKV_BUILD_BENCH=OFF \
  -DQKV_WERROR=OFF >/dev/null
cmake --build build-sanitize -j"$jobs" --target "${sanitized_tests[@]}" \
  "${fuzz_targets[@]/#/fuzz_}" >/dev/null

step "the sanitized suite subset"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
for t in "${sanitized_tests[@]}"; do
  build-sanitize/tests/"$t" --gtest_brief=1 >"build-sanitize/$t.log" 2>&1 ||
    { cat "build-sanitize/$t.log"; echo "sanitized $t failed"; exit 1; }
  echo "$t: $(grep -E '^\[  PASSED  \]' "build-sanitize/$t.log" || echo ok)"
done

step "fuzzing, ${fuzz_seconds}s per target, seed 1"
for t in "${fuzz_targets[@]}"; do
  work="$(mktemp -d)"
  cp -r "fuzz/corpus/$t/." "$work/"
  (cd "$work" && ASAN_OPTIONS=detect_leaks=0 "$OLDPWD/build-sanitize/fuzz/fuzz_$t" \
    -seed=1 -max_total_time="$fuzz_seconds" -timeout=20 -rss_limit_mb=4096 -max_len=65536 \
    -print_final_stats=1 "$work" >"$work/log.txt" 2>&1) ||
    { tail -60 "$work/log.txt"; echo "fuzz_$t found a crash: keep its input under fuzz/regressions/$t/"; exit 1; }
  echo "fuzz_$t: $(grep -E '^stat::number_of_executed_units' "$work/log.txt" | awk '{print $2}') runs," \
    "$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$work/log.txt" | tail -1), no findings"
  rm -rf "$work"
done
step "reliability checks passed"
