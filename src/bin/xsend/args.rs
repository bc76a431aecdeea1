//! Arguments shared by several subcommands: protocol, backend and checksum choices, the
//! AF_XDP options (declared once, flattened into `send` and `bench`), and value parsers.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, ValueEnum};
use xsend::gen::Imix;
use xsend::wire::ethernet::MacAddr;
use xsend::{BackendChoice, ChecksumChoice, ConnectionBuilder, PayloadChoice, Proto};

#[derive(Copy, Clone, ValueEnum)]
pub(crate) enum ProtoArg {
    Tcp,
    Udp,
}

impl From<ProtoArg> for Proto {
    fn from(p: ProtoArg) -> Self {
        match p {
            ProtoArg::Tcp => Proto::Tcp,
            ProtoArg::Udp => Proto::Udp,
        }
    }
}

#[derive(Copy, Clone, ValueEnum)]
pub(crate) enum BackendArg {
    Auto,
    Kernel,
    Xdp,
    /// A DPDK port (`--dpdk-args`, `--dpdk-port`); never chosen by `auto`.
    Dpdk,
}

impl From<BackendArg> for BackendChoice {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Kernel => BackendChoice::Kernel,
            BackendArg::Xdp => BackendChoice::Xdp,
            BackendArg::Dpdk => BackendChoice::Dpdk,
        }
    }
}

#[derive(Copy, Clone, ValueEnum)]
pub(crate) enum ChecksumArg {
    /// Offloaded through AF_XDP TX metadata when the kernel accepts it, else software.
    Auto,
    /// Computed in user space.
    Software,
    /// Offloaded, or an error.
    Offload,
}

impl From<ChecksumArg> for ChecksumChoice {
    fn from(c: ChecksumArg) -> Self {
        match c {
            ChecksumArg::Auto => ChecksumChoice::Auto,
            ChecksumArg::Software => ChecksumChoice::Software,
            ChecksumArg::Offload => ChecksumChoice::Offload,
        }
    }
}

/// How file bytes reach AF_XDP frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PayloadArg {
    /// Zero-copy where it is faster, else copy.
    Auto,
    /// Always copied into the frames.
    Copy,
    /// From the file's pages, or an error.
    ZeroCopy,
}

/// The AF_XDP options of `send` and `bench`.
#[derive(Args)]
pub(crate) struct XdpArgs {
    /// AF_XDP: destination MAC (default: the kernel's neighbour table, resolved if absent).
    #[arg(long, value_parser = mac)]
    pub(crate) dst_mac: Option<MacAddr>,
    /// AF_XDP: NIC queues to send on (one socket and TX thread each).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub(crate) queues: u32,
    /// AF_XDP: TX ring size (descriptors, a power of two).
    #[arg(long, default_value_t = xsend::options::DEFAULT_RING_SIZE, value_parser = ring_size)]
    pub(crate) ring_size: u32,
    /// AF_XDP: UDP/TCP checksums offloaded (TX metadata; on veth the peer's stack trusts
    /// them and a capture there shows the partial sum) or computed in software.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) checksum: ChecksumArg,
    /// AF_XDP: file bytes read into the frames (`copy`) or sent from the file's own
    /// pages mapped into the UMEM (`zero-copy`: tmpfs or memfd files); `auto`
    /// takes zero-copy where it is faster (a zero-copy NIC queue).
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) payload: PayloadArg,
    /// AF_XDP: 802.1Q VLAN id for the frames (1-4094).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=4094))]
    pub(crate) vlan: Option<u16>,
    /// DPDK: EAL arguments, split at spaces, e.g. "--vdev=net_af_xdp0,iface=eth1" or
    /// "-a 0000:81:00.0" (xsend adds a file prefix of its own, --in-memory with huge pages,
    /// and without a PCI device --no-pci --no-huge -m 256 --no-shconf).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) dpdk_args: Option<String>,
    /// DPDK: the port to send on.
    #[arg(long, default_value_t = 0)]
    pub(crate) dpdk_port: u16,
    /// DPDK: our IP address on the port (default: the address of the kernel interface
    /// behind a vdev).
    #[arg(long)]
    pub(crate) src_ip: Option<IpAddr>,
}

