//! Test helpers: root check, labs, files with known content, plain kernel receivers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use xsend::lab::{Lab, LabConfig, Side};

mod wire;
#[allow(unused_imports)]
pub use wire::chunked_frames_on_the_wire;

/// True if the test may run. Without root: in CI a panic (a test that cannot run must fail
/// there), elsewhere a loud notice and an early return.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    not_running(format!(
        "{test}: needs root (network namespaces, veth) and is NOT RUNNING; CI must run the tests as root"
    ))
}

/// A test that cannot run here: in CI a panic with `msg` (it must fail there), elsewhere a
/// loud notice; false.
pub fn not_running(msg: String) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n");
    false
}

/// True if this kernel runs XDP programs over live frames: the test goes on here.
///
/// Otherwise (some kernels refuse `BPF_F_TEST_XDP_LIVE_FRAMES` to root with EPERM, this
/// project's CI VM among them) the same test, `test` being its path in this binary, is run
/// in a VM with Debian's stock kernel (`scripts/livevm.sh`): its result there is this test's
/// (a failure there panics here), and false is returned, for the body has run. A VM that
/// cannot start is a test that cannot run: in CI a panic, elsewhere a loud notice. Inside
/// the VM a refusal is that too.
pub fn live_here_or_in_vm(test: &str) -> bool {
    let Err(e) = xsend::gen::Generator::live_frames_supported() else {
        return true;
    };
    if std::env::var_os("XSEND_LIVEVM").is_some() {
        return not_running(format!(
            "{test}: needs live frames and is NOT RUNNING, even in the VM: {e}"
        ));
    }
    eprintln!("{test}: this kernel refuses live frames ({e}); running the test in a VM");
    let exe = std::env::current_exe().expect("the test binary's path");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/livevm.sh");
    let out = std::process::Command::new(script)
        .args(["run", "--"])
        .arg(&exe)
        .args(["--exact", test, "--test-threads=1"])
        .stdin(Stdio::null())
        .output()
        .expect("running scripts/livevm.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("---- in the VM ----\n{stdout}{stderr}---- end of the VM ----");
    match out.status.code() {
        // The test ran in the VM, and exactly this one test passed.
        Some(0) if stdout.contains("test result: ok. 1 passed") => false,
        Some(0) => panic!("{test}: the VM ran no test by that name:\n{stdout}"),
        // livevm.sh could not prepare or start the VM (2), or the VM died (3).
        Some(2) | Some(3) | None => not_running(format!(
            "{test}: needs live frames, which this kernel refuses ({e}), and the VM to run it in did not start: {stderr}"
        )),
        Some(c) => panic!("{test}: failed in the VM (exit {c}); its output is above"),
    }
}

/// `return` from the test unless it can run here: root, and live frames (or else the test
/// runs in a VM, see [`live_here_or_in_vm`], and its result there is this test's).
#[macro_export]
macro_rules! need_live {
    () => {
        need_root!();
        fn __here() {}
        // "binary::path::to::test::__here" -> "path::to::test", the test's name in libtest.
        let here = std::any::type_name_of_val(&__here);
        let test = here
            .split_once("::")
            .map_or(here, |(_, rest)| rest)
            .trim_end_matches("::__here");
        if !common::live_here_or_in_vm(test) {
            return;
        }
    };
}

/// `return` from the test unless it can run.
#[macro_export]
macro_rules! need_root {
    () => {
        if !common::root_or_skip(module_path!()) {
            return;
        }
    };
}

pub fn lab() -> Lab {
    Lab::up(&LabConfig::default()).expect("lab up")
}

pub fn lab_with(cfg: LabConfig) -> Lab {
    Lab::up(&cfg).expect("lab up")
}

pub fn xsend_bin() -> &'static str {
    env!("CARGO_BIN_EXE_xsend")
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

pub fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

pub fn sha256_file(p: &Path) -> String {
    let mut f = std::fs::File::open(p).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

/// A file of `len` pattern bytes in `dir`.
pub fn file(dir: &Path, name: &str, len: usize, seed: u64) -> (PathBuf, Vec<u8>) {
    let p = dir.join(name);
    let data = pattern(len, seed);
    std::fs::write(&p, &data).unwrap();
    (p, data)
}

/// What a plain kernel TCP receiver got.
pub struct TcpGot {
    pub len: u64,
    pub sha256: String,
    /// The bytes, when small enough to keep (≤ 64 MiB).
    pub data: Option<Vec<u8>>,
}

/// A plain kernel TCP socket listening in side B; the thread accepts `conns` connections
/// in turn and reads each to EOF.
pub fn tcp_sink(lab: &Lab, addr: SocketAddr, conns: usize) -> std::thread::JoinHandle<Vec<TcpGot>> {
    let l = lab
        .run_in(Side::B, || TcpListener::bind(addr))
        .unwrap()
        .expect("bind in peer namespace");
    std::thread::spawn(move || {
        (0..conns)
            .map(|_| {
                let (mut s, _) = l.accept().unwrap();
                let mut h = Sha256::new();
                let mut keep = Some(Vec::new());
                let mut len = 0u64;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) => panic!("sink read: {e}"),
                    };
                    h.update(&buf[..n]);
                    len += n as u64;
                    if len > 64 << 20 {
                        keep = None;
                    }
                    if let Some(k) = keep.as_mut() {
                        k.extend_from_slice(&buf[..n]);
                    }
                }
                TcpGot {
                    len,
                    sha256: hex::encode(h.finalize()),
                    data: keep,
                }
            })
            .collect()
    })
}

