//! The foundation's TCP semantics, run against both backends (kernel `sendfile` and xsend's
//! user-space TCP over AF_XDP), verified byte for byte by receivers that are not xsend.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use common::*;
use xsend::lab::{Lab, Side};
use xsend::{
    BackendChoice, Connection, Error, SendPacketsElement, SendPacketsOptions, SendStatus,
    TransmitFlags, SEND_SIZE_PACKETS,
};

fn b4(lab: &Lab, port: u16) -> SocketAddr {
    SocketAddr::from((lab.ip4_b, port))
}

fn connect(lab: &Lab, backend: BackendChoice, addr: SocketAddr) -> Connection {
    lab.run_in(Side::A, || Connection::tcp(addr).backend(backend).connect())
        .unwrap()
        .expect("connect")
}

/// A minimal executor: the operation handle is a plain `std::future::Future`.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

fn files_of_many_sizes_arrive_byte_exact(backend: BackendChoice) {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    for (i, len) in [0usize, 1, 7, 1460, 65_537, (1 << 20) + 7, 10_000_019]
        .into_iter()
        .enumerate()
    {
        let (path, data) = file(dir.path(), &format!("f{i}"), len, i as u64 + 1);
        let sink = tcp_sink(&lab, b4(&lab, 7000), 1);
        let conn = connect(&lab, backend, b4(&lab, 7000));
        let sent = conn
            .send_file_with(Some(&path), None, None, TransmitFlags::DISCONNECT)
            .unwrap();
        assert_eq!(sent, len as u64);
        let got = sink.join().unwrap().remove(0);
        assert_eq!(got.len, len as u64, "size {len}");
        assert_eq!(got.data.unwrap(), data, "size {len}");
        if backend == BackendChoice::Kernel {
            assert_eq!(conn.info().backend, "kernel");
            assert_eq!(conn.info().mode, "sendfile");
        } else {
            assert_eq!(conn.info().backend, "xdp");
        }
    }
}

fn pre_and_post_buffers_wrap_the_file(backend: BackendChoice) {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "body", 100_003, 9);
    let sink = tcp_sink(&lab, b4(&lab, 7001), 1);
    let conn = connect(&lab, backend, b4(&lab, 7001));
    let sent = conn
        .send_file_with(
            Some(&path),
            Some(b"GET / HTTP/1.0\r\n\r\n"),
            Some(b"--end--"),
            TransmitFlags::DISCONNECT,
        )
        .unwrap();
    let mut want = b"GET / HTTP/1.0\r\n\r\n".to_vec();
    want.extend_from_slice(&data);
    want.extend_from_slice(b"--end--");
    assert_eq!(sent, want.len() as u64);
    assert_eq!(sink.join().unwrap()[0].data.as_deref().unwrap(), &want[..]);

    // Buffers only (no file), as .NET allows.
    let sink = tcp_sink(&lab, b4(&lab, 7002), 1);
    let conn = connect(&lab, backend, b4(&lab, 7002));
    conn.send_file_with(
        None,
        Some(b"just"),
        Some(b" buffers"),
        TransmitFlags::DISCONNECT,
    )
    .unwrap();
    assert_eq!(
        sink.join().unwrap()[0].data.as_deref().unwrap(),
        b"just buffers"
    );
}

fn disconnect_ends_the_stream_and_closes_the_connection(backend: BackendChoice) {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "f", 4096, 3);
    let sink = tcp_sink(&lab, b4(&lab, 7003), 1);
    let conn = connect(&lab, backend, b4(&lab, 7003));
    // Without DISCONNECT the stream stays open: a second send continues it.
    conn.send_file(&path).unwrap();
    conn.send_file_with(Some(&path), None, None, TransmitFlags::DISCONNECT)
        .unwrap();
    // The sink saw EOF (FIN) only after both.
    let got = sink.join().unwrap().remove(0);
    assert_eq!(got.data.unwrap(), [data.clone(), data].concat());
    assert!(matches!(conn.send_file(&path), Err(Error::Closed)));
    assert!(matches!(conn.reconnect(), Err(Error::Closed)));
}

