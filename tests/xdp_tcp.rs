//! TCP over AF_XDP: a user-space sender against unmodified kernel receivers.

mod common;

use std::net::SocketAddr;

use common::*;
use xsend::lab::{Lab, Side};
use xsend::{BackendChoice, Connection, TransmitFlags};

fn b4(lab: &Lab, port: u16) -> SocketAddr {
    SocketAddr::from((lab.ip4_b, port))
}

fn connect_xdp(lab: &Lab, addr: SocketAddr) -> xsend::Result<Connection> {
    lab.run_in(Side::A, || Connection::tcp(addr).backend(BackendChoice::Xdp).connect())
        .unwrap()
}

#[test]
fn smoke() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "f", (1 << 20) + 7, 1);
    let sink = tcp_sink(&lab, b4(&lab, 7100), 1);
    let conn = connect_xdp(&lab, b4(&lab, 7100)).expect("connect");
    eprintln!("{:?}", conn.info());
    let n = conn
        .send_file_with(Some(&path), None, None, TransmitFlags::DISCONNECT)
        .unwrap();
    assert_eq!(n, data.len() as u64);
    let got = sink.join().unwrap().remove(0);
    assert_eq!(got.data.unwrap(), data);
}
