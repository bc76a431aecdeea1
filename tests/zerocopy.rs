//! Zero-copy file payloads over AF_XDP: a tmpfs (or memfd) file's pages mapped into the UMEM
//! and pointed at by the frames. Byte-exact at MTU 1500 and 9000 (frames checked on the wire,
//! `xsend recv`), a memfd handed over as an open file, the report (`payload`), the refusal
//! for a file with writeback, and truncation mid-send ending in `FileTruncated`.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::FromRawFd;
use std::sync::Arc;

use common::*;
use xsend::lab::{LabConfig, Side};
use xsend::{
    BackendChoice, ChecksumChoice, Connection, ConnectionBuilder, Error, PayloadChoice,
    SendPacketsElement, SendPacketsOptions, SendStatus, TransmitFlags,
};

fn zc(addr: SocketAddr) -> ConnectionBuilder {
    Connection::udp(addr)
        .backend(BackendChoice::Xdp)
        .payload(PayloadChoice::ZeroCopy)
}

fn chunked_elem(conn: &Connection, e: SendPacketsElement, flow: u16) -> xsend::Result<u64> {
    let opts = SendPacketsOptions {
        chunk_header: Some(flow),
        flags: TransmitFlags::CALLER_THREAD,
        ..Default::default()
    };
    match conn.send_packets(&[e], opts)? {
        SendStatus::Completed(n) => Ok(n),
        SendStatus::Pending(op) => conn.end_send_packets(op),
    }
}

/// A file of `data` on tmpfs (`/dev/shm`), removed when dropped.
fn shm_file(data: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .prefix("xsend-zc-test")
        .tempfile_in("/dev/shm")
        .expect("a file in /dev/shm");
    f.write_all(data).unwrap();
    f.flush().unwrap();
    f
}

#[test]
fn tmpfs_file_frames_on_the_wire_at_mtu_1500_and_9000() {
    need_root!();
    let _wire = udp_lock();
    let data = pattern(3 << 20, 21);
    let f = shm_file(&data);
    for mtu in [1500u32, 9000] {
        let lab = lab_with(LabConfig {
            mtu,
            ..Default::default()
        });
        // The kernel completes the offloaded checksums before the frames leave (see
        // tests/xdp.rs), so the capture shows whether they are right.
        ip_ok(&lab, Side::A, "ethtool", &["-K", &lab.if_a, "tx", "off"]);
        for (i, v6) in [false, true].into_iter().enumerate() {
            let port = 12_000 + i as u16;
            let dst = if v6 {
                SocketAddr::from((lab.ip6_b.unwrap(), port))
            } else {
                SocketAddr::from((lab.ip4_b, port))
            };
            let (frames, payload) = chunked_frames_on_the_wire(&lab, dst, mtu as usize, || {
                let _sink = udp_sink(&lab, dst);
                let conn = lab
                    .run_in(Side::A, || {
                        zc(dst).checksum(ChecksumChoice::Offload).connect()
                    })
                    .unwrap()
                    .unwrap();
                let n = chunked_elem(&conn, SendPacketsElement::file(f.path()), 5).unwrap();
                assert_eq!(n, data.len() as u64);
                let info = conn.info();
                assert_eq!(info.payload.as_deref(), Some("zero-copy"), "{info:?}");
            });
            assert!(payload == data, "MTU {mtu} v6 {v6}: payload differs");
            let hdrs = if v6 { 48 } else { 28 } + 32;
            assert_eq!(frames, data.len().div_ceil(mtu as usize - hdrs) + 3);
        }
    }
}

