//! Library example: build a lab, send a header + file range + trailer over TCP and a few
//! datagrams over UDP, and check what a plain kernel socket in the peer namespace received.
//!
//! Run as root: `cargo run --release --example send_packets`

use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use xsend::lab::{Lab, LabConfig, Side};
use xsend::{Connection, SendPacketsElement, SendPacketsOptions, SendStatus, TransmitFlags};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lab = Lab::up(&LabConfig::default())?;
    let file = std::env::temp_dir().join(format!("{}-example.bin", lab.name));
    std::fs::write(
        &file,
        (0..=255u8).cycle().take(100_000).collect::<Vec<u8>>(),
    )?;

    // TCP: .NET SendPacketsAsync with mixed elements, on a background driver thread.
    let tcp_addr = SocketAddr::from((lab.ip4_b, 5000));
    let listener = lab.run_in(Side::B, || TcpListener::bind(tcp_addr))??;
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut v = Vec::new();
        s.read_to_end(&mut v).expect("read");
        v.len()
    });
    let conn = lab.run_in(Side::A, || Connection::tcp(tcp_addr).connect())??;
    println!("obtained: {:?}", conn.info());
    let elements = [
        SendPacketsElement::buffer(&b"HEADER\n"[..]),
        SendPacketsElement::file_range(&file, 1000, 50_000),
        SendPacketsElement::buffer(&b"TRAILER\n"[..]).end_of_packet(true),
    ];
    let opts = SendPacketsOptions {
        flags: TransmitFlags::DISCONNECT,
        on_complete: Some(Box::new(|r| println!("completion callback: {r:?}"))),
        ..Default::default()
    };
    let sent = match conn.send_packets(&elements, opts)? {
        SendStatus::Completed(n) => n,
        SendStatus::Pending(op) => conn.end_send_packets(op)?,
    };
    println!(
        "tcp: sent {sent} bytes, peer read {}",
        reader.join().expect("reader")
    );

    // UDP: every end_of_packet closes a datagram; oversize ones are refused up front.
    let udp_addr = SocketAddr::from((lab.ip4_b, 5001));
    let sock = lab.run_in(Side::B, || UdpSocket::bind(udp_addr))??;
    let udp = lab.run_in(Side::A, || Connection::udp(udp_addr).connect())??;
    let elements = [
        SendPacketsElement::buffer(&b"one"[..]).end_of_packet(true),
        SendPacketsElement::file_range(&file, 0, 1000).end_of_packet(true),
    ];
    let opts = SendPacketsOptions {
        send_size: xsend::SEND_SIZE_PACKETS,
        flags: TransmitFlags::CALLER_THREAD,
        ..Default::default()
    };
    udp.send_packets(&elements, opts)?;
    let mut buf = [0u8; 2048];
    for _ in 0..2 {
        println!("udp datagram of {} bytes", sock.recv(&mut buf)?);
    }
    match udp.send_file(&file) {
        Err(e) => println!("as expected: {e}"),
        Ok(_) => unreachable!("a 100 kB datagram cannot fit"),
    }
    std::fs::remove_file(&file)?;
    Ok(())
}
