#!/usr/bin/env bash
# Installs qkv from an existing build into a temporary prefix, then configures, builds and runs
# each example under examples/ as a separate CMake project against that installed package
# (find_package(qkv)), as a user of the library would.
#   scripts/examples.sh [BUILD_DIR]      (default: build; it must already be built)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
if [ ! -f "$build/CMakeCache.txt" ]; then
  echo "examples.sh: $build is not a CMake build folder; build qkv first (./scripts/test.sh)" >&2
  exit 2
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/qkv-examples.XXXXXX")
trap 'rm -rf "$work"' EXIT

cmake --build "$build" -j"$(nproc)" --target qkv >/dev/null
cmake --install "$build" --prefix "$work/prefix" >/dev/null
echo "installed qkv into $work/prefix"
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
for dir in examples/*/; do
  [ -f "$dir/CMakeLists.txt" ] || continue  # examples/data holds data files, not a program
  name=$(basename "$dir")
  echo "== examples/$name"
  cmake -S "$dir" -B "$work/$name" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release \
    "${launcher[@]}" >"$work/$name.log" 2>&1 || { cat "$work/$name.log"; exit 1; }
  cmake --build "$work/$name" -j"$(nproc)" >>"$work/$name.log" 2>&1 || { cat "$work/$name.log"; exit 1; }
  (cd "$work/$name" && "./$name")
done

# As a subproject (add_subdirectory), qkv must leave its parent alone: configure a parent
# project (no build) and let it check that qkv set no build type and no flags, looked for no
# GTest, and defined only its libraries.
echo "== qkv as a subproject (configure only)"
mkdir -p "$work/parent"
cat >"$work/parent/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.21)
project(parent LANGUAGES C CXX)
add_subdirectory($PWD qkv)
if(CMAKE_BUILD_TYPE)
  message(FATAL_ERROR "qkv set the parent's CMAKE_BUILD_TYPE to \${CMAKE_BUILD_TYPE}")
endif()
get_directory_property(options COMPILE_OPTIONS)
if(options)
  message(FATAL_ERROR "qkv added compile options to its parent: \${options}")
endif()
if(DEFINED CACHE{GTest_DIR} OR DEFINED CACHE{GTEST_INCLUDE_DIR})
  message(FATAL_ERROR "qkv looked for GTest as a subproject")
endif()
foreach(t qkv qkv_cli tensor_test attention_bench)
  if(TARGET \${t})
    message(FATAL_ERROR "qkv defined the target \${t} as a subproject")
  endif()
endforeach()
foreach(t qkv::qkv qkv::core qkv::autograd qkv::nn qkv::datasets qkv::train)
  if(NOT TARGET \${t})
    message(FATAL_ERROR "qkv did not define \${t}")
  endif()
endforeach()
get_target_property(core_options qkv_core INTERFACE_COMPILE_OPTIONS)
if(core_options MATCHES "march=native")
  message(FATAL_ERROR "qkv passes -march=native to its parent by default")
endif()
CMAKE
cmake -S "$work/parent" -B "$work/parent/build" >"$work/parent.log" 2>&1 || { cat "$work/parent.log"; exit 1; }
echo "qkv as a subproject: no build type, no flags, no GTest, only the libraries"
echo "examples: all passed"
