//! `xsend recv` under attack: crafted xsend headers from the sending namespace must not size
//! its memory or its `--out` file, change what was verified, or make a cut stream look whole;
//! TCP receives end when the peer goes quiet.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use common::*;
use xsend::lab::{Lab, Side};
use xsend::wire::xsend as xh;

fn dgram(flow: u16, seq: u64, offset: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; xh::HEADER_LEN];
    xh::Repr {
        flags: 0,
        flow,
        seq,
        offset,
        timestamp_ns: 0,
    }
    .emit(&mut v);
    v.extend_from_slice(payload);
    v
}

fn end(flow: u16, count: u64, bytes: u64) -> Vec<u8> {
    let mut v = vec![0u8; xh::HEADER_LEN];
    xh::Repr {
        flags: xh::FLAG_END,
        flow,
        seq: count,
        offset: bytes,
        timestamp_ns: 0,
    }
    .emit(&mut v);
    v
}

/// Send `datagrams` from side A to `to`, in order, paced so the receiver keeps up.
fn send_all(lab: &Lab, to: SocketAddr, datagrams: &[Vec<u8>]) {
    lab.run_in(Side::A, || {
        let s = UdpSocket::bind(SocketAddr::from((lab.ip4_a, 0))).unwrap();
        for d in datagrams {
            s.send_to(d, to).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    })
    .unwrap();
}

/// The peak resident size of a running process, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn huge_sequence_numbers_and_offsets_cost_neither_memory_nor_disk() {
    need_root!();
    let _l = udp_lock();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let to = SocketAddr::from((lab.ip4_b, 7001));
    let a = to.to_string();
    let data = pattern(3000, 4);
    let recv = spawn_recv(
        &lab,
        &[
            "--listen",
            &a,
            "--proto",
            "udp",
            "--json",
            "--out",
            out.to_str().unwrap(),
            "--expect-sha256",
            &sha256(&data),
        ],
    );
    let pid = recv.0.as_ref().unwrap().id();
    send_all(
        &lab,
        to,
        &[
            dgram(1, 0, 0, &data[..1000]),
            dgram(1, 1 << 33, 1000, b"x"),
            dgram(1, 1 << 40, 1000, b"x"),
            dgram(1, u64::MAX, 1000, b"x"),
            dgram(1, 7, 1 << 40, b"offset far away"),
            dgram(1, 8, u64::MAX - 3, b"wraps"),
        ],
    );
    // Still running: whatever the headers claimed, it stayed small.
    let hwm = vm_hwm_kib(pid);
    assert!(hwm < 200 << 10, "peak RSS {hwm} KiB");
    send_all(
        &lab,
        to,
        &[
            dgram(1, 1, 1000, &data[1000..2000]),
            dgram(1, 2, 2000, &data[2000..]),
            end(1, 3, 3000),
        ],
    );
    let r = recv.wait_output();
    let v = json(&r.stdout);
    assert!(r.status.success(), "{v}");
    assert_eq!(v["complete"], true, "{v}");
    assert_eq!(v["ignored"]["out_of_range"], 5, "{v}");
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 3000, "--out size");
    assert_eq!(std::fs::read(&out).unwrap(), data);
}

#[test]
fn what_is_verified_is_what_is_written() {
    need_root!();
    let _l = udp_lock();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let to = SocketAddr::from((lab.ip4_b, 7002));
    let a = to.to_string();
    let good = pattern(1000, 5);
    let evil = pattern(1000, 6);
    let recv = spawn_recv(
        &lab,
        &[
            "--listen",
            &a,
            "--proto",
            "udp",
            "--json",
            "--out",
            out.to_str().unwrap(),
            "--expect-sha256",
            &sha256(&good),
        ],
    );
    send_all(
        &lab,
        to,
        &[
            dgram(1, 0, 0, &good),
            dgram(1, 1, 0, &evil),
            dgram(1, 2, 500, &evil),
            end(1, 1, 1000),
        ],
    );
    let r = recv.wait_output();
    let v = json(&r.stdout);
    assert!(r.status.success(), "{v}");
    assert_eq!(v["ignored"]["overlapping"], 2, "{v}");
    assert_eq!(std::fs::read(&out).unwrap(), good, "the bytes hashed");
}

