#!/usr/bin/env bash
# Installs everything OpenStation needs to build, run and test, from Debian's packages only.
# Idempotent: packages already present are skipped, so a second run takes seconds.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git python3
  clang clang-format libclang-rt-14-dev
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libcli11-dev libspdlog-dev libfmt-dev libtomlplusplus-dev
  libssl-dev libsodium-dev libsqlite3-dev libpqxx-dev libcurl4-openssl-dev libarchive-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  postgresql nginx wrk
  iproute2 iputils-ping procps curl ca-certificates jq openssl
)

# npm fetches llama.cpp's sources (scripts/llama-server.sh, the llama.cpp e2e test) and the web
# UI's packages; a Node.js that already ships npm (NodeSource) is kept.
if ! command -v npm >/dev/null 2>&1; then packages+=(npm); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
