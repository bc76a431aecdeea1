#!/usr/bin/env bash
# Installs what xsend needs on a fresh Debian 12 machine (as root). Idempotent: only missing
# packages are installed. Sourced by run.sh, test.sh and bench.sh.
set -euo pipefail

XSEND_APT_PACKAGES=(
  # build: libbpf (-sys crate) and the BPF program
  clang llvm libelf-dev zlib1g-dev libpcap-dev pkg-config m4 make gcc libc6-dev
  # lab and tests
  iproute2 socat ethtool tcpdump procps coreutils nftables
  # AF_XDP tools (xdp-loader, the xdp_drop sink)
  xdp-tools
  # the DPDK backend (feature `dpdk`): DPDK 22.11, its PMD plugins, dpdk-testpmd (benchmarks)
  libdpdk-dev dpdk dpdk-dev
  # the VM of scripts/livevm.sh, for the live-frames tests on kernels that refuse live frames
  qemu-system-x86 busybox-static kmod xz-utils util-linux
  # the PNG plots of `xsend ndr --plot` (their text)
  fonts-dejavu-core
)

xsend_apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "setup: missing packages ${missing[*]}; run as root to install them" >&2
      return 1
    fi
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Cargo features every script builds with (one build serves run, test and bench).
XSEND_FEATURES=(--features dpdk)

xsend_setup() {
  xsend_apt_install "${XSEND_APT_PACKAGES[@]}"
  if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: no Rust toolchain (cargo) found; install one with rustup (Rust >= 1.80)" >&2
    return 1
  fi
}
