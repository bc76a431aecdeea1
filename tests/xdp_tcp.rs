//! TCP over AF_XDP: xsend's user-space sender against unmodified kernel receivers (plain
//! sockets, socat, `xsend recv`), with loss injected by BPF programs on the receiver's veth.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use common::*;
use xsend::lab::{Lab, Side};
use xsend::{BackendChoice, Connection, Error, SendStats, TransmitFlags};

fn b4(lab: &Lab, port: u16) -> SocketAddr {
    SocketAddr::from((lab.ip4_b, port))
}

fn connect_xdp(lab: &Lab, addr: SocketAddr) -> xsend::Result<Connection> {
    lab.run_in(Side::A, || {
        Connection::tcp(addr)
            .backend(BackendChoice::Xdp)
            .connect_timeout(Duration::from_secs(5))
            .user_timeout(Duration::from_secs(5))
            .connect()
    })
    .unwrap()
}

fn send_all(conn: &Connection, path: &Path) -> SendStats {
    conn.send_file_with(Some(path), None, None, TransmitFlags::DISCONNECT)
        .expect("send");
    conn.last_stats()
}

#[test]
fn sizes_arrive_byte_exact_at_a_kernel_socket_and_socat() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    for (i, len) in [0usize, 1, (1 << 20) + 7].into_iter().enumerate() {
        let (path, data) = file(dir.path(), &format!("f{i}"), len, i as u64 + 3);
        let sink = tcp_sink(&lab, b4(&lab, 7100), 1);
        let conn = connect_xdp(&lab, b4(&lab, 7100)).expect("connect");
        assert_eq!(conn.info().backend, "xdp");
        let st = send_all(&conn, &path);
        assert_eq!(st.bytes, len as u64);
        let got = sink.join().unwrap().remove(0);
        assert_eq!(got.data.unwrap(), data, "size {len}");
        // socat as the receiver (the issue's `socat -u TCP-LISTEN OPEN`).
        let out = dir.path().join(format!("socat{i}.out"));
        let mut socat = ChildGuard(Some(
            lab.command(Side::B, "socat")
                .args(["-u", "TCP-LISTEN:7101,bind=198.18.0.2,reuseaddr"])
                .arg(format!("OPEN:{},creat,trunc", out.display()))
                .spawn()
                .expect("socat"),
        ));
        let conn = (0..200)
            .find_map(|_| match connect_xdp(&lab, b4(&lab, 7101)) {
                Ok(c) => Some(c),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(25));
                    None
                }
            })
            .expect("socat never listened");
        send_all(&conn, &path);
        assert!(socat.0.take().unwrap().wait().unwrap().success());
        assert_eq!(std::fs::read(&out).unwrap(), data, "socat, size {len}");
    }
}

#[test]
fn one_gib_to_xsend_recv_and_ipv6() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let path = big_file(dir.path(), 1 << 30);
    let want = sha256_file(&path);
    let recv = spawn_recv(
        &lab,
        &[
            "--listen",
            "198.18.0.2:7102",
            "--expect-sha256",
            &want,
            "--json",
        ],
    );
    let conn = connect_xdp(&lab, b4(&lab, 7102)).expect("connect");
    let st = send_all(&conn, &path);
    assert_eq!(st.bytes, 1 << 30);
    let out = recv.wait_output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let j = json(&out.stdout);
    assert_eq!(j["bytes"], 1u64 << 30);
    eprintln!("1 GiB over AF_XDP TCP: {st:?}");

    // IPv6, with pre and post buffers.
    let (small, data) = file(dir.path(), "s", 300_001, 4);
    let addr: SocketAddr = "[2001:db8::2]:7103".parse().unwrap();
    let sink = tcp_sink(&lab, addr, 1);
    let conn = connect_xdp(&lab, addr).expect("connect v6");
    conn.send_file_with(
        Some(&small),
        Some(b"PRE"),
        Some(b"POST"),
        TransmitFlags::DISCONNECT,
    )
    .unwrap();
    let got = sink.join().unwrap().remove(0);
    assert_eq!(got.data.unwrap(), [&b"PRE"[..], &data, b"POST"].concat());
}

fn lossy_transfer(lab: &Lab, port: u16, len: u64) -> SendStats {
    let dir = tempfile::tempdir().unwrap();
    let path = big_file(dir.path(), len);
    let want = sha256_file(&path);
    let sink = tcp_sink(lab, b4(lab, port), 1);
    let conn = connect_xdp(lab, b4(lab, port)).expect("connect");
    let st = send_all(&conn, &path);
    let got = sink.join().unwrap().remove(0);
    assert_eq!(got.len, len);
    assert_eq!(got.sha256, want);
    st
}

