//! `xsend`: send files over TCP/UDP (AF_XDP or kernel sockets), receive and verify them,
//! generate traffic at line rate, and build veth labs to try it on. One file per
//! subcommand; this one parses, dispatches and turns errors into exit codes.

mod args;
mod bench;
mod demo;
mod lab;
mod ndr;
mod plot;
mod recv;
mod replay;
mod send;
mod signal;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xsend::Error;

/// Exit code of a usage error (bad option value), as clap uses.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code when an expectation of `xsend recv` fails, or the stream was incomplete.
pub(crate) const EXIT_MISMATCH: u8 = 3;
/// Exit code after Ctrl-C / SIGTERM.
pub(crate) const EXIT_CANCELLED: u8 = 130;

#[derive(Parser)]
#[command(
    name = "xsend",
    version,
    about = "Send files at line rate with AF_XDP or kernel sockets, and verify them on arrival"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send a file to IP:PORT over TCP or UDP.
    #[command(after_help = "Examples:
  xsend send big.iso --to 198.18.0.2:5201
  xsend send big.iso --to 198.18.0.2:5202 --proto udp --chunk auto --json
  xsend send body.bin --to [2001:db8::2]:80 --pre header.txt --post trailer.txt
  xsend send big.iso --to 198.18.0.2:5201 --netns mylaba --backend kernel")]
    Send(send::SendArgs),
    /// Receive and verify (bytes, sha256, loss/duplicates/reordering of chunked UDP).
    #[command(after_help = "Examples:
  xsend recv --listen 198.18.0.2:5201 --expect-sha256 <hex>
  xsend recv --listen 0.0.0.0:5202 --proto udp --out copy.bin --json")]
    Recv(recv::RecvArgs),
    /// Generate UDP frames at line rate, in the kernel (live frames) or on AF_XDP (valid
    /// checksums; the payload starts with a probe header: stream, sequence number, send
    /// time) and report packets/s; `--rx-iface` counts loss and latency where they arrive.
    #[command(after_help = "Examples:
  xsend bench --iface eth1 --to 198.18.0.2:9 --dst-mac 02:00:00:00:00:02 --size 64 --duration 10
  xsend bench --to 198.18.0.2:9 --size 1514 --count 1000000 --queues 2 --json
  xsend bench --to 198.18.0.2:9 --size imix --pps 1M --burst 8 --duration 30")]
    Bench(bench::BenchArgs),
    /// RFC 2544 throughput through a device under test: NDR and PDR per frame size, counted
    /// on a receiving port.
    #[command(after_help = "Examples:
  xsend lab up --name dut1 --topology dut --dut-rate 500k
  xsend ndr --netns dut1a --to 198.19.0.2:9 --rx-netns dut1b --rx-iface dut1b --size 64,512,1518 --trial 2 --final 5")]
    Ndr(ndr::NdrArgs),
    /// Replay a pcap/pcapng capture on an interface, with its own timing or at a rate,
    /// rewriting MACs and addresses if asked.
    #[command(after_help = "Examples:
  xsend replay trace.pcap --iface eth1
  xsend replay trace.pcapng --iface eth1 --multiplier 2 --loop 10 --json
  xsend replay trace.pcap --iface eth1 --topspeed --dst-mac 02:00:00:00:00:02 \\
      --src-ip 10.0.0.1=198.18.0.1 --dst-ip 198.18.0.2
  xsend replay trace.pcap --iface mylaba --netns mylaba --pps 100k --duration 60")]
    Replay(replay::ReplayArgs),
    /// Build, remove, use or demonstrate a veth lab (two namespaces joined by a veth pair).
    #[command(subcommand)]
    Lab(lab::LabCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Send(a) => send::run(a),
        Cmd::Recv(a) => recv::run(a),
        Cmd::Bench(a) => bench::run(a),
        Cmd::Ndr(a) => ndr::run(a),
        Cmd::Replay(a) => replay::run(a),
        Cmd::Lab(l) => lab::run(l),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            if let Some(Error::Cancelled { sent }) = e.downcast_ref::<Error>() {
                eprintln!("xsend: cancelled after {sent} bytes");
                return ExitCode::from(EXIT_CANCELLED);
            }
            // Each cause once: a message that already quotes its cause does not repeat it.
            let msg = xsend::error::chain(e.as_ref());
            eprintln!("xsend: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// `--netns NAME`: move into that network namespace first.
pub(crate) fn enter_netns(ns: &Option<String>) -> anyhow::Result<()> {
    if let Some(ns) = ns {
        xsend::lab::enter_netns(ns)?;
    }
    Ok(())
}

/// (Gbit/s, packets/s) of `bytes` and `packets` in `secs`.
pub(crate) fn rate(bytes: u64, packets: u64, secs: f64) -> (f64, f64) {
    if secs <= 0.0 {
        return (0.0, 0.0);
    }
    (bytes as f64 * 8.0 / secs / 1e9, packets as f64 / secs)
}
