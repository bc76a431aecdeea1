//! Bad input and failures: clear typed errors, nothing lost or left behind, never a hang or a
//! crash.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use xsend::lab::{Lab, Side};
use xsend::{
    BackendChoice, Connection, ConnectionBuilder, Error, SendPacketsElement, SendPacketsOptions,
    TransmitFlags,
};

fn tcp(lab: &Lab, port: u16) -> ConnectionBuilder {
    Connection::tcp(SocketAddr::from((lab.ip4_b, port))).backend(BackendChoice::Kernel)
}

#[test]
fn validation_errors_come_before_connecting_anything() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = file(dir.path(), "f", 100, 1);
    let sink = tcp_sink(&lab, SocketAddr::from((lab.ip4_b, 9000)), 1);
    let conn = lab
        .run_in(Side::A, || tcp(&lab, 9000).connect())
        .unwrap()
        .unwrap();
    let missing = dir.path().join("missing");
    match conn.send_file(&missing) {
        Err(e @ Error::FileNotFound { .. }) => assert!(e.to_string().contains("missing"), "{e}"),
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        conn.send_file(dir.path()),
        Err(Error::NotAFile {
            kind: "directory",
            ..
        })
    ));
    let past = [SendPacketsElement::file_range(&path, 50, 51)];
    match conn.send_packets(&past, SendPacketsOptions::default()) {
        Err(e @ Error::RangePastEof { .. }) => {
            let s = e.to_string();
            assert!(
                s.contains("offset 50") && s.contains("count 51") && s.contains("size 100"),
                "{s}"
            );
        }
        r => panic!("{r:?}"),
    }
    // A valid element after an invalid one: nothing of the operation is sent.
    let mixed = [
        SendPacketsElement::buffer(&b"never"[..]),
        SendPacketsElement::file_range(&missing, 0, 0),
    ];
    assert!(conn
        .send_packets(&mixed, SendPacketsOptions::default())
        .is_err());
    conn.send_file_with(None, Some(b"ok"), None, TransmitFlags::DISCONNECT)
        .unwrap();
    assert_eq!(sink.join().unwrap()[0].data.as_deref().unwrap(), b"ok");
}

#[test]
fn unknown_interface_and_unreachable_peer() {
    need_root!();
    let lab = lab();
    let r = lab
        .run_in(Side::A, || tcp(&lab, 9001).iface("nosuchif0").connect())
        .unwrap();
    match r {
        Err(e @ Error::InterfaceNotFound { .. }) => assert!(e.to_string().contains("nosuchif0")),
        r => panic!("{r:?}"),
    }
    // On the lab subnet but nobody there: ARP fails, connect fails (no hang).
    let nobody = SocketAddr::from(([198, 18, 0, 99], 9001));
    let r = lab
        .run_in(Side::A, || {
            Connection::tcp(nobody)
                .backend(BackendChoice::Kernel)
                .connect_timeout(Duration::from_secs(5))
                .connect()
        })
        .unwrap();
    assert!(
        matches!(r, Err(Error::Connect { addr, .. }) if addr == nobody),
        "{r:?}"
    );
    // No listener: refused.
    let r = lab.run_in(Side::A, || tcp(&lab, 9002).connect()).unwrap();
    assert!(matches!(r, Err(Error::Connect { .. })), "{r:?}");
    // The same over AF_XDP (user-space TCP): RST to our SYN is a refused connect.
    let r = lab
        .run_in(Side::A, || {
            tcp(&lab, 9002).backend(BackendChoice::Xdp).connect()
        })
        .unwrap();
    assert!(
        matches!(&r, Err(Error::Connect { source, .. }) if source.kind() == std::io::ErrorKind::ConnectionRefused),
        "{r:?}"
    );
    // AF_XDP towards nobody: the next hop's MAC cannot be resolved, a clear error, no hang.
    let r = lab
        .run_in(Side::A, || {
            Connection::tcp(nobody)
                .backend(BackendChoice::Xdp)
                .connect_timeout(Duration::from_secs(5))
                .connect()
        })
        .unwrap();
    let e = r.expect_err("nobody there");
    assert!(e.to_string().contains("198.18.0.99"), "{e}");
}

