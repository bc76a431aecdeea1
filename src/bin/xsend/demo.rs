//! `xsend lab demo`: the main job on a self-made lab.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;
use sha2::{Digest, Sha256};
use xsend::lab::{Lab, LabConfig, Side};
use xsend::{
    BackendChoice, Connection, Proto, SendPacketsElement, SendPacketsOptions, SendStatus,
    TransmitFlags,
};

use crate::signal::{arm, cancel_on_signal, CancelSlot};
use crate::EXIT_CANCELLED;

mod dut;

#[derive(Args)]
pub struct DemoArgs {
    /// File size in MiB.
    #[arg(long, default_value_t = 256)]
    size_mib: u64,
    /// Lab MTU.
    #[arg(long, default_value_t = 1500)]
    mtu: u32,
    /// Backend for the sends (default: every path on both the kernel and AF_XDP, side by
    /// side).
    #[arg(long, value_enum)]
    backend: Option<crate::args::BackendArg>,
    /// Print the rows as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row {
    path: String,
    proto: Proto,
    backend: String,
    mode: String,
    bytes: u64,
    seconds: f64,
    gbps: f64,
    pps: f64,
    received_bytes: u64,
    lost: u64,
    verified: bool,
    /// The DUT row: what the NDR search found.
    #[serde(skip_serializing_if = "Option::is_none")]
    ndr: Option<dut::NdrFound>,
}

/// Removes a file on drop.
struct TempFile(PathBuf);
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Kills a child process on drop (receiver left behind by an error or Ctrl-C).
struct Reaper(Option<Child>);
impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Write `size` pseudo-random bytes (xorshift64*) and return their sha256.
fn make_file(path: &Path, size: u64) -> anyhow::Result<String> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut h = Sha256::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for w in buf.chunks_exact_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            w.copy_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        h.update(&buf[..n]);
        left -= n as u64;
    }
    f.flush()?;
    Ok(hex::encode(h.finalize()))
}

