#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` (CPU) from the sources that the npm package node-llama-cpp
# ships as a git bundle, and caches the result outside the work tree, keyed by version.
#
#   scripts/llama-server.sh [build]   build unless a finished build is cached; print the binary's path
#   scripts/llama-server.sh path      print the cached binary's path (exit 1 when not built)
#   scripts/llama-server.sh dir       print the cache directory of this version (built or not)
#   scripts/llama-server.sh clean     delete the cached build of this version
#
# The cache directory, ${OPENSTATION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/openstation}/llama.cpp/
# node-llama-cpp-<version>-<recipe>/, holds after a build:
#   bin/llama-server             the server (linked statically against llama.cpp's own libraries)
#   models/ggml-vocab-qwen2.gguf the Qwen2 vocabulary that the tests' tiny model uses
#   server-README.md             the server's README of this version (the source of truth for flags)
#   COMMIT                       the llama.cpp commit the bundle holds
#   .complete                    written last: a build without it is unfinished and redone
#
# Environment:
#   OPENSTATION_LLAMA_NPM_VERSION  node-llama-cpp version to take the sources from (default below)
#   OPENSTATION_LLAMA_JOBS         parallel compile jobs (default: nproc)
#   OPENSTATION_LLAMA_CMAKE_ARGS   extra CMake arguments, e.g. "-DGGML_NATIVE=OFF"
#
# Exit status: 0 built or reused; 77 when the npm registry cannot be reached (tests skip on it);
# 1 on any other failure. Only the npm registry is contacted, through npm itself.
set -euo pipefail

VERSION=${OPENSTATION_LLAMA_NPM_VERSION:-3.21.1}
CACHE_ROOT=${OPENSTATION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/openstation}
# The build's recipe is part of the key: a cached build made with other flags is not reused.
# r2: no AMX (below).
RECIPE=r2
DIR=$CACHE_ROOT/llama.cpp/node-llama-cpp-$VERSION-$RECIPE
JOBS=${OPENSTATION_LLAMA_JOBS:-$(nproc)}

die() { echo "llama-server.sh: $*" >&2; exit 1; }
say() { echo "llama-server.sh: $*" >&2; }

is_complete() { [[ -f $DIR/.complete && -x $DIR/bin/llama-server ]]; }

build() {
  command -v npm >/dev/null || die "npm not found (Debian: apt-get install npm)"
  command -v git >/dev/null || die "git not found"
  command -v cmake >/dev/null || die "cmake not found"
  mkdir -p "$DIR"

  # One build at a time per version; a second caller waits and then reuses the result.
  exec 9>"$DIR/.lock"
  if ! flock -n 9; then
    say "another build of $VERSION is running; waiting for it"
    flock 9
  fi
  if is_complete; then
    return 0
  fi

  rm -rf -- "$DIR/work" "$DIR/bin" "$DIR/models" "$DIR/server-README.md" "$DIR/COMMIT"
  mkdir -p "$DIR/work"
  say "fetching node-llama-cpp@$VERSION from the npm registry"
  if ! (cd "$DIR/work" && npm pack "node-llama-cpp@$VERSION" --silent >npm-pack.log 2>&1); then
    cat "$DIR/work/npm-pack.log" >&2 || true
    say "npm could not fetch node-llama-cpp@$VERSION (is the npm registry reachable?)"
    exit 77
  fi
  tar -xzf "$DIR/work/node-llama-cpp-$VERSION.tgz" -C "$DIR/work" package/llama/gitRelease.bundle ||
    die "node-llama-cpp@$VERSION has no llama/gitRelease.bundle"
  git -c advice.detachedHead=false clone --quiet "$DIR/work/package/llama/gitRelease.bundle" "$DIR/work/src" ||
    die "cannot clone the llama.cpp bundle"

  local launcher=()
  if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  fi
  # Native x86 builds leave out Intel AMX: llama.cpp 80fb11a's AMX matrix multiply crashes
  # (SIGSEGV in ggml_backend_amx_mul_mat at the first decode) on an AMX machine here, which
  # -march=native would otherwise compile in. An explicit -mno-amx-* wins over -march=native.
  local isa=()
  if [[ $(uname -m) == x86_64 ]]; then
    isa=("-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
      "-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16")
  fi
  # shellcheck disable=SC2206  # word splitting of the extra arguments is intended
  local extra=(${OPENSTATION_LLAMA_CMAKE_ARGS:-})
  say "configuring llama.cpp $(git -C "$DIR/work/src" rev-parse --short HEAD) (CPU)"
  cmake -S "$DIR/work/src" -B "$DIR/work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DGGML_CUDA=OFF -DGGML_VULKAN=OFF \
    -DGGML_METAL=OFF -DGGML_OPENMP=OFF "${launcher[@]}" "${isa[@]}" "${extra[@]}" >"$DIR/work/configure.log" 2>&1 ||
    { tail -n 40 "$DIR/work/configure.log" >&2; die "cmake configure failed (log: $DIR/work/configure.log)"; }
  say "building llama-server with $JOBS jobs (about 10 minutes on 2 cores the first time)"
  cmake --build "$DIR/work/build" --target llama-server -j "$JOBS" >"$DIR/work/build.log" 2>&1 ||
    { tail -n 40 "$DIR/work/build.log" >&2; die "build failed (log: $DIR/work/build.log)"; }

  local server
  server=$(find "$DIR/work/build" -type f -name llama-server -perm -u+x | head -n 1)
  [[ -n $server ]] || die "the build produced no llama-server binary"
  mkdir -p "$DIR/bin" "$DIR/models"
  cp "$server" "$DIR/bin/llama-server"
  cp "$DIR/work/src/models/ggml-vocab-qwen2.gguf" "$DIR/models/" ||
    die "the bundle has no models/ggml-vocab-qwen2.gguf"
  local readme
  for readme in tools/server/README.md examples/server/README.md; do
    if [[ -f $DIR/work/src/$readme ]]; then
      cp "$DIR/work/src/$readme" "$DIR/server-README.md"
      break
    fi
  done
  git -C "$DIR/work/src" rev-parse HEAD >"$DIR/COMMIT"
  "$DIR/bin/llama-server" --version >/dev/null 2>&1 || die "the built llama-server does not run"
  rm -rf -- "$DIR/work"
  date -u +%Y-%m-%dT%H:%M:%SZ >"$DIR/.complete"
  say "built $DIR/bin/llama-server"
}

case ${1:-build} in
  build)
    # Not `is_complete || build`: errexit is off inside a function called on the left of ||.
    if ! is_complete; then build; fi
    echo "$DIR/bin/llama-server"
    ;;
  path)
    is_complete || exit 1
    echo "$DIR/bin/llama-server"
    ;;
  dir) echo "$DIR" ;;
  clean) rm -rf -- "$DIR" ;;
  -h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$1' (build, path, dir, clean)" ;;
esac