impl XdpArgs {
    /// Set these options (and the interface) on a connection builder.
    pub(crate) fn apply(&self, iface: &Option<String>, b: ConnectionBuilder) -> ConnectionBuilder {
        let mut b = b
            .queues(self.queues)
            .ring_size(self.ring_size)
            .checksum(self.checksum.into())
            .payload(match self.payload {
                PayloadArg::Auto => PayloadChoice::Auto,
                PayloadArg::Copy => PayloadChoice::Copy,
                PayloadArg::ZeroCopy => PayloadChoice::ZeroCopy,
            });
        if let Some(i) = iface {
            b = b.iface(i.clone());
        }
        if let Some(m) = self.dst_mac {
            b = b.dst_mac(m);
        }
        if let Some(v) = self.vlan {
            b = b.vlan(v);
        }
        b.dpdk(xsend::DpdkOptions {
            eal_args: self
                .dpdk_args
                .as_deref()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            port: self.dpdk_port,
            src_ip: self.src_ip,
        })
    }
}

/// Seconds (`2`, `0.5`): finite, above 0, at most a year.
pub(crate) fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("not a number of seconds: {s:?}"))?;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("{s}: seconds must be a finite number above 0"));
    }
    if v > MAX_SECONDS {
        return Err(format!("{s}: at most {MAX_SECONDS} seconds (a year)"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// The longest time any option may name.
const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// A MAC address `aa:bb:cc:dd:ee:ff` (or with `-`).
pub(crate) fn mac(s: &str) -> Result<MacAddr, String> {
    s.parse()
        .map_err(|_| format!("not a MAC address: {s:?} (six hex bytes, e.g. 02:00:00:00:00:01)"))
}

/// A ring size: a power of two from 64 to 32768.
fn ring_size(s: &str) -> Result<u32, String> {
    let v: u32 = s.parse().map_err(|_| format!("not a number: {s:?}"))?;
    if !v.is_power_of_two() || !(64..=32768).contains(&v) {
        return Err(format!("{v}: a power of two from 64 to 32768"));
    }
    Ok(v)
}

/// `--chunk`: `auto`, `none` or a byte count above 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Chunk {
    Auto,
    None,
    Bytes(u32),
}

pub(crate) fn chunk(s: &str) -> Result<Chunk, String> {
    match s {
        "auto" => Ok(Chunk::Auto),
        "none" => Ok(Chunk::None),
        n => n
            .parse::<u32>()
            .ok()
            .filter(|&n| n > 0 && n != u32::MAX)
            .map(Chunk::Bytes)
            .ok_or_else(|| format!("{n:?}: expected auto, none or a byte count above 0")),
    }
}

/// A port range `A-B` (or one port).
pub(crate) fn port_range(s: &str) -> Result<(u16, u16), String> {
    ordered(parse_range(s).map_err(|e| e.to_string())?, s)
}

/// An address range `A-B` (or one address), both of one family.
pub(crate) fn ip_range(s: &str) -> Result<(IpAddr, IpAddr), String> {
    let (a, b): (IpAddr, IpAddr) = parse_range(s).map_err(|e| e.to_string())?;
    if a.is_ipv4() != b.is_ipv4() {
        return Err(format!("{s}: both ends must be of one address family"));
    }
    ordered((a, b), s)
}

fn ordered<T: PartialOrd>(r: (T, T), s: &str) -> Result<(T, T), String> {
    if r.0 > r.1 {
        return Err(format!("{s}: the range must go upwards (A-B with A <= B)"));
    }
    Ok(r)
}

/// Frame sizes: `64`, a list, weights or `imix` (checked like the generator does).
pub(crate) fn sizes(s: &str) -> Result<Imix, String> {
    Imix::parse(s)
}

/// A rate in packets or bits per second: `1000000`, `1.5M`, `10G`, `800k`, from 0.001 to
/// 10^12.
pub(crate) fn rate(s: &str) -> Result<f64, String> {
    parse_rate(s).map_err(|e| e.to_string())
}

/// An inclusive range `A-B` (or a single value `A`).
fn parse_range<T: std::str::FromStr>(s: &str) -> anyhow::Result<(T, T)> {
    // IPv6 addresses contain no '-', so the first '-' splits.
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let p = |x: &str| {
        x.trim()
            .parse::<T>()
            .map_err(|_| anyhow::anyhow!("{s}: expected A-B"))
    };
    Ok((p(a)?, p(b)?))
}

/// A rate like `1000000`, `1.5M`, `10G`, `800k`.
pub(crate) fn parse_rate(s: &str) -> anyhow::Result<f64> {
    let s = s.trim();
    let (num, mul) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1e3),
        Some('m' | 'M') => (&s[..s.len() - 1], 1e6),
        Some('g' | 'G') => (&s[..s.len() - 1], 1e9),
        _ => (s, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("not a rate: {s:?} (e.g. 1000000, 1.5M, 10G)"))?;
    let v = v * mul;
    if !(1e-3..=1e12).contains(&v) {
        bail!("{s}: a rate from 0.001 to 10^12 per second");
    }
    Ok(v)
}
