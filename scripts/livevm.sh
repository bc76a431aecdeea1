#!/usr/bin/env bash
# Runs one command as root inside a throw-away VM whose kernel is Debian 12's stock one, for the
# tests of what this machine's kernel refuses: some kernels (this project's CI VM among them)
# answer BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES with EPERM, so the live-frames device
# cannot run on them. The guest sees the host's whole file system read-only (9p), with its
# own tmpfs /tmp and /run, its own network stack (the tests build their namespaces and veths
# inside it; the VM has no network device at all, so nothing it sends can leave it), and the
# Debian kernel's modules.
#
#   scripts/livevm.sh prepare            fetch the kernel package, build the initramfs (cached)
#   scripts/livevm.sh run -- CMD ARGS    run CMD in a VM; its output on stdout, its exit code
#
# The cache lives in $XSEND_LIVEVM_DIR (default: target/livevm). Needs qemu-system-x86,
# busybox-static and kmod (scripts/setup.sh installs them). Uses KVM when the machine offers it,
# software emulation otherwise.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${XSEND_LIVEVM_DIR:-$here/target/livevm}
mem=${XSEND_LIVEVM_MEM:-3072}
timeout_s=${XSEND_LIVEVM_TIMEOUT:-900}

die() { echo "livevm: $*" >&2; exit 2; }

