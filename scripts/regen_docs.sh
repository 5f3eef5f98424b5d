#!/usr/bin/env bash
# Regenerates every command output shown in README.md and docs/*.md from real runs: trains the
# runs those outputs come from (the tasks' default configs, seed 0) into runs/, then rewrites
# each block under an `<!-- output … -->` marker with its command's real output
# (scripts/doc_outputs.py), and copies README's pictures (docs/img/) from those runs. Review the
# diff (git diff) and commit it with the code that changed it.
#   scripts/regen_docs.sh            train pronoun, numbers, charlm and the rest afresh (about 3 minutes on
#                                    2 cores), then rewrite
#   scripts/regen_docs.sh --reuse    keep runs/ that already exist
# The outputs that need no training are also checked by CTest (docs_outputs).
set -euo pipefail
cd "$(dirname "$0")/.."
qkv=build/qkv
reuse=0
[ "${1:-}" = "--reuse" ] && reuse=1
if [ ! -x "$qkv" ]; then
  echo "regen_docs.sh: $qkv is missing; build it first (cmake --build build --target qkv)" >&2
  exit 2
fi

# train TASK [RUN [FLAGS…]]: runs/RUN/ (default: TASK) and its log runs/RUN.log (one line per
# evaluation).
train() {
  local task=$1 run=${2:-$1}
  shift; [ $# -gt 0 ] && shift
  if [ "$reuse" = 1 ] && [ -f "runs/$run/best.h5" ] && [ -f "runs/$run.log" ]; then return; fi
  mkdir -p runs
  echo "training $run …"
  "$qkv" train --task "$task" --out "runs/$run" --force --progress lines "$@" 2>&1 |
    tee "runs/$run.log" | tail -n 2
}
train pronoun
train numbers
train charlm
train classify sentiment --data examples/data/sentiment.jsonl
train pronoun pronoun-watch --eval-every 50   # README's pictures of attention learning

/usr/bin/python3 scripts/doc_outputs.py write --qkv "$qkv"

# README's pictures, from the same runs: the pronoun run evaluated every 50 steps, and the numbers
# model's cross-attention head that README's attend output shows.
cp runs/pronoun-watch/probe_attention.svg docs/img/pronoun-attention-over-training.svg
cp runs/pronoun-watch/referent_attention.svg docs/img/pronoun-referent-attention.svg
cp runs/pronoun-watch/loss.svg docs/img/pronoun-loss.svg
head=$(grep -o -m1 'dec\.blocks\.1\.xattn head [0-9]*' README.md | grep -o '[0-9]*$')
cp "runs/numbers/attend/dec.blocks.1.xattn.h$head.svg" docs/img/numbers-cross-attention.svg
echo "pictures: docs/img/ updated from runs/pronoun-watch and runs/numbers (head $head)"