#[test]
fn software_checksums_and_a_rewritten_file_on_one_connection() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab();
    let first = pattern(2 << 20, 26);
    let f = shm_file(&first);
    let dst = SocketAddr::from((lab.ip4_b, 12_050));
    let _sink = udp_sink(&lab, dst);
    // Checksums made here (reading the file's pages, not copying them), as on zero-copy
    // queues, where frames whose pieces start at pages cannot carry TX metadata.
    let conn = lab
        .run_in(Side::A, || {
            zc(dst).checksum(ChecksumChoice::Software).connect()
        })
        .unwrap()
        .unwrap();
    let send = || {
        chunked_elem(&conn, SendPacketsElement::file(f.path()), 6).unwrap();
        assert_eq!(conn.info().payload.as_deref(), Some("zero-copy"));
    };
    let (_, got) = chunked_frames_on_the_wire(&lab, dst, 1500, send);
    assert!(got == first, "first send differs");
    // Rewritten in place at the same size (truncated, then written: new pages): the next
    // send must carry the new bytes, not the pages pinned for the first.
    let second = pattern(2 << 20, 27);
    std::fs::write(f.path(), &second).unwrap();
    let (_, got) = chunked_frames_on_the_wire(&lab, dst, 1500, send);
    assert!(got == second, "the rewritten file's old pages were sent");
}

