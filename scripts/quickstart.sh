#!/usr/bin/env bash
# The main job: install what is missing, build, train the pronoun model and show its attention.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target qkv
build/qkv train --task pronoun --out runs/pronoun --force
build/qkv eval --checkpoint runs/pronoun/best.h5 --split test
build/qkv attend --checkpoint runs/pronoun/best.h5 \
  "The animal didn't cross the street because it was too tired"
build/qkv attend --checkpoint runs/pronoun/best.h5 --out-dir runs/pronoun/attend-wide \
  "The animal didn't cross the street because it was too wide"
