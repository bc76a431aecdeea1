//! Arguments shared by several subcommands: protocol, backend and checksum choices, the
//! AF_XDP options (declared once, flattened into `send` and `bench`), and value parsers.

use anyhow::bail;
use clap::{Args, ValueEnum};
use xsend::wire::ethernet::MacAddr;
use xsend::{BackendChoice, ChecksumChoice, ConnectionBuilder, Proto};

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
}

impl From<BackendArg> for BackendChoice {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Kernel => BackendChoice::Kernel,
            BackendArg::Xdp => BackendChoice::Xdp,
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

/// The AF_XDP options of `send` and `bench`.
#[derive(Args)]
pub(crate) struct XdpArgs {
    /// AF_XDP: destination MAC (default: the kernel's neighbour table, resolved if absent).
    #[arg(long)]
    pub(crate) dst_mac: Option<MacAddr>,
    /// AF_XDP: NIC queues to send on (one socket and TX thread each).
    #[arg(long, default_value_t = 1)]
    pub(crate) queues: u32,
    /// AF_XDP: TX ring size (descriptors).
    #[arg(long, default_value_t = xsend::options::DEFAULT_RING_SIZE)]
    pub(crate) ring_size: u32,
    /// AF_XDP: UDP/TCP checksums offloaded (TX metadata; on veth the peer's stack trusts
    /// them and a capture there shows the partial sum) or computed in software.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) checksum: ChecksumArg,
    /// AF_XDP: 802.1Q VLAN id for the frames.
    #[arg(long)]
    pub(crate) vlan: Option<u16>,
}

impl XdpArgs {
    /// Set these options (and the interface) on a connection builder.
    pub(crate) fn apply(&self, iface: &Option<String>, b: ConnectionBuilder) -> ConnectionBuilder {
        let mut b = b
            .queues(self.queues)
            .ring_size(self.ring_size)
            .checksum(self.checksum.into());
        if let Some(i) = iface {
            b = b.iface(i.clone());
        }
        if let Some(m) = self.dst_mac {
            b = b.dst_mac(m);
        }
        if let Some(v) = self.vlan {
            b = b.vlan(v);
        }
        b
    }
}

/// An inclusive range `A-B` (or a single value `A`).
pub(crate) fn parse_range<T: std::str::FromStr>(s: &str, what: &str) -> anyhow::Result<(T, T)> {
    // IPv6 addresses contain no '-', so the first '-' splits.
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let p = |x: &str| {
        x.trim()
            .parse::<T>()
            .map_err(|_| anyhow::anyhow!("--{what} {s}: expected A-B"))
    };
    Ok((p(a)?, p(b)?))
}

/// An optional range option (`--src-ports` etc.).
pub(crate) fn opt_range<T: std::str::FromStr>(
    r: &Option<String>,
    what: &str,
) -> anyhow::Result<Option<(T, T)>> {
    r.as_deref().map(|r| parse_range(r, what)).transpose()
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
    if v.is_nan() || v <= 0.0 {
        bail!("rate must be above 0");
    }
    Ok(v * mul)
}