#[test]
fn a_cut_stream_is_incomplete_and_fails() {
    need_root!();
    let _l = udp_lock();
    let lab = lab();
    let to = SocketAddr::from((lab.ip4_b, 7003));
    let a = to.to_string();
    let recv = spawn_recv(
        &lab,
        &[
            "--listen",
            &a,
            "--proto",
            "udp",
            "--json",
            "--idle-timeout",
            "0.5",
        ],
    );
    // The sender died after two datagrams: no end marker ever comes.
    send_all(&lab, to, &[dgram(1, 0, 0, b"abc"), dgram(1, 1, 3, b"def")]);
    let r = recv.wait_output();
    let v = json(&r.stdout);
    assert_eq!(r.status.code(), Some(3), "{v}");
    assert_eq!(v["complete"], false);
    assert!(v["sha256"].is_null());
    assert_eq!(v["end_marker"], false);
    // --count-only: counted, not failed.
    let recv = spawn_recv(
        &lab,
        &[
            "--listen",
            &a,
            "--proto",
            "udp",
            "--json",
            "--idle-timeout",
            "0.5",
            "--count-only",
        ],
    );
    send_all(&lab, to, &[dgram(1, 0, 0, b"abc")]);
    let r = recv.wait_output();
    assert!(r.status.success());
    assert_eq!(json(&r.stdout)["complete"], false);
}

#[test]
fn stray_datagrams_other_flows_and_spoofed_end_markers_are_ignored() {
    need_root!();
    let _l = udp_lock();
    let lab = lab();
    let to = SocketAddr::from((lab.ip4_b, 7004));
    let a = to.to_string();
    let recv = spawn_recv(
        &lab,
        &[
            "--listen",
            &a,
            "--proto",
            "udp",
            "--json",
            "--expect-sha256",
            &sha256(b"abcdef"),
        ],
    );
    send_all(
        &lab,
        to,
        &[
            b"not xsend".to_vec(),
            dgram(1, 0, 0, b"abc"),
            dgram(2, 1, 3, b"XYZ"),
            end(2, 2, 6),
            end(1, 1, 2),
            dgram(1, 1, 3, b"def"),
            end(1, 2, 6),
        ],
    );
    let r = recv.wait_output();
    let v = json(&r.stdout);
    assert!(r.status.success(), "{v}");
    assert_eq!(
        v["chunked"], true,
        "one stray datagram does not make it raw"
    );
    assert_eq!(v["malformed"], 1);
    assert_eq!(v["ignored"]["other_flow"], 2);
    assert_eq!(v["ignored"]["bad_end_marker"], 1);
    assert_eq!(v["duplicates"], 0, "flows apart");
    assert_eq!(
        (v["complete"].clone(), v["bytes"].clone()),
        (true.into(), 6.into())
    );
}

#[test]
fn tcp_receive_ends_when_the_peer_goes_quiet() {
    need_root!();
    let lab = lab();
    let to = SocketAddr::from((lab.ip4_b, 7005));
    let a = to.to_string();
    // Connects and sends nothing: --timeout covers the first byte too.
    let recv = spawn_recv(&lab, &["--listen", &a, "--json", "--timeout", "1"]);
    let c = lab
        .run_in(Side::A, || TcpStream::connect(to))
        .unwrap()
        .unwrap();
    let r = recv.wait_output();
    // (Its message, "waiting for the first byte ... timed out", is in the [recv] log.)
    assert_eq!(r.status.code(), Some(1));
    assert!(r.stdout.is_empty());
    drop(c);
    // Sends a little, then holds the connection open: --idle-timeout ends it, incomplete.
    let recv = spawn_recv(&lab, &["--listen", &a, "--json", "--idle-timeout", "1"]);
    let mut c = lab
        .run_in(Side::A, || TcpStream::connect(to))
        .unwrap()
        .unwrap();
    c.write_all(b"partial").unwrap();
    let r = recv.wait_output();
    let v = json(&r.stdout);
    assert_eq!(r.status.code(), Some(3), "{v}");
    assert_eq!(
        (v["complete"].clone(), v["bytes"].clone()),
        (false.into(), 7.into())
    );
    drop(c);
}