fn reuse_socket_allows_reconnect(backend: BackendChoice) {
    need_root!();
    let lab = lab();
    let sink = tcp_sink(&lab, b4(&lab, 7004), 2);
    let conn = connect(&lab, backend, b4(&lab, 7004));
    let flags = TransmitFlags::DISCONNECT | TransmitFlags::REUSE_SOCKET;
    conn.send_file_with(None, Some(b"first"), None, flags)
        .unwrap();
    assert!(matches!(
        conn.send_file_with(None, Some(b"x"), None, flags),
        Err(Error::NotConnected)
    ));
    lab.run_in(Side::A, || conn.reconnect()).unwrap().unwrap();
    conn.send_file_with(None, Some(b"second"), None, flags)
        .unwrap();
    let got = sink.join().unwrap();
    assert_eq!(got[0].data.as_deref().unwrap(), b"first");
    assert_eq!(got[1].data.as_deref().unwrap(), b"second");
    // REUSE_SOCKET alone is meaningless.
    assert!(matches!(
        conn.send_file_with(None, Some(b"x"), None, TransmitFlags::REUSE_SOCKET),
        Err(Error::InvalidOption(_))
    ));
}

fn ranges_and_mixed_elements_with_send_packets(backend: BackendChoice) {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "f", 50_000, 5);
    let open = std::fs::File::open(&path).unwrap();
    let elements = [
        SendPacketsElement::buffer(Bytes::from_static(b"<hdr>")),
        SendPacketsElement::file_range(&path, 100, 1000).end_of_packet(true),
        SendPacketsElement::file_range(&path, 49_000, 0),
        SendPacketsElement::buffer_range(Bytes::from_static(b"0123456789"), 3, 4)
            .end_of_packet(true),
        SendPacketsElement::open_file(open, 7, 13),
        SendPacketsElement::file_range(&path, 50_000, 0),
    ];
    let mut want = b"<hdr>".to_vec();
    want.extend_from_slice(&data[100..1100]);
    want.extend_from_slice(&data[49_000..]);
    want.extend_from_slice(b"3456");
    want.extend_from_slice(&data[7..20]);

    for send_size in [0, 7, SEND_SIZE_PACKETS] {
        let sink = tcp_sink(&lab, b4(&lab, 7005), 1);
        let conn = connect(&lab, backend, b4(&lab, 7005));
        let opts = SendPacketsOptions {
            send_size,
            flags: TransmitFlags::DISCONNECT,
            ..Default::default()
        };
        let n = match conn.send_packets(&elements, opts).unwrap() {
            SendStatus::Pending(op) => conn.end_send_packets(op).unwrap(),
            SendStatus::Completed(_) => panic!("background driver expected"),
        };
        assert_eq!(n, want.len() as u64);
        assert_eq!(
            sink.join().unwrap()[0].data.as_deref().unwrap(),
            &want[..],
            "send_size {send_size}"
        );
    }
}

fn begin_end_callback_future_and_misuse(backend: BackendChoice) {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "f", 3 << 20, 11);
    let sink = tcp_sink(&lab, b4(&lab, 7006), 1);
    let conn = connect(&lab, backend, b4(&lab, 7006));
    // One AF_XDP connection per interface at a time: the second one uses the kernel.
    let other = connect(&lab, BackendChoice::Kernel, b4(&lab, 7006));

    // Callback fires once with the byte count.
    let (tx, rx) = mpsc::channel();
    let op = conn
        .begin_send_file(
            Some(&path),
            None,
            None,
            TransmitFlags::empty(),
            Some(Box::new(move |r| tx.send(*r.as_ref().unwrap()).unwrap())),
        )
        .unwrap();
    // Ending on another connection is a typed error.
    match other.end_send_file(op) {
        Err(Error::ForeignOperation { op_conn, this_conn }) => {
            assert_eq!((op_conn, this_conn), (conn.id(), other.id()))
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(rx.recv().unwrap(), 3 << 20);

    // The handle is a Future.
    assert_eq!(
        block_on(
            conn.begin_send_file(Some(&path), None, None, TransmitFlags::empty(), None)
                .unwrap()
        )
        .unwrap(),
        3 << 20
    );
    // Bad input is refused at begin time, before anything is sent.
    assert!(matches!(
        conn.begin_send_file(
            Some(&dir.path().join("missing")),
            None,
            None,
            TransmitFlags::empty(),
            None
        ),
        Err(Error::FileNotFound { .. })
    ));
    conn.send_file_with(None, None, None, TransmitFlags::DISCONNECT)
        .unwrap();
    drop(other);
    let got = sink.join().unwrap().remove(0);
    assert_eq!(got.len, 2 * data.len() as u64);
    assert_eq!(got.sha256, sha256(&data.repeat(2)));
}

fn second_operation_while_one_runs_is_refused(backend: BackendChoice) {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "f", 64 << 20, 12);
    // A receiver that reads only when told to: the first send cannot finish before that.
    let l = lab
        .run_in(Side::B, || std::net::TcpListener::bind(b4(&lab, 7010)))
        .unwrap()
        .unwrap();
    let (go, gate) = mpsc::channel::<()>();
    let sink = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        gate.recv().unwrap();
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut v).unwrap();
        v
    });
    let conn = connect(&lab, backend, b4(&lab, 7010));
    let op = conn
        .begin_send_file(Some(&path), None, None, TransmitFlags::DISCONNECT, None)
        .unwrap();
    assert!(matches!(
        conn.begin_send_file(Some(&path), None, None, TransmitFlags::empty(), None),
        Err(Error::OperationInProgress)
    ));
    assert!(matches!(
        conn.send_file(&path),
        Err(Error::OperationInProgress)
    ));
    go.send(()).unwrap();
    assert_eq!(conn.end_send_file(op).unwrap(), data.len() as u64);
    assert!(sink.join().unwrap() == data);
}

