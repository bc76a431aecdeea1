//! Soak: one long-lived process that, over and over for `SOAK_SECONDS` (default 600), opens
//! connections and sends over every path (AF_XDP UDP chunked and TCP, kernel TCP), runs the
//! generator, and drops everything again; after each round it prints one JSON line with its
//! resident size and open descriptors, so a leak shows as a slope. `scripts/soak.sh` runs it
//! and summarises.
//!
//! Run as root: `cargo run --release --example soak`

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use xsend::gen::{GenSpec, Imix};
use xsend::lab::{Lab, LabConfig, Side};
use xsend::{BackendChoice, Connection, SendPacketsElement, SendPacketsOptions, TransmitFlags};

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let lab = Lab::up(&LabConfig::default())?;
    let file = std::env::temp_dir().join(format!("{}-soak.bin", lab.name));
    std::fs::write(
        &file,
        (0..=255u8).cycle().take(32 << 20).collect::<Vec<u8>>(),
    )?;
    // A TCP sink in the peer that accepts every connection and reads it to the end.
    let tcp_addr = SocketAddr::from((lab.ip4_b, 5600));
    let listener = lab.run_in(Side::B, || TcpListener::bind(tcp_addr))??;
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 20];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    // UDP goes to a port nobody listens on: the peer's stack drops it.
    let udp_addr = SocketAddr::from((lab.ip4_b, 5601));
    let start = Instant::now();
    let mut round = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        round += 1;
        let mut bytes = 0u64;
        for (proto, backend) in [
            ("udp", BackendChoice::Xdp),
            ("tcp", BackendChoice::Xdp),
            ("tcp", BackendChoice::Kernel),
        ] {
            let b = match proto {
                "udp" => Connection::udp(udp_addr),
                _ => Connection::tcp(tcp_addr),
            }
            .backend(backend);
            let conn = lab.run_in(Side::A, || b.connect())??;
            let opts = SendPacketsOptions {
                chunk_header: (proto == "udp").then_some(1),
                flags: TransmitFlags::CALLER_THREAD | TransmitFlags::DISCONNECT,
                ..Default::default()
            };
            match conn.send_packets(&[SendPacketsElement::file(&file)], opts)? {
                xsend::SendStatus::Completed(n) => bytes += n,
                xsend::SendStatus::Pending(op) => bytes += conn.end_send_packets(op)?,
            }
        }
        let mut gen = lab.run_in(Side::A, || {
            Connection::udp(udp_addr)
                .backend(BackendChoice::Xdp)
                .generator()
        })??;
        let mut spec = GenSpec::new(Imix::parse("imix")?);
        spec.duration = Some(Duration::from_millis(500));
        let r = gen.run(&spec)?;
        drop(gen);
        println!(
            "{{\"round\":{round},\"seconds\":{:.1},\"rss_kib\":{},\"fds\":{},\"bytes\":{bytes},\"gen_packets\":{}}}",
            start.elapsed().as_secs_f64(),
            status_kib("VmRSS:"),
            fds(),
            r.packets
        );
    }
    let _ = std::fs::remove_file(&file);
    Ok(())
}