#[test]
fn receiver_gone_mid_send_is_an_error_not_a_hang() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let l = lab
        .run_in(Side::B, || {
            TcpListener::bind(SocketAddr::from((lab.ip4_b, 9003)))
        })
        .unwrap()
        .unwrap();
    // The receiver reads 1 MiB and then closes with data unread (RST).
    let rx = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        s.read_exact(&mut buf).unwrap();
    });
    let conn = lab
        .run_in(Side::A, || tcp(&lab, 9003).connect())
        .unwrap()
        .unwrap();
    match conn.send_file(&path) {
        Err(e @ Error::PeerGone { .. }) => assert!(e.to_string().contains("went away")),
        r => panic!("{r:?}"),
    }
    rx.join().unwrap();
    // The broken connection refuses further use.
    assert!(matches!(conn.send_file(&path), Err(Error::Closed)));
}

#[test]
fn interface_gone_mid_send_is_an_error_not_a_hang() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    // TCP: a receiver that never reads, then the veth pair disappears.
    let l = lab
        .run_in(Side::B, || {
            TcpListener::bind(SocketAddr::from((lab.ip4_b, 9004)))
        })
        .unwrap()
        .unwrap();
    let (tx, accepted) = mpsc::channel();
    let holder = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        tx.send(()).unwrap();
        std::thread::sleep(Duration::from_secs(3));
        drop(s);
    });
    let conn = lab
        .run_in(Side::A, || {
            tcp(&lab, 9004)
                .user_timeout(Duration::from_secs(1))
                .connect()
        })
        .unwrap()
        .unwrap();
    let op = conn
        .begin_send_file(Some(&path), None, None, TransmitFlags::empty(), None)
        .unwrap();
    accepted.recv().unwrap();
    let del = std::process::Command::new("ip")
        .args(["-n", &lab.ns_a, "link", "del", &lab.if_a])
        .status()
        .unwrap();
    assert!(del.success());
    let r = conn.end_send_file(op);
    assert!(
        matches!(r, Err(Error::PeerGone { .. } | Error::InterfaceDown { .. })),
        "{r:?}"
    );
    holder.join().unwrap();

    // UDP bound to the (now gone) interface: typed error on connect.
    let r = lab
        .run_in(Side::A, || {
            Connection::udp(SocketAddr::from((lab.ip4_b, 9005)))
                .iface(lab.if_a.clone())
                .backend(BackendChoice::Kernel)
                .connect()
        })
        .unwrap();
    assert!(matches!(r, Err(Error::InterfaceNotFound { .. })), "{r:?}");
}

#[test]
fn udp_interface_gone_mid_send() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = file(dir.path(), "f", 32 << 20, 5);
    let addr = SocketAddr::from((lab.ip4_b, 9006));
    let _sink = udp_sink(&lab, addr);
    // After the first batch, the interface disappears.
    let (deleted, cb) = on_first_progress(&["ip", "-n", &lab.ns_a, "link", "del", &lab.if_a]);
    let conn = lab
        .run_in(Side::A, || {
            Connection::udp(addr)
                .iface(lab.if_a.clone())
                .backend(BackendChoice::Kernel)
                .on_progress(cb)
                .connect()
        })
        .unwrap()
        .unwrap();
    let opts = SendPacketsOptions {
        chunk_header: Some(1),
        flags: TransmitFlags::CALLER_THREAD,
        ..Default::default()
    };
    let r = conn.send_packets(&[SendPacketsElement::file(&path)], opts);
    assert!(deleted.load(Ordering::SeqCst));
    assert!(
        matches!(r, Err(Error::InterfaceDown { .. } | Error::PeerGone { .. })),
        "{r:?}"
    );
}

#[test]
fn file_truncated_while_sending_is_an_error_not_a_crash() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    for proto in ["tcp", "udp"] {
        let (path, _) = file(dir.path(), proto, 32 << 20, 9);
        let port = if proto == "tcp" { 9007 } else { 9008 };
        let addr = SocketAddr::from((lab.ip4_b, port));
        let sink_tcp = (proto == "tcp").then(|| tcp_sink(&lab, addr, 1));
        let _sink_udp = (proto == "udp").then(|| udp_sink(&lab, addr));
        // Another process truncates the file after the first progress report.
        let (_, truncate) = on_first_progress(&["truncate", "-s", "4096", path.to_str().unwrap()]);
        let conn = lab
            .run_in(Side::A, || {
                let b = if proto == "tcp" {
                    Connection::tcp(addr)
                } else {
                    Connection::udp(addr)
                };
                b.backend(BackendChoice::Kernel)
                    .on_progress(truncate)
                    .connect()
            })
            .unwrap()
            .unwrap();
        let opts = SendPacketsOptions {
            // TCP: 1 MiB per sendfile call, so progress comes before the end.
            send_size: if proto == "tcp" { 1 << 20 } else { 0 },
            chunk_header: (proto == "udp").then_some(1),
            flags: TransmitFlags::CALLER_THREAD | TransmitFlags::DISCONNECT,
            ..Default::default()
        };
        let r = conn.send_packets(&[SendPacketsElement::file(&path)], opts);
        match r {
            Err(e @ Error::FileTruncated { .. }) => {
                let s = e.to_string();
                assert!(s.contains("truncated") && s.contains("4096"), "{s}");
            }
            r => panic!("{proto}: {r:?}"),
        }
        drop(conn);
        if let Some(s) = sink_tcp {
            let got = s.join().unwrap().remove(0);
            assert!(got.len < 32 << 20);
        }
    }
}