/// A plain kernel UDP socket bound in side B.
pub fn udp_sink(lab: &Lab, addr: SocketAddr) -> UdpSocket {
    let s = lab
        .run_in(Side::B, || UdpSocket::bind(addr))
        .unwrap()
        .expect("bind in peer namespace");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Read datagrams until `n` arrived (5 s timeout each).
pub fn recv_datagrams(s: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    (0..n)
        .map(|i| {
            let k = s
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("datagram {i} of {n}: {e}"));
            buf[..k].to_vec()
        })
        .collect()
}

/// Kills the child on drop.
pub struct ChildGuard(pub Option<Child>);
impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
impl ChildGuard {
    pub fn wait_output(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

/// Start `xsend recv ARGS` in side B and wait until it listens.
pub fn spawn_recv(lab: &Lab, args: &[&str]) -> ChildGuard {
    let mut c = lab
        .command(Side::B, xsend_bin())
        .arg("recv")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = c.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("[recv] {line}");
            if line.contains("listening on") {
                let _ = tx.send(());
            }
        }
    });
    let g = ChildGuard(Some(c));
    rx.recv_timeout(Duration::from_secs(20))
        .expect("xsend recv did not start listening");
    g
}

/// Run the xsend CLI in side A; returns the output.
pub fn xsend_in_a(lab: &Lab, args: &[&str]) -> std::process::Output {
    lab.command(Side::A, xsend_bin())
        .args(args)
        .output()
        .unwrap()
}

/// Parse a JSON object printed on stdout.
pub fn json(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

/// `true` if the named network namespace exists.
pub fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Write to a file (helper for pre/post buffers).
pub fn write(p: &Path, b: &[u8]) {
    std::fs::File::create(p).unwrap().write_all(b).unwrap();
}

/// Serializes the tests of one binary that check every UDP datagram: a concurrent flood from
/// another test overflows the shared per-CPU veth backlog and drops datagrams (UDP is lossy),
/// which would make a lossless check flaky.
pub fn udp_lock() -> std::sync::MutexGuard<'static, ()> {
    static L: std::sync::Mutex<()> = std::sync::Mutex::new(());
    L.lock().unwrap_or_else(|e| e.into_inner())
}

/// A progress callback that runs `cmd` once, at the first progress report (that is, in the
/// middle of a send), asserting it succeeded; the flag tells whether it ran.
pub fn on_first_progress<S: AsRef<str>>(
    cmd: &[S],
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    impl Fn(xsend::Progress) + Send + Sync + 'static,
) {
    use std::sync::atomic::Ordering;
    let cmd: Vec<String> = cmd.iter().map(|s| s.as_ref().to_string()).collect();
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = ran.clone();
    (ran, move |_: xsend::Progress| {
        if !r.swap(true, Ordering::SeqCst) {
            let st = std::process::Command::new(&cmd[0]).args(&cmd[1..]).status();
            assert!(st.map(|s| s.success()).unwrap_or(false), "{cmd:?} failed");
        }
    })
}

/// Wait for a capture (`tcpdump -c N`) to finish after the sender is done; if it has not seen
/// its N frames within `grace` (it never will: frames were lost), stop it and let the caller's
/// count assertion report the loss instead of hanging.
pub fn wait_capture(dump: &mut std::process::Child, grace: std::time::Duration) {
    let until = std::time::Instant::now() + grace;
    while std::time::Instant::now() < until {
        if dump.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SIGINT: tcpdump flushes what it captured and exits.
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(dump.id() as i32, libc::SIGINT) };
    let _ = dump.wait();
}

/// Frames of a classic pcap file (as written by `tcpdump -w`).
pub fn pcap_frames(b: &[u8]) -> Vec<Vec<u8>> {
    assert!(b.len() >= 24, "no pcap header");
    let mut v = vec![];
    let mut i = 24;
    while i + 16 <= b.len() {
        let incl = u32::from_le_bytes(b[i + 8..i + 12].try_into().unwrap()) as usize;
        v.push(b[i + 16..i + 16 + incl].to_vec());
        i += 16 + incl;
    }
    v
}

