#!/usr/bin/env bash
# install-deps.sh — installs the Debian 12 packages mbx needs to build, test and run.
# Idempotent: when every package is already installed it touches nothing (no apt).
# Uses sudo only when not root. docs/dependencies.md says why each package is here.
set -euo pipefail

# Build tools, libraries (with headers), and what the scripts and tests call.
# etcd-server joins this list with the control plane (a later issue); not yet.
PACKAGES=(
  build-essential cmake pkg-config
  libuv1-dev liblmdb-dev lmdb-utils libzstd-dev
  libprotobuf-c-dev protobuf-c-compiler
  libssl-dev openssl
  liburcu-dev libcurl4-openssl-dev libjansson-dev
  libcmocka-dev
  jq procps iproute2 ca-certificates
)

say() { printf 'install-deps: %s\n' "$*" >&2; }

# A package counts as present only when dpkg says "install ok installed".
missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  say "all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  say "apt-get not found: this installer targets Debian 12; install by hand: ${missing[*]}"
  exit 1
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    say "not root and sudo is not installed: run as root, or install sudo; missing: ${missing[*]}"
    exit 1
  fi
  SUDO=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
say "installing: ${missing[*]}"
if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update; then
  say "apt-get update failed: check network access and /etc/apt/sources.list"
  exit 1
fi
if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PACKAGES[@]}"; then
  say "apt-get install failed (see above): fix apt, then re-run $0"
  exit 1
fi
say "done"