#[test]
fn ctrl_c_during_send_exits_130_and_reports() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    // A receiver that accepts and never reads: the send cannot finish on its own.
    let l = lab
        .run_in(Side::B, || {
            TcpListener::bind(SocketAddr::from((lab.ip4_b, 9009)))
        })
        .unwrap()
        .unwrap();
    let (tx, accepted) = mpsc::channel();
    let holder = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        tx.send(()).unwrap();
        s
    });
    let child = lab
        .command(Side::A, xsend_bin())
        .args(["send"])
        .arg(&path)
        .args([
            "--to",
            &format!("{}:9009", lab.ip4_b),
            "--backend",
            "kernel",
            "--timeout",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = ChildGuard(Some(child));
    accepted.recv().unwrap();
    // `ip netns exec` execs xsend in place: the pid is xsend's.
    let pid = guard.0.as_ref().unwrap().id() as i32;
    // SAFETY: plain kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = guard.wait_output();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cancelled after"));
    drop(holder.join().unwrap());
}

#[test]
fn ctrl_c_during_lab_demo_removes_the_lab() {
    need_root!();
    let mut child = std::process::Command::new(xsend_bin())
        .args(["lab", "demo", "--size-mib", "1024"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let mut guard = ChildGuard(Some(child));
    // Wait for the "lab NAME: ..." line, then interrupt.
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\n") {
        assert_eq!(err.read(&mut b).unwrap(), 1, "demo exited early");
        line.push(b[0]);
    }
    let line = String::from_utf8(line).unwrap();
    let name = line
        .strip_prefix("lab ")
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .to_string();
    assert!(netns_exists(&format!("{name}a")));
    let pid = guard.0.as_ref().unwrap().id() as i32;
    // SAFETY: plain kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let st = guard.0.take().unwrap().wait().unwrap();
    let mut rest = String::new();
    let _ = err.read_to_string(&mut rest);
    assert_eq!(st.code(), Some(130), "{rest}");
    assert!(!netns_exists(&format!("{name}a")), "namespace leaked");
    assert!(!netns_exists(&format!("{name}b")), "namespace leaked");
}

#[test]
fn truncated_file_in_many_piece_datagrams_is_an_error_not_zeros() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    // 500 datagrams of 10 ranges each: more pieces than iovecs, so the kernel path gathers
    // them through the mapping in user space.
    let (path, _) = file(dir.path(), "f", 500_000, 3);
    let mut elements = Vec::new();
    for d in 0..500u64 {
        for r in 0..10u64 {
            elements.push(
                SendPacketsElement::file_range(&path, d * 1000 + r * 100, 100)
                    .end_of_packet(r == 9),
            );
        }
    }
    let addr = SocketAddr::from((lab.ip4_b, 9010));
    let _sink = udp_sink(&lab, addr);
    let (ran, cb) = on_first_progress(&["truncate", "-s", "4096", path.to_str().unwrap()]);
    let conn = lab
        .run_in(Side::A, || {
            Connection::udp(addr)
                .backend(BackendChoice::Kernel)
                .on_progress(cb)
                .connect()
        })
        .unwrap()
        .unwrap();
    let opts = SendPacketsOptions {
        send_size: xsend::SEND_SIZE_PACKETS,
        flags: TransmitFlags::CALLER_THREAD,
        ..Default::default()
    };
    let r = conn.send_packets(&elements, opts);
    assert!(ran.load(Ordering::SeqCst));
    assert!(matches!(r, Err(Error::FileTruncated { .. })), "{r:?}");
}
