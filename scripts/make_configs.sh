#!/bin/sh
# Writes configs/NAME.json for every task: `qkv train --print-config` with the task's defaults
# (the data-file tasks on their example file in examples/data/). Run from the repository root
# after building: scripts/make_configs.sh [path/to/qkv]
set -eu
qkv=${1:-build/qkv}
mkdir -p configs
for task in $("$qkv" tasks | cut -d' ' -f1); do
  case $task in
    classify) data="--data examples/data/sentiment.jsonl" ;;
    seq2seq) data="--data examples/data/dates.jsonl" ;;
    lm) data="--data examples/data/tiny.txt" ;;
    *) data="" ;;
  esac
  # shellcheck disable=SC2086  # $data is two words or none
  "$qkv" train --task "$task" $data --print-config >"configs/$task.json"
  echo "configs/$task.json"
done
