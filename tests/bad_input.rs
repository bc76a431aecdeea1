//! The bad-input matrix: every subcommand given what a hostile or careless tester gives it.
//! Each case names its input, its exit code (2 = usage: the value is wrong; 1 = the value is
//! fine but the thing cannot be done) and a fragment of its message; after all of them,
//! nothing is left behind (namespaces, XDP programs, files) and no case hangs.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use xsend::lab::Side;

struct Case {
    args: Vec<String>,
    code: i32,
    says: &'static str,
}

/// Run `xsend ARGS` in side A; if it has not ended after `limit` (a hang, not a speed
/// check), kill it and fail.
fn run_bounded(lab: &xsend::lab::Lab, args: &[String], limit: Duration) -> std::process::Output {
    let mut c = lab
        .command(Side::A, xsend_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + limit;
    while c.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = c.kill();
            panic!("xsend {args:?} hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    c.wait_with_output().unwrap()
}

#[test]
fn bad_input_matrix() {
    need_root!();
    let _l = udp_lock();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = file(dir.path(), "f", 5000, 3);
    let f = f.to_str().unwrap().to_string();
    let fifo = dir.path().join("fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let fifo = fifo.to_str().unwrap().to_string();
    let d = dir.path().to_str().unwrap().to_string();
    let to = format!("{}:7100", lab.ip4_b);
    // Receivers run in side A too: they listen on its own address.
    let mine = format!("{}:7100", lab.ip4_a);
    let existing = format!("xe{}", std::process::id());
    let up = Command::new(xsend_bin())
        .args(["lab", "up", "--name", &existing])
        .output()
        .unwrap();
    assert!(up.status.success());
    let bench = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["bench", "--to", &to, "--dst-mac", &lab.mac_b]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let send = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["send", &f, "--to", &to]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let ndr = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["ndr", "--to", &to, "--rx-iface", &lab.if_a]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let recv = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["recv", "--listen", &mine]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let args = |a: &[&str]| -> Vec<String> { a.iter().map(|s| s.to_string()).collect() };
    let case = |args: Vec<String>, code: i32, says: &'static str| Case { args, code, says };
    let cases = vec![
        // send: files
        case(
            args(&["send", "/nonexistent/f", "--to", &to]),
            1,
            "file not found",
        ),
        case(args(&["send", &d, "--to", &to]), 1, "directory"),
        case(args(&["send", &fifo, "--to", &to]), 1, "fifo"),
        case(send(&["--pre", &fifo]), 1, "not a regular file"),
        case(send(&["--post", "/nonexistent/p"]), 1, "reading --post"),
        // send: option values
        case(send(&["--proto", "udp", "--chunk", "0"]), 2, "above 0"),
        case(
            send(&["--proto", "udp", "--chunk", "abc"]),
            2,
            "expected auto, none",
        ),
        case(send(&["--timeout", "-1"]), 2, "above 0"),
        case(send(&["--timeout", "nan"]), 2, "finite"),
        case(send(&["--timeout", "inf"]), 2, "finite"),
        case(send(&["--timeout", "1e30"]), 2, "at most"),
        case(send(&["--vlan", "5000"]), 2, "5000"),
        case(send(&["--vlan", "4095"]), 2, "4095"),
        case(send(&["--vlan", "0"]), 2, "0"),
        case(
            send(&["--vlan", "100", "--backend", "kernel"]),
            1,
            "cannot tag",
        ),
        case(
            send(&["--dst-mac", "zz:00:00:00:00:00"]),
            2,
            "not a MAC address",
        ),
        case(send(&["--queues", "4294967295"]), 2, "4294967295"),
        case(send(&["--queues", "0"]), 2, "0"),
        case(send(&["--ring-size", "1000"]), 2, "power of two"),
        case(
            args(&["send", &f, "--to", "nowhere"]),
            2,
            "invalid socket address",
        ),
        case(
            send(&["--iface", "nosuch0"]),
            1,
            "interface nosuch0 not found",
        ),
        case(
            send(&["--proto", "udp", "--chunk", "none"]),
            1,
            "larger than the maximum",
        ),
        case(send(&["--proto", "udp", "--flow", "70000"]), 2, "70000"),
        // recv
        case(recv(&["--timeout", "-1"]), 2, "above 0"),
        case(recv(&["--idle-timeout", "nan"]), 2, "finite"),
        case(recv(&["--idle-timeout", "1e300"]), 2, "at most"),
        case(
            args(&["recv", "--listen", "198.18.0.200:9"]),
            1,
            "listening on",
        ),
        case(recv(&["--timeout", "0.3"]), 1, "waiting for a connection"),
        case(
            recv(&["--proto", "udp", "--timeout", "0.3"]),
            1,
            "waiting for datagrams",
        ),
        // bench
        case(bench(&["--duration", "0"]), 2, "above 0"),
        case(bench(&["--duration", "-1"]), 2, "above 0"),
        case(bench(&["--duration", "1e30"]), 2, "at most"),
        case(bench(&["--duration", "nan"]), 2, "finite"),
        case(bench(&["--size", "abc"]), 2, "bad size"),
        case(bench(&["--size", "0:64"]), 2, "weight above 0"),
        case(bench(&["--pps", "abc"]), 2, "not a rate"),
        case(bench(&["--pps", "1e-300"]), 2, "from 0.001"),
        case(bench(&["--pps", "0"]), 2, "from 0.001"),
        case(bench(&["--bps", "-5"]), 2, "from 0.001"),
        case(bench(&["--src-ports", "10-5"]), 2, "upwards"),
        case(bench(&["--src-ports", "a-b"]), 2, "expected A-B"),
        case(
            bench(&["--dst-ips", "198.18.0.2-2001:db8::2"]),
            2,
            "one address family",
        ),
        case(bench(&["--count", "0"]), 2, "0"),
        case(bench(&["--burst", "0"]), 2, "0"),
        case(bench(&["--batch", "0"]), 2, "0"),
        case(bench(&["--batch", "257"]), 2, "257"),
        case(bench(&["--backend", "kernel"]), 2, "possible values"),
        // Live frames into a veth whose peer has no XDP program: refused with the reason.
        case(
            bench(&["--backend", "live", "--count", "5"]),
            1,
            "does not take redirected frames",
        ),
        // The receiving port: a missing interface or namespace, refused before sending.
        case(
            bench(&["--count", "5", "--rx-iface", "nosuch0"]),
            1,
            "nosuch0",
        ),
        case(
            bench(&["--count", "5", "--rx-netns", "nosuchns0", "--rx-iface", "x"]),
            1,
            "nosuchns0",
        ),
        case(bench(&["--rx-netns", "x"]), 2, "--rx-iface"),
        // ndr: sizes, ratios and the plot's path are checked before the search.
        case(ndr(&["--size", "63"]), 2, "at least 64"),
        case(ndr(&["--pdr", "100%"]), 2, "below 1"),
        case(ndr(&["--plot", "/nonexistent/d/p.png"]), 1, "no directory"),
        case(ndr(&["--plot", &format!("{d}/p.svg")]), 1, "PNG"),
        // replay (the file `f` is not a capture)
        case(
            args(&["replay", "/nonexistent/c.pcap", "--iface", &lab.if_a]),
            1,
            "not found",
        ),
        case(
            args(&["replay", &f, "--iface", &lab.if_a]),
            1,
            "not a pcap or pcapng file",
        ),
        case(args(&["replay", &fifo, "--iface", &lab.if_a]), 1, "fifo"),
        case(args(&["replay", &f]), 2, "--iface"),
        case(
            args(&["replay", &f, "--iface", &lab.if_a, "--multiplier", "0"]),
            2,
            "above 0",
        ),
        case(
            args(&["replay", &f, "--iface", &lab.if_a, "--pps", "abc"]),
            2,
            "not a rate",
        ),
        case(
            args(&[
                "replay",
                &f,
                "--iface",
                &lab.if_a,
                "--src-ip",
                "198.18.0.1=2001:db8::1",
            ]),
            2,
            "one family",
        ),
        case(
            args(&[
                "replay",
                &f,
                "--iface",
                &lab.if_a,
                "--topspeed",
                "--pps",
                "5",
            ]),
            2,
            "cannot be used",
        ),
        // lab
        case(args(&["lab", "up", "--name", "bad name"]), 2, "1-14 ASCII"),
        case(
            args(&["lab", "up", "--name", "waytoolongname123"]),
            2,
            "1-14 ASCII",
        ),
        case(args(&["lab", "up", "--mtu", "10"]), 2, "10"),
        case(
            args(&["lab", "up", "--name", &existing]),
            1,
            "already exists",
        ),
        case(args(&["lab", "down", "nosuchlab1"]), 1, "no lab named"),
        case(
            args(&["lab", "exec", "nosuchlab1", "a", "true"]),
            1,
            "no lab named",
        ),
        case(args(&["lab", "exec", &existing, "c", "true"]), 2, "c"),
    ];
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for c in &cases {
        let out = run_bounded(&lab, &c.args, Duration::from_secs(60));
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(c.code) || !err.contains(c.says) {
            failures.push(format!(
                "xsend {:?}: exit {:?} (want {}), stderr: {err}",
                c.args,
                out.status.code(),
                c.code
            ));
        }
        if err.contains("libbpf:") || err.contains("panicked") {
            failures.push(format!("xsend {:?}: raw output: {err}", c.args));
        }
    }
    // The lab that was asked to be made again is untouched.
    assert!(
        netns_exists(&format!("{existing}a")) && netns_exists(&format!("{existing}b")),
        "`lab up` of an existing lab removed it"
    );
    let st = Command::new(xsend_bin())
        .args(["lab", "down", &existing])
        .status()
        .unwrap();
    assert!(st.success());
    // Nothing left behind: no XDP program on the lab, no other namespace, no stray file.
    let links = Command::new("ip")
        .args(["-n", &lab.ns_a, "-o", "link", "show", "dev", &lab.if_a])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains(" xdp"));
    for n in ["bad name", "waytoolongname123", "nosuchlab1"] {
        assert!(!netns_exists(&format!("{n}a")) && !netns_exists(&format!("{n}b")));
    }
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    left.sort();
    assert_eq!(left, ["f", "fifo"]);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn slow_rates_end_at_their_duration_and_on_signals() {
    need_root!();
    let _l = udp_lock();
    let lab = lab();
    let to = format!("{}:7101", lab.ip4_b);
    for rate in [["--pps", "0.01"], ["--bps", "1"]] {
        let args: Vec<String> = [
            "bench",
            "--to",
            &to,
            "--dst-mac",
            &lab.mac_b,
            rate[0],
            rate[1],
            "--duration",
            "1",
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = run_bounded(&lab, &args, Duration::from_secs(30));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // SIGTERM in the middle of a long wait for the next slot: exit 130, promptly.
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut c = lab
            .command(Side::A, xsend_bin())
            .args([
                "bench",
                "--to",
                &to,
                "--dst-mac",
                &lab.mac_b,
                "--pps",
                "0.01",
                "--duration",
                "3600",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(c.id() as i32, sig) };
        let until = Instant::now() + Duration::from_secs(30);
        while c.try_wait().unwrap().is_none() {
            assert!(Instant::now() < until, "bench ignores signal {sig}");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(c.wait().unwrap().code(), Some(130));
    }
}

#[test]
fn unprivileged_af_xdp_says_why_without_libbpf_noise() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = file(dir.path(), "f", 100, 1);
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let to = format!("{}:7102", lab.ip4_b);
    let out = lab
        .command(Side::A, "setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--inh-caps=-all",
            xsend_bin(),
            "send",
            f.to_str().unwrap(),
            "--to",
            &to,
            "--proto",
            "udp",
            "--backend",
            "xdp",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("libbpf:"), "{err}");
    assert!(
        err.to_lowercase().contains("permi") || err.contains("CAP_"),
        "{err}"
    );
}