pub fn run(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let (current, stop) = cancel_on_signal()?;
    let lab = Lab::up(&LabConfig {
        mtu: a.mtu,
        ..Default::default()
    })?;
    eprintln!(
        "lab {}: {}/{} {} <-> {}/{} {}, mtu {}",
        lab.name, lab.ns_a, lab.if_a, lab.ip4_a, lab.ns_b, lab.if_b, lab.ip4_b, lab.mtu
    );
    let file = TempFile(std::env::temp_dir().join(format!("{}-demo.bin", lab.name)));
    let size = a.size_mib << 20;
    let sha = make_file(&file.0, size).context("generating the demo file")?;
    eprintln!(
        "file {} ({} MiB) sha256 {sha}",
        file.0.display(),
        a.size_mib
    );

    let ip6 = lab.ip6_b.context("lab without IPv6")?;
    let paths: [(Proto, std::net::IpAddr, &str); 3] = [
        (Proto::Tcp, lab.ip4_b.into(), "tcp ipv4"),
        (Proto::Udp, lab.ip4_b.into(), "udp chunked ipv4"),
        (Proto::Udp, ip6.into(), "udp chunked ipv6"),
    ];
    let backends: Vec<BackendChoice> = match a.backend {
        Some(b) => vec![b.into()],
        None => vec![BackendChoice::Kernel, BackendChoice::Xdp],
    };
    let mut runs = Vec::new();
    for (i, (proto, ip, label)) in paths.into_iter().enumerate() {
        for (j, &backend) in backends.iter().enumerate() {
            let port = 5201 + (i * backends.len() + j) as u16;
            runs.push((proto, SocketAddr::from((ip, port)), label, backend));
        }
    }
    let mut rows = Vec::new();
    for (proto, addr, label, backend) in runs {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match one(
            &lab,
            &file.0,
            &sha,
            proto,
            addr,
            label,
            backend,
            (&current, &stop),
        ) {
            Ok(r) => rows.push(r),
            Err(e) if stop.load(Ordering::SeqCst) => {
                eprintln!("xsend: {label}: {e:#}");
                break;
            }
            Err(e) => return Err(e.context(label.to_string())),
        }
    }
    drop(lab);
    if !stop.load(Ordering::SeqCst) {
        match dut::row((&current, &stop)) {
            Ok(r) => rows.push(r),
            Err(e) if stop.load(Ordering::SeqCst) => eprintln!("xsend: ndr via dut: {e:#}"),
            Err(e) => return Err(e.context("ndr via dut")),
        }
    }
    if a.json {
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        println!(
            "{:<18} {:<7} {:<12} {:>10} {:>12} {:>10} {:>9}",
            "path", "backend", "mode", "Gbit/s", "packets/s", "MiB", "verified"
        );
        for r in &rows {
            println!(
                "{:<18} {:<7} {:<12} {:>10.2} {:>12.0} {:>10} {:>9}",
                r.path,
                r.backend,
                r.mode,
                r.gbps,
                r.pps,
                match r.ndr {
                    None => format!("{:.1}", r.received_bytes as f64 / 1048576.0),
                    Some(_) => "-".into(),
                },
                if r.verified { "yes" } else { "NO" }
            );
        }
        for n in rows.iter().filter_map(|r| r.ndr.as_ref()) {
            println!("{n}");
        }
    }
    if stop.load(Ordering::SeqCst) {
        eprintln!("xsend: interrupted; lab removed");
        return Ok(ExitCode::from(EXIT_CANCELLED));
    }
    if rows.iter().any(|r| !r.verified) {
        bail!("a row did not verify");
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
fn one(
    lab: &Lab,
    file: &Path,
    sha: &str,
    proto: Proto,
    addr: SocketAddr,
    label: &str,
    backend: BackendChoice,
    (current, stop): (&CancelSlot, &AtomicBool),
) -> anyhow::Result<Row> {
    let exe = std::env::current_exe().context("locating the xsend binary")?;
    let mut child = lab
        .command(Side::B, exe)
        .args([
            "recv",
            "--listen",
            &addr.to_string(),
            "--json",
            "--timeout",
            "30",
        ])
        .args(["--proto", if proto == Proto::Tcp { "tcp" } else { "udp" }])
        .args(["--expect-sha256", sha])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting xsend recv in the peer namespace")?;
    let stderr = child.stderr.take().context("receiver stderr")?;
    let mut reaper = Reaper(Some(child));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = tx.send(());
            } else {
                eprintln!("  recv: {line}");
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10))
        .context("the receiver did not start listening")?;

    let (bytes, packets, info, seconds) = lab.run_in(Side::A, || -> xsend::Result<_> {
        let b = match proto {
            Proto::Tcp => Connection::tcp(addr),
            Proto::Udp => Connection::udp(addr),
        };
        let conn = b.backend(backend).connect()?;
        arm(current, stop, conn.cancel_handle());
        let opts = SendPacketsOptions {
            flags: TransmitFlags::DISCONNECT | TransmitFlags::CALLER_THREAD,
            chunk_header: (proto == Proto::Udp).then_some(1),
            ..Default::default()
        };
        let start = Instant::now();
        let r = conn.send_packets(&[SendPacketsElement::file(file)], opts);
        *current.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let bytes = match r? {
            SendStatus::Completed(b) => b,
            SendStatus::Pending(op) => conn.end_send_packets(op)?,
        };
        Ok((
            bytes,
            conn.last_stats().packets,
            conn.info(),
            start.elapsed().as_secs_f64(),
        ))
    })??;

    let child = reaper.0.take().context("receiver")?;
    let out = child
        .wait_with_output()
        .context("waiting for the receiver")?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("receiver output: {}", String::from_utf8_lossy(&out.stdout)))?;
    let verified = out.status.success() && v["verified"].as_bool() == Some(true);
    let (gbps, pps) = crate::rate(bytes, packets, seconds);
    Ok(Row {
        path: label.to_string(),
        proto,
        backend: info.backend.to_string(),
        mode: info.mode,
        bytes,
        seconds,
        gbps,
        pps,
        received_bytes: v["bytes"].as_u64().unwrap_or(0),
        lost: v["lost"].as_u64().unwrap_or(0),
        verified,
        ndr: None,
    })
}
