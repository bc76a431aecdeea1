//! The `xsend` command as a user runs it: send/recv with `--json`, lab up/exec/down, demo.

mod common;

use std::process::Command;

use common::*;
use xsend::lab::Side;

#[test]
fn send_and_recv_json_tcp_and_udp() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "f", 3_000_001, 31);
    let want = sha256(&data);
    let p = path.to_str().unwrap();

    let to = format!("{}:6000", lab.ip4_b);
    let recv = spawn_recv(&lab, &["--listen", &to, "--json", "--expect-sha256", &want]);
    let out = xsend_in_a(
        &lab,
        &["send", p, "--to", &to, "--backend", "kernel", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = json(&out.stdout);
    assert_eq!(s["backend"], "kernel");
    assert_eq!(s["mode"], "sendfile");
    assert_eq!(s["proto"], "tcp");
    assert_eq!(s["bytes"], 3_000_001);
    assert!(s["packets"].as_u64().unwrap() > 0);
    assert!(s["seconds"].as_f64().unwrap() > 0.0);
    assert!(s["gbps"].is_number() && s["pps"].is_number());
    let r = recv.wait_output();
    assert!(r.status.success());
    let r = json(&r.stdout);
    assert_eq!(
        (r["verified"].as_bool(), r["bytes"].as_u64()),
        (Some(true), Some(3_000_001))
    );

    // UDP on both backends (auto = AF_XDP here): auto chunks with header, fixed-size
    // chunks, raw chunks.
    let runs = ["kernel", "xdp", "auto"].into_iter().flat_map(|b| {
        [vec![], vec!["--chunk", "1000"], vec!["--raw"]]
            .into_iter()
            .map(move |e| (b, e))
    });
    for (i, (backend, extra)) in runs.enumerate() {
        let to = format!("{}:{}", lab.ip4_b, 6001 + i);
        let rargs = [
            "--listen",
            &to,
            "--proto",
            "udp",
            "--json",
            "--expect-sha256",
            &want,
            "--idle-timeout",
            "1",
        ];
        let recv = spawn_recv(&lab, &rargs);
        let mut args = vec![
            "send",
            p,
            "--to",
            &to,
            "--proto",
            "udp",
            "--json",
            "--backend",
            backend,
        ];
        args.extend(extra.iter().copied());
        let out = xsend_in_a(&lab, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = json(&out.stdout);
        assert_eq!(s["max_datagram"], 1472);
        if backend == "kernel" {
            assert_eq!(
                (s["backend"].as_str(), s["mode"].as_str()),
                (Some("kernel"), Some("sendmmsg"))
            );
            assert!(s["xdp_mode"].is_null());
        } else {
            // What was obtained, and why zero-copy was not, is reported.
            assert_eq!(s["backend"], "xdp", "{s}");
            assert_eq!(s["copy_mode"], "copy");
            assert!(["native", "generic"].contains(&s["xdp_mode"].as_str().unwrap()));
            assert_eq!(
                s["mode"],
                format!("{}/copy", s["xdp_mode"].as_str().unwrap())
            );
            assert_eq!(
                (s["queues"].as_u64(), s["ring_size"].as_u64()),
                (Some(1), Some(2048))
            );
            // This kernel (6.18) takes TX metadata: checksums are offloaded by default.
            assert_eq!(
                (s["frame_size"].as_u64(), s["checksum"].as_str()),
                (Some(2048), Some("offload"))
            );
            assert_eq!(s["dst_mac"], lab.mac_b.as_str());
            assert!(
                s["fallback_reasons"][0]
                    .as_str()
                    .unwrap()
                    .starts_with("zero-copy"),
                "{s}"
            );
        }
        let per = if extra.contains(&"1000") {
            1000
        } else if extra.contains(&"--raw") {
            1472
        } else {
            1440
        };
        assert_eq!(
            s["packets"].as_u64().unwrap(),
            3_000_001u64.div_ceil(per),
            "{extra:?}"
        );
        let r = recv.wait_output();
        let rj = json(&r.stdout);
        assert!(r.status.success(), "{backend} {extra:?}: {rj}");
        assert_eq!(rj["chunked"], !extra.contains(&"--raw"));
        assert_eq!(rj["datagrams"], s["packets"]);
    }
    // TCP with auto on veth (AF_XDP copy mode only): the kernel's TCP is faster there, so
    // auto takes it and says why; asked for, AF_XDP runs and reports the user-space sender's
    // counters.
    let to = format!("{}:6050", lab.ip4_b);
    let recv = spawn_recv(&lab, &["--listen", &to, "--json"]);
    let out = xsend_in_a(&lab, &["send", p, "--to", &to, "--json"]);
    assert!(out.status.success());
    let s = json(&out.stdout);
    assert_eq!(s["backend"], "kernel", "{s}");
    assert!(
        s["fallback_reasons"][0]
            .as_str()
            .unwrap()
            .contains("copy mode"),
        "{s}"
    );
    let r = recv.wait_output();
    assert!(r.status.success());
    assert_eq!(json(&r.stdout)["complete"], true);
    let to = format!("{}:6052", lab.ip4_b);
    let recv = spawn_recv(&lab, &["--listen", &to, "--json"]);
    let out = xsend_in_a(
        &lab,
        &["send", p, "--to", &to, "--backend", "xdp", "--json"],
    );
    assert!(out.status.success());
    let s = json(&out.stdout);
    assert_eq!(s["backend"], "xdp", "{s}");
    assert_eq!(s["proto"], "tcp");
    assert!(s["tcp"]["segments_out"].as_u64().unwrap() > 2000, "{s}");
    let r = recv.wait_output();
    assert!(r.status.success());
    assert_eq!(json(&r.stdout)["bytes"], 3_000_001);
    // Where AF_XDP cannot work (loopback), auto falls back to the kernel and says why.
    let lo: std::net::SocketAddr = "127.0.0.1:6051".parse().unwrap();
    let l = lab
        .run_in(Side::A, || std::net::TcpListener::bind(lo))
        .unwrap()
        .unwrap();
    let reader = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut v = vec![];
        std::io::Read::read_to_end(&mut c, &mut v).unwrap();
        v.len()
    });
    let out = xsend_in_a(&lab, &["send", p, "--to", "127.0.0.1:6051", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = json(&out.stdout);
    assert_eq!(s["backend"], "kernel");
    assert!(
        s["fallback_reasons"][0]
            .as_str()
            .unwrap()
            .contains("loopback"),
        "{s}"
    );
    assert_eq!(reader.join().unwrap(), 3_000_001);
}

#[test]
fn cli_errors_are_clear() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let to = format!("{}:6100", lab.ip4_b);
    // Missing file: exit 1, says so, before connecting anywhere.
    let out = xsend_in_a(&lab, &["send", "/nonexistent/file", "--to", &to]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("file not found: /nonexistent/file"));
    // A file as one datagram that does not fit.
    let (path, data) = file(dir.path(), "f", 2000, 2);
    let _sink = udp_sink(&lab, format!("{}:6101", lab.ip4_b).parse().unwrap());
    let out = xsend_in_a(
        &lab,
        &[
            "send",
            path.to_str().unwrap(),
            "--to",
            &format!("{}:6101", lab.ip4_b),
            "--proto",
            "udp",
            "--chunk",
            "none",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2000 bytes is larger than the maximum of 1472"),
        "{err}"
    );
    // A receiver whose expectation fails exits 3.
    let recv = spawn_recv(&lab, &["--listen", &to, "--expect-sha256", &"0".repeat(64)]);
    let out = xsend_in_a(&lab, &["send", path.to_str().unwrap(), "--to", &to]);
    assert!(out.status.success());
    let r = recv.wait_output();
    assert_eq!(r.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&r.stdout).contains(&sha256(&data)));
    // Unknown interface.
    let out = xsend_in_a(
        &lab,
        &[
            "send",
            path.to_str().unwrap(),
            "--to",
            &to,
            "--iface",
            "nosuch0",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interface nosuch0 not found"));
    // --help shows examples.
    let out = Command::new(xsend_bin())
        .args(["send", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Examples:"));
}

#[test]
fn lab_up_exec_down() {
    need_root!();
    let name = format!("xc{}", std::process::id());
    struct Down(String);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = xsend::lab::Lab::remove(&self.0);
        }
    }
    let _down = Down(name.clone());
    let out = Command::new(xsend_bin())
        .args(["lab", "up", "--name", &name, "--mtu", "9000", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out.stdout);
    assert_eq!(v["ns_b"], format!("{name}b"));
    assert_eq!(v["mtu"], 9000);
    assert!(netns_exists(&format!("{name}a")) && netns_exists(&format!("{name}b")));
    let out = Command::new(xsend_bin())
        .args([
            "lab",
            "exec",
            &name,
            "b",
            "ip",
            "-j",
            "addr",
            "show",
            "dev",
            &format!("{name}b"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("198.18.0.2") && s.contains("2001:db8::2") && s.contains("\"mtu\":9000"),
        "{s}"
    );
    let out = Command::new(xsend_bin())
        .args(["lab", "down", &name])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!netns_exists(&format!("{name}a")) && !netns_exists(&format!("{name}b")));
}

#[test]
fn lab_demo_verifies_every_transfer() {
    need_root!();
    let _wire = udp_lock();
    let out = Command::new(xsend_bin())
        .args(["lab", "demo", "--size-mib", "16", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = json(&out.stdout);
    let rows = rows.as_array().unwrap();
    // Each path on the kernel and on AF_XDP, side by side, then the DUT row.
    assert_eq!(rows.len(), 7);
    for (i, r) in rows[..6].iter().enumerate() {
        assert_eq!(r["backend"], ["kernel", "xdp"][i % 2], "{r}");
        assert_eq!(r["verified"], true, "{r}");
        assert_eq!(r["received_bytes"], 16u64 << 20);
    }
    // The NDR of the DUT lab's policed forwarder found (within the policer's bucket).
    let d = &rows[6];
    assert_eq!(d["path"], "ndr 64 B via dut", "{d}");
    assert_eq!(d["verified"], true, "{d}");
    let share = d["ndr"]["ndr_of_dut"].as_f64().unwrap();
    assert!(share > 0.5 && share <= 1.01, "{d}");
}

#[test]
fn lab_counters_and_netns_helpers() {
    need_root!();
    let lab = lab();
    let a = lab.stats(Side::A).unwrap();
    let to = std::net::SocketAddr::from((lab.ip4_b, 6200));
    lab.run_in(Side::A, || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        s.send_to(b"x", to).unwrap();
        s.send_to(b"y", to).unwrap();
    })
    .unwrap();
    assert!(lab.stats(Side::A).unwrap().tx_packets >= a.tx_packets + 2);
    let ns = lab.ns_a.clone();
    drop(lab);
    assert!(!netns_exists(&ns), "dropping a Lab removes its namespaces");
}

#[test]
fn no_permission_is_a_clear_error() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = file(dir.path(), "secret", 100, 1);
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "--inh-caps=-all",
                xsend_bin(),
            ])
            .args(args)
            .output()
            .unwrap()
    };
    // Reading a file the user may not read.
    let out = as_nobody(&["send", path.to_str().unwrap(), "--to", "198.18.0.2:9"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("permission denied reading"), "{err}");
    // Building a lab without CAP_SYS_ADMIN / CAP_NET_ADMIN, and nothing left behind.
    let name = format!("xp{}", std::process::id());
    let out = as_nobody(&["lab", "up", "--name", &name]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.to_lowercase().contains("permission") || err.contains("not permitted"),
        "{err}"
    );
    assert!(!netns_exists(&format!("{name}a")) && !netns_exists(&format!("{name}b")));
}