prepare() {
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  flock 9
  if [ -s "$cache/ready" ]; then return 0; fi
  command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (package qemu-system-x86)"
  [ -x /bin/busybox ] || die "/bin/busybox missing (package busybox-static)"
  command -v depmod >/dev/null || die "depmod missing (package kmod)"
  # The kernel of bookworm-backports (6.12: new enough to report XDP features), fetched with
  # apt lists of our own so that the machine's sources and packages stay as they are.
  rm -rf "$cache/dl" "$cache/root" "$cache/ird" "$cache/apt"
  mkdir -p "$cache/dl" "$cache/apt/lists/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main" >"$cache/apt/sources.list"
  local apt_o=(-o "Dir::Etc::SourceList=$cache/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$cache/apt/lists" -o APT::Get::List-Cleanup=0)
  apt-get "${apt_o[@]}" update >"$cache/apt/update.log" 2>&1 || die "apt-get update (bookworm-backports) failed: $(tail -2 "$cache/apt/update.log")"
  local pkg
  pkg=$(apt-cache "${apt_o[@]}" depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [ -n "$pkg" ] || die "cannot resolve bookworm-backports' linux-image-amd64 (apt-cache depends)"
  (cd "$cache/dl" && apt-get "${apt_o[@]}" download "$pkg" >/dev/null 2>&1) || die "apt-get download $pkg failed"
  dpkg-deb -x "$cache"/dl/*.deb "$cache/root"
  local kver
  kver=$(ls "$cache/root/lib/modules")
  depmod -b "$cache/root" "$kver"
  # The initramfs: busybox, the modules that mount the host over virtio-9p, and an init that
  # mounts it and hands over to the job's script.
  local ird=$cache/ird m
  mkdir -p "$ird"/{bin,mod,proc,sys,dev,newroot}
  cp /bin/busybox "$ird/bin/"
  # What mounting the host needs, in load order, as modprobe resolves it (virtio itself may be
  # built in: then it is not listed).
  : >"$ird/mod/order"
  for m in $(modprobe -d "$cache/root" -S "$kver" --show-depends -a 9pnet_virtio 9p | awk '$1 == "insmod" {print $2}' | awk '!seen[$0]++'); do
    local name
    name=$(basename "$m"); name=${name%.xz}
    case "$m" in *.xz) xz -dc "$m" >"$ird/mod/$name" ;; *) cp "$m" "$ird/mod/$name" ;; esac
    echo "$name" >>"$ird/mod/order"
  done
  [ -s "$ird/mod/order" ] || die "the kernel package has no 9p modules"
  cat >"$ird/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /mod/order); do
  insmod /mod/$m || echo "livevm-guest: insmod $m failed"
done
o=trans=virtio,version=9p2000.L,msize=262144
if ! mount -t 9p -o $o,ro,cache=loose host /newroot || ! mount -t 9p -o $o job /newroot/run; then
  echo "livevm-guest: cannot mount the host"; poweroff -f
fi
for d in proc sys dev; do mount --move /$d /newroot/$d; done
exec switch_root /newroot /bin/sh /run/guest.sh
EOF
  chmod +x "$ird/init"
  (cd "$ird" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$cache/initrd.gz")
  echo "$kver" >"$cache/ready"
}

run() {
  [ "${1:-}" = "--" ] && shift
  [ $# -gt 0 ] || die "run: no command"
  prepare
  # One VM at a time (tests run in parallel; two emulated VMs on two cores only slow each
  # other down).
  exec 8>"$cache/.run.lock"
  flock 8
  local kver job
  kver=$(cat "$cache/ready")
  job=$(mktemp -d /tmp/xsend-livevm.XXXXXX)
  trap 'rm -rf "$job"' EXIT
  {
    echo 'set -u'
    # The job directory is mounted at /run (the host's /run is not the guest's business); it is
    # read-write, so the command's output and exit code come back through it. Everything else
    # a test writes goes to the guest's own tmpfs.
    echo 'mkdir -p /run/netns /run/tmp'
    echo 'mount -t tmpfs tmpfs /tmp; mount -t tmpfs tmpfs /var/tmp; mkdir -p /dev/shm /dev/pts'
    echo 'mount -t tmpfs tmpfs /dev/shm; mount -t devpts devpts /dev/pts'
    echo 'mount -t bpf bpf /sys/fs/bpf; mount -t debugfs none /sys/kernel/debug 2>/dev/null'
    echo 'mount -t tracefs none /sys/kernel/tracing 2>/dev/null'
    echo 'mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null'
    # The guest kernel's modules: the kernel's module requests go to a modprobe rooted in the
    # unpacked package (the host's /lib/modules, if any, are another kernel's).
    printf '#!/bin/sh\nexec /sbin/modprobe -d %q "$@"\n' "$cache/root" >"$job/modprobe"
    chmod +x "$job/modprobe"
    echo 'echo /run/modprobe >/proc/sys/kernel/modprobe'
    echo 'ip link set lo up; hostname xsend-livevm; ulimit -l unlimited'
    echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin XSEND_LIVEVM=1'
    [ -n "${CI:-}" ] && echo "export CI='$CI'"
    [ -n "${RUST_BACKTRACE:-}" ] && echo "export RUST_BACKTRACE='$RUST_BACKTRACE'"
    echo "cd '$PWD'"
    printf 'echo "livevm: kernel $(uname -r)"; '
    printf '%q ' "$@"
    echo ' >/run/out 2>&1; echo $? >/run/rc'
    echo 'sync; poweroff -f'
  } >"$job/guest.sh"
  # Software emulation runs both vCPUs in one thread: with one thread per vCPU, QEMU lets a
  # vCPU go on running code the other has just patched (the kernel's text_poke_bp, as when
  # the BPF dispatcher is updated at every BPF_PROG_RUN with repeat > 1), and the guest dies
  # of a stray int3 ("Oops: int3" in bpf_dispatcher_xdp_func); real CPUs do not do that.
  local accel=tcg,thread=single
  if [ -w /dev/kvm ] && grep -qE 'vmx|svm' /proc/cpuinfo; then accel=kvm; fi
  local rc=0
  timeout "$timeout_s" qemu-system-x86_64 -accel "$accel" -cpu max -m "$mem" -smp 2 \
    -nographic -no-reboot -nic none -monitor none -serial "file:$job/console" \
    -kernel "$cache/root/boot/vmlinuz-$kver" -initrd "$cache/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1 mitigations=off" \
    -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$job,mount_tag=job,security_model=none" </dev/null >/dev/null 2>"$job/qemu.err" || rc=$?
  [ -f "$job/out" ] && cat "$job/out"
  if [ ! -f "$job/rc" ]; then
    echo "livevm: the VM ended without the command's exit code (qemu exit $rc); console:" >&2
    tail -n 40 "$job/console" "$job/qemu.err" >&2 || true
    cp "$job/console" "$cache/failed-console.$(date +%s)" 2>/dev/null || true
    exit 3
  fi
  exit "$(cat "$job/rc")"
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) die "usage: $0 prepare | run -- CMD [ARGS]" ;;
esac
