#!/usr/bin/env bash
# The main job: installs what it needs, builds xsend (release), builds a veth lab, sends a
# 256 MiB file over TCP and chunked UDP (IPv4 and IPv6) to `xsend recv` in the peer namespace,
# verifies sha256 and prints a table. Extra arguments go to `xsend lab demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
xsend_setup
cargo build --release "${XSEND_FEATURES[@]}"
exec ./target/release/xsend lab demo "$@"