fn file_over_2_gib_sparse(backend: BackendChoice) {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse");
    let len: u64 = (3 << 30) + 4099;
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(len).unwrap();
    use std::os::unix::fs::FileExt;
    // Markers at the start, across the 2 GiB boundary and at the end.
    f.write_all_at(b"start", 0).unwrap();
    f.write_all_at(b"across-2GiB", (2 << 30) - 5).unwrap();
    f.write_all_at(b"end", len - 3).unwrap();
    drop(f);
    let want = sha256_file(&path);
    let sink = tcp_sink(&lab, b4(&lab, 7007), 1);
    let conn = connect(&lab, backend, b4(&lab, 7007));
    let sent = conn
        .send_file_with(Some(&path), None, None, TransmitFlags::DISCONNECT)
        .unwrap();
    assert_eq!(sent, len);
    let got = sink.join().unwrap().remove(0);
    assert_eq!(got.len, len);
    assert_eq!(got.sha256, want);
}

fn socat_receiver_and_ipv6(backend: BackendChoice) {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "f", 777_777, 21);
    let out = dir.path().join("socat.out");
    let mut socat = ChildGuard(Some(
        lab.command(Side::B, "socat")
            .args(["-u", "TCP6-LISTEN:7008,bind=[2001:db8::2],reuseaddr"])
            .arg(format!("OPEN:{},creat,trunc", out.display()))
            .spawn()
            .expect("socat (apt install socat)"),
    ));
    let addr: SocketAddr = "[2001:db8::2]:7008".parse().unwrap();
    // socat needs a moment to listen: retry connecting (not a timed assertion).
    let conn = (0..200)
        .find_map(|_| {
            let c = lab.run_in(Side::A, || Connection::tcp(addr).backend(backend).connect());
            match c.unwrap() {
                Ok(c) => Some(c),
                Err(_) => {
                    std::thread::sleep(std::time::Duration::from_millis(25));
                    None
                }
            }
        })
        .expect("socat never listened");
    conn.send_file_with(Some(&path), None, None, TransmitFlags::DISCONNECT)
        .unwrap();
    let st = socat.0.take().unwrap().wait().unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read(&out).unwrap(), data);
}

fn write_behind_returns_once_queued(backend: BackendChoice) {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "f", 2 << 20, 8);
    let sink = tcp_sink(&lab, b4(&lab, 7009), 1);
    let conn = connect(&lab, backend, b4(&lab, 7009));
    let n = conn
        .send_file_with(
            Some(&path),
            None,
            None,
            TransmitFlags::DISCONNECT | TransmitFlags::WRITE_BEHIND,
        )
        .unwrap();
    assert_eq!(n, data.len() as u64);
    assert_eq!(sink.join().unwrap()[0].data.as_deref().unwrap(), &data[..]);
}

/// Every test above, once per backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod kernel {
            $( #[test] fn $name() { super::$name(xsend::BackendChoice::Kernel) } )*
        }
        mod xdp {
            $( #[test] fn $name() { super::$name(xsend::BackendChoice::Xdp) } )*
        }
    };
}

on_both_backends!(
    files_of_many_sizes_arrive_byte_exact,
    pre_and_post_buffers_wrap_the_file,
    disconnect_ends_the_stream_and_closes_the_connection,
    reuse_socket_allows_reconnect,
    ranges_and_mixed_elements_with_send_packets,
    begin_end_callback_future_and_misuse,
    second_operation_while_one_runs_is_refused,
    file_over_2_gib_sparse,
    socat_receiver_and_ipv6,
    write_behind_returns_once_queued
);