#[test]
fn data_loss_1_and_5_percent_and_ack_loss_are_recovered() {
    need_root!();
    for (what, port) in [("1pct", 7110u16), ("5pct", 7111), ("acks", 7112)] {
        let lab = lab();
        match what {
            "acks" => drop_acks(&lab),
            p => drop_data(&lab, &format!("lossy_data_{p}.bpf.o")),
        }
        let st = lossy_transfer(&lab, port, 32 << 20);
        let t = st.tcp.expect("tcp stats");
        eprintln!("loss {what}: {t:?}");
        if what != "acks" {
            assert!(
                t.retransmits > 0,
                "{what}: drops must cause retransmissions"
            );
        }
    }
}

#[test]
fn slow_receiver_forces_zero_windows_and_completes() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "f", 3 << 20, 8);
    let l = lab
        .run_in(Side::B, || {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            s.set_reuse_address(true)?;
            // A small receive buffer fills at once.
            s.set_recv_buffer_size(16 << 10)?;
            s.bind(&b4(&lab, 7120).into())?;
            s.listen(1)?;
            Ok::<TcpListener, std::io::Error>(s.into())
        })
        .unwrap()
        .unwrap();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut v = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            // Read with pauses: the window closes between reads.
            std::thread::sleep(Duration::from_millis(20));
            match s.read(&mut buf).unwrap() {
                0 => break,
                n => v.extend_from_slice(&buf[..n]),
            }
        }
        v
    });
    let conn = connect_xdp(&lab, b4(&lab, 7120)).expect("connect");
    let st = send_all(&conn, &path);
    assert!(reader.join().unwrap() == data);
    eprintln!("slow receiver: {:?}", st.tcp);
}

#[test]
fn refused_and_vanished_receivers_fail_clearly_and_release_everything() {
    need_root!();
    let lab = lab();
    // Nobody listens: RST → refused, quickly.
    match connect_xdp(&lab, b4(&lab, 7130)) {
        Err(Error::Connect { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused)
        }
        r => panic!("{r:?}"),
    }
    assert!(!xdp_attached(&lab, Side::A), "XDP program left attached");

    // The receiver closes with unread data mid-transfer: the kernel resets, we stop.
    let dir = tempfile::tempdir().unwrap();
    let path = big_file(dir.path(), 256 << 20);
    let l = lab
        .run_in(Side::B, || TcpListener::bind(b4(&lab, 7131)))
        .unwrap()
        .unwrap();
    let quitter = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let _ = s.read(&mut buf);
        // Unread data in the buffer makes close() send RST.
    });
    let conn = connect_xdp(&lab, b4(&lab, 7131)).expect("connect");
    let r = conn.send_file_with(Some(&path), None, None, TransmitFlags::DISCONNECT);
    quitter.join().unwrap();
    match r {
        Err(Error::PeerGone { source, sent, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionReset);
            assert!(sent < 256 << 20);
        }
        r => panic!("{r:?}"),
    }
    drop(conn);
    assert!(!xdp_attached(&lab, Side::A), "XDP program left attached");

    // The receiver's host disappears mid-transfer: the veth pair goes (deleting the named
    // namespace alone would not do it while the sink's socket keeps the namespace alive).
    let _sink = tcp_sink(&lab, b4(&lab, 7132), 1);
    let (deleted, cb) = on_first_progress(&["ip", "-n", &lab.ns_a, "link", "del", &lab.if_a]);
    let conn = lab
        .run_in(Side::A, || {
            Connection::tcp(b4(&lab, 7132))
                .backend(BackendChoice::Xdp)
                .user_timeout(Duration::from_secs(3))
                .on_progress(cb)
                .connect()
        })
        .unwrap()
        .expect("connect");
    let r = conn.send_file_with(Some(&path), None, None, TransmitFlags::DISCONNECT);
    assert!(deleted.load(std::sync::atomic::Ordering::SeqCst));
    // The kick sees the interface gone, or nothing is acknowledged within the user timeout.
    assert!(
        matches!(r, Err(Error::InterfaceDown { .. } | Error::PeerGone { .. })),
        "{r:?}"
    );
    drop(conn);
}

