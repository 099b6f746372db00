#!/usr/bin/env bash
# Install the system tools reprover's tests use: compilers for real fixtures (gcc, mingw-w64,
# clang/lld), signing tools (osslsigncode, openssl, gnupg, ssh-keygen), git, network isolation
# (unshare from util-linux, bubblewrap), and whatever .ci/apt-packages.txt adds (chromium for the
# HTML report tests). Debian/Ubuntu; run as root.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
extra=()
if [ -f "$here/.ci/apt-packages.txt" ]; then
  mapfile -t extra < <(grep -v '^\s*#' "$here/.ci/apt-packages.txt" | grep -v '^\s*$')
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  ca-certificates git make gcc libc6-dev gcc-mingw-w64-x86-64 clang lld llvm \
  osslsigncode openssl gnupg openssh-client util-linux bubblewrap python3-venv \
  "${extra[@]}" >/dev/null