/// A file of `len` bytes made of 1 MiB pattern blocks (each block differs).
pub fn big_file(dir: &Path, len: u64) -> PathBuf {
    let p = dir.join("big");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
    let blocks: Vec<Vec<u8>> = (0..7).map(|i| pattern(1 << 20, 100 + i)).collect();
    let mut left = len;
    let mut i = 0u64;
    while left > 0 {
        let mut b = blocks[(i % 7) as usize].clone();
        b[..8].copy_from_slice(&i.to_le_bytes());
        let n = left.min(b.len() as u64) as usize;
        f.write_all(&b[..n]).unwrap();
        left -= n as u64;
        i += 1;
    }
    f.flush().unwrap();
    p
}

/// Run `prog args` in `side`'s namespace; it must succeed.
pub fn ip_ok(lab: &Lab, side: Side, prog: &str, args: &[&str]) {
    let out = lab.command(side, prog).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Drop every N-th TCP data segment arriving at B: `obj` is one of the loss-injection
/// objects built from bpf/lossy.bpf.c (`lossy_data_1pct.bpf.o`, ...), attached by XDP to
/// B's veth (`xdp.frags`: it also runs at jumbo MTUs).
pub fn drop_data(lab: &Lab, obj: &str) {
    let o = format!("{}/{obj}", env!("OUT_DIR"));
    let dev = lab.if_b.clone();
    ip_ok(
        lab,
        Side::B,
        "ip",
        &[
            "link",
            "set",
            "dev",
            &dev,
            "xdpdrv",
            "obj",
            &o,
            "sec",
            "xdp.frags",
        ],
    );
}

/// Drop every 10th pure ACK leaving B (tc egress on B's veth).
pub fn drop_acks(lab: &Lab) {
    let o = format!("{}/lossy_acks_10pct.bpf.o", env!("OUT_DIR"));
    let dev = lab.if_b.clone();
    ip_ok(lab, Side::B, "tc", &["qdisc", "add", "dev", &dev, "clsact"]);
    ip_ok(
        lab,
        Side::B,
        "tc",
        &[
            "filter", "add", "dev", &dev, "egress", "bpf", "da", "obj", &o, "sec", "tc",
        ],
    );
}

/// True if an XDP program is attached to the side's interface.
pub fn xdp_attached(lab: &Lab, side: Side) -> bool {
    let out = lab
        .command(side, "ip")
        .args(["-j", "link", "show", "dev", lab.iface(side)])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("\"xdp\"")
}

/// A TCP sender (`xsend send PATH --to TO SEND_ARGS` in side A) stopped once the peer (a
/// plain kernel socket in side B) has 4 MiB, then, with the peer idle, killed with SIGKILL:
/// how the peer's connection ended ("closed", or the error kind, e.g. "ConnectionReset").
pub fn killed_sender_end(lab: &Lab, to: SocketAddr, path: &Path, send_args: &[&str]) -> String {
    let l = lab
        .run_in(Side::B, || TcpListener::bind(to))
        .unwrap()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0usize;
        let (mut told, mut idle) = (false, false);
        // Read everything that comes; once nothing has come for a second (the sender is
        // stopped), say so, then wait (a hang detector, not a timing check) for the end.
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        loop {
            match s.read(&mut buf) {
                Ok(0) => return "closed".to_string(),
                Ok(n) => {
                    got += n;
                    if got >= 4 << 20 && !told {
                        told = true;
                        tx.send("4 MiB").unwrap();
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && told && !idle => {
                    idle = true;
                    tx.send("idle").unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                }
                Err(e) => return format!("{:?}", e.kind()),
            }
        }
    });
    // (Killed by the guard too if an assertion fails first.)
    let mut sender = ChildGuard(Some(
        lab.command(Side::A, xsend_bin())
            .args(["send", path.to_str().unwrap(), "--to", &to.to_string()])
            .args(send_args)
            .spawn()
            .unwrap(),
    ));
    let pid = sender.0.as_ref().map_or(0, |c| c.id() as i32);
    assert_eq!(rx.recv_timeout(Duration::from_secs(60)), Ok("4 MiB"));
    // Stopped, the sender still holds its port: the peer's window updates reach it.
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    assert_eq!(rx.recv_timeout(Duration::from_secs(60)), Ok("idle"));
    // Now killed with an idle peer: nothing the peer sends would tell it.
    if let Some(mut c) = sender.0.take() {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    reader.join().unwrap()
}