#[test]
fn sequence_numbers_wrap_cli_json_reports_the_path() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "f", 5 << 20, 31);
    let sink = tcp_sink(&lab, b4(&lab, 7140), 1);
    // The initial sequence number 2^32 - 1000: the stream wraps after 1000 bytes.
    let out = lab
        .command(Side::A, xsend_bin())
        .env("XSEND_TCP_ISS", (u32::MAX - 1000).to_string())
        .args([
            "send",
            "--backend",
            "xdp",
            "--json",
            "--to",
            "198.18.0.2:7140",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json(&out.stdout);
    assert_eq!(j["backend"], "xdp", "{j}");
    assert!(j["tcp"]["segments_out"].as_u64().unwrap() > 3000, "{j}");
    let got = sink.join().unwrap().remove(0);
    assert_eq!(got.data.unwrap(), data);
}

#[test]
fn file_truncated_mid_send_is_an_error_and_the_peer_is_reset() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let path = big_file(dir.path(), 256 << 20);
    let sink = tcp_sink(&lab, b4(&lab, 7150), 1);
    let (_, truncate) = on_first_progress(&["truncate", "-s", "4096", path.to_str().unwrap()]);
    let conn = lab
        .run_in(Side::A, || {
            Connection::tcp(b4(&lab, 7150))
                .backend(BackendChoice::Xdp)
                .on_progress(truncate)
                .connect()
        })
        .unwrap()
        .expect("connect");
    let r = conn.send_file_with(Some(&path), None, None, TransmitFlags::DISCONNECT);
    match r {
        Err(e @ Error::FileTruncated { .. }) => {
            assert!(e.to_string().contains("4096"), "{e}")
        }
        r => panic!("{r:?}"),
    }
    drop(conn);
    // The sink sees the stream end early (RST or FIN), never the whole file.
    let got = sink.join();
    if let Ok(mut g) = got {
        assert!(g.remove(0).len < 256 << 20);
    }
    assert!(!xdp_attached(&lab, Side::A));
}

#[test]
fn stateless_tcp_generator_frames_consistent_valid_segments() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("cap.pcap");
    let mut dump = lab
        .command(Side::B, "tcpdump")
        .args([
            "-i", &lab.if_b, "-n", "-U", "-B", "16384", "-s", "2000", "-c", "3000", "-w",
        ])
        .arg(&cap)
        .args(["tcp", "and", "dst", "port", "7160"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tcpdump");
    let err = dump.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(err));
    assert!(lines.any(|l| l.map(|l| l.contains("listening on")).unwrap_or(false)));
    // Checksums offloaded through TX metadata, with TX checksumming off on the sending veth:
    // the kernel completes them from our requests (TCP: csum_offset 16) before the frames
    // leave, so the capture checks those requests.
    let st = lab
        .command(Side::A, "ethtool")
        .args(["-K", &lab.if_a, "tx", "off"])
        .status()
        .unwrap();
    assert!(st.success(), "ethtool -K tx off");
    let out = xsend_in_a(
        &lab,
        &[
            "bench",
            "--checksum",
            "offload",
            "--tcp-stateless",
            "--to",
            "198.18.0.2:7160",
            "--size",
            "1000",
            "--count",
            "3000",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json(&out.stdout);
    assert_eq!(j["proto"], "tcp-stateless");
    assert_eq!(j["checksum"], "offload");
    assert_eq!(j["packets"], 3000);
    wait_capture(&mut dump, std::time::Duration::from_secs(10));
    let frames = pcap_frames(&std::fs::read(&cap).unwrap());
    assert_eq!(frames.len(), 3000, "every segment arrived");
    let mut next_seq: Option<u32> = None;
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.len(), 1000);
        let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
            panic!("not IPv4")
        };
        let h = ip.header();
        assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
        let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else {
            panic!("not TCP")
        };
        assert!(t.ack() && t.psh() && !t.syn());
        let sum = t
            .to_header()
            .calc_checksum_ipv4_raw(
                h.source_addr().octets(),
                h.destination_addr().octets(),
                t.payload(),
            )
            .unwrap();
        // The kernel completes an offloaded checksum with skb_checksum_help, which writes a
        // zero result as 0xffff (CSUM_MANGLED_0): the same value in one's complement.
        let same = sum == t.checksum() || (sum == 0 && t.checksum() == 0xffff);
        assert!(
            same,
            "segment {i}: checksum {:#x}, computed {sum:#x}",
            t.checksum()
        );
        assert_eq!(&t.payload()[..8], &(i as u64).to_be_bytes());
        if let Some(n) = next_seq {
            assert_eq!(t.sequence_number(), n, "segment {i}");
        }
        next_seq = Some(t.sequence_number().wrapping_add(t.payload().len() as u32));
    }
}

/// A sender killed with SIGKILL cannot close its connection; its watchdog makes the peer
/// reset it, rather than leaving it ESTABLISHED until the peer next sends (an idle receiver
/// with an open window never does).
#[test]
fn killed_sender_resets_the_peer() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = file(dir.path(), "f", 256 << 20, 8);
    let end = killed_sender_end(&lab, b4(&lab, 5480), &path, &["--backend", "xdp"]);
    assert_eq!(
        end, "ConnectionReset",
        "the peer learned of the killed sender"
    );
}