#[test]
fn memfd_and_tmpfs_files_verified_by_recv_and_the_report_says_why() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab();
    let data = pattern(64 << 20, 22);
    let want = sha256(&data);
    // A memfd handed over as an open file.
    // SAFETY: memfd_create with a NUL-terminated name; the descriptor is owned right away.
    let fd = unsafe { libc::memfd_create(c"xsend-test".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create");
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let mut memfd = unsafe { std::fs::File::from_raw_fd(fd) };
    memfd.write_all(&data).unwrap();
    let memfd = Arc::new(memfd);
    let shm = shm_file(&data);
    // The same bytes on a filesystem with writeback (the build's target directory).
    let disk = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (on_disk, _) = file(disk.path(), "f", 2 << 20, 22);
    for (port, what) in [(12_010u16, "memfd"), (12_011, "tmpfs")] {
        let dst = SocketAddr::from((lab.ip4_b, port));
        let a = dst.to_string();
        let recv = spawn_recv(
            &lab,
            &[
                "--listen",
                &a,
                "--proto",
                "udp",
                "--json",
                "--expect-sha256",
                &want,
                "--timeout",
                "60",
            ],
        );
        let conn = lab.run_in(Side::A, || zc(dst).connect()).unwrap().unwrap();
        let e = match what {
            "memfd" => SendPacketsElement::open_file(memfd.clone(), 0, data.len() as u64),
            _ => SendPacketsElement::file(shm.path()),
        };
        assert_eq!(chunked_elem(&conn, e, 1).unwrap(), data.len() as u64);
        assert_eq!(conn.info().payload.as_deref(), Some("zero-copy"));
        let r = recv.wait_output();
        let v = json(&r.stdout);
        assert!(r.status.success(), "{what}: {v}");
        assert_eq!(v["lost"], 0, "{what}: {v}");
    }
    let dst = SocketAddr::from((lab.ip4_b, 12_012));
    let _sink = udp_sink(&lab, dst);
    // Asked for, a file with writeback is refused before anything is sent.
    let conn = lab.run_in(Side::A, || zc(dst).connect()).unwrap().unwrap();
    match chunked_elem(&conn, SendPacketsElement::file(&on_disk), 1) {
        Err(e @ Error::BackendUnavailable { .. }) => {
            assert!(e.to_string().contains("writeback"), "{e}")
        }
        r => panic!("{r:?}"),
    }
    drop(conn);
    // Left to `auto` on veth's copy-mode queues, the copy is kept and the report says why.
    let conn = lab
        .run_in(Side::A, || {
            Connection::udp(dst).backend(BackendChoice::Xdp).connect()
        })
        .unwrap()
        .unwrap();
    chunked_elem(&conn, SendPacketsElement::file(shm.path()), 1).unwrap();
    let info = conn.info();
    assert_eq!(info.payload.as_deref(), Some("copy"));
    assert!(
        info.payload_reason
            .as_deref()
            .unwrap()
            .contains("copy-mode"),
        "{info:?}"
    );
}

#[test]
fn truncation_mid_send_ends_in_file_truncated() {
    need_root!();
    let lab = lab();
    let data = pattern(128 << 20, 23);
    let f = shm_file(&data);
    drop(data);
    let dst = SocketAddr::from((lab.ip4_b, 12_020));
    let _sink = udp_sink(&lab, dst);
    let path = f.path().to_str().unwrap().to_string();
    let (ran, cb) = on_first_progress(&["truncate", "-s", "1048576", &path]);
    let conn = lab
        .run_in(Side::A, || zc(dst).on_progress(cb).connect())
        .unwrap()
        .unwrap();
    match chunked_elem(&conn, SendPacketsElement::file(f.path()), 1) {
        Err(e @ Error::FileTruncated { .. }) => {
            assert!(e.to_string().contains("1048576"), "{e}")
        }
        r => panic!("{r:?}"),
    }
    assert!(ran.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(conn.info().payload.as_deref(), Some("zero-copy"));
}

/// TCP from a tmpfs file's pages to a plain kernel socket; the file's bytes on arrival.
fn tcp_zero_copy(
    lab: &xsend::lab::Lab,
    port: u16,
    f: &std::path::Path,
    want: &str,
    len: u64,
) -> xsend::SendStats {
    let addr = SocketAddr::from((lab.ip4_b, port));
    let sink = tcp_sink(lab, addr, 1);
    let conn = lab
        .run_in(Side::A, || {
            Connection::tcp(addr)
                .backend(BackendChoice::Xdp)
                .payload(PayloadChoice::ZeroCopy)
                .connect_timeout(std::time::Duration::from_secs(5))
                .user_timeout(std::time::Duration::from_secs(10))
                .connect()
        })
        .unwrap()
        .expect("connect");
    conn.send_file_with(Some(f), None, None, TransmitFlags::DISCONNECT)
        .expect("send");
    assert_eq!(conn.info().payload.as_deref(), Some("zero-copy"));
    let got = sink.join().unwrap().remove(0);
    assert_eq!(got.len, len);
    assert_eq!(got.sha256, want);
    conn.last_stats()
}

#[test]
fn tcp_from_a_tmpfs_file_byte_exact_at_mtu_1500_and_9000_and_with_loss() {
    need_root!();
    let data = pattern(96 << 20, 24);
    let want = sha256(&data);
    let f = shm_file(&data);
    drop(data);
    for (mtu, loss, port) in [
        (1500u32, false, 12_030u16),
        (9000, false, 12_031),
        (9000, true, 12_032),
    ] {
        let lab = lab_with(LabConfig {
            mtu,
            ..Default::default()
        });
        if loss {
            drop_data(&lab, "lossy_data_1pct.bpf.o");
        }
        let st = tcp_zero_copy(&lab, port, f.path(), &want, 96 << 20);
        if loss {
            // Retransmissions come from the same pages.
            assert!(st.tcp.expect("tcp stats").retransmits > 0);
        }
    }
}

#[test]
fn tcp_truncation_mid_send_ends_in_file_truncated() {
    need_root!();
    let lab = lab();
    let f = shm_file(&pattern(128 << 20, 25));
    let addr = SocketAddr::from((lab.ip4_b, 12_040));
    let _sink = tcp_sink(&lab, addr, 1);
    let path = f.path().to_str().unwrap().to_string();
    let (ran, cb) = on_first_progress(&["truncate", "-s", "1048576", &path]);
    let conn = lab
        .run_in(Side::A, || {
            Connection::tcp(addr)
                .backend(BackendChoice::Xdp)
                .payload(PayloadChoice::ZeroCopy)
                .on_progress(cb)
                .connect()
        })
        .unwrap()
        .expect("connect");
    match conn.send_file_with(Some(f.path()), None, None, TransmitFlags::DISCONNECT) {
        Err(e @ Error::FileTruncated { .. }) => assert!(e.to_string().contains("1048576"), "{e}"),
        r => panic!("{r:?}"),
    }
    assert!(ran.load(std::sync::atomic::Ordering::SeqCst));
}
