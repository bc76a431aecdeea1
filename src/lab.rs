//! A veth lab: two network namespaces ("a" sends, "b" receives) joined by a veth pair, with
//! addresses from the benchmark ranges 198.18.0.0/15 and 2001:db8::/32, permanent neighbour
//! entries both ways (AF_XDP frames bypass ARP), configurable MTU and queue count; or, as a
//! [`DutLab`], a device under test between two tester ports.
//!
//! Names are unique per process and lab (`xs<pid>n<counter>`), and everything is removed when
//! the [`Lab`] is dropped, including on panic. The lab drives iproute2 (`ip`), which every
//! Debian machine has, rather than a netlink crate: it needs namespaces, veth and neighbour
//! entries once per lab, nothing on a hot path.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::sys;

mod dut;
pub use dut::{DutConfig, DutLab};

/// Check a lab name: 1-14 ASCII letters or digits (its interfaces are the name plus one
/// letter, and interface names are limited to 15 characters).
pub fn check_name(name: &str) -> Result<()> {
    if name.len() > 14 || name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::InvalidOption(format!(
            "lab name {name:?}: 1-14 ASCII letters/digits (interface names are limited to 15)"
        )));
    }
    Ok(())
}

fn netns_exists(ns: &str) -> bool {
    std::path::Path::new("/run/netns").join(ns).exists()
}

/// Move the calling thread into the network namespace `name` (`/run/netns/NAME`, as `ip
/// netns` makes them): what `--netns` does.
pub fn enter_netns(name: &str) -> Result<()> {
    sys::thread::enter_netns(name)
        .map_err(|e| Error::io(format!("entering network namespace {name}"), e))
}

/// Which end of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The sending namespace.
    A,
    /// The receiving (peer) namespace.
    B,
}

/// Lab settings.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Interface MTU (default 1500).
    pub mtu: u32,
    /// TX/RX queues of each veth end (default 1).
    pub queues: u32,
    /// Give the interfaces IPv6 addresses (default true). Off: IPv6 is disabled on them,
    /// so nothing but the test's own traffic moves the interface counters.
    pub ipv6: bool,
    /// Name to use instead of a generated unique one.
    pub name: Option<String>,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            mtu: 1500,
            queues: 1,
            ipv6: true,
            name: None,
        }
    }
}

/// Interface counters of one lab end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets dropped on receive.
    pub rx_dropped: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Packets dropped on send.
    pub tx_dropped: u64,
}

/// A running lab. Dropping it removes both namespaces (and with them the veth pair).
#[derive(Debug, Serialize)]
pub struct Lab {
    /// Lab name (namespaces are `<name>a`, `<name>b`).
    pub name: String,
    /// Sender namespace.
    pub ns_a: String,
    /// Receiver namespace.
    pub ns_b: String,
    /// Sender interface (in `ns_a`).
    pub if_a: String,
    /// Receiver interface (in `ns_b`).
    pub if_b: String,
    /// Sender MAC.
    pub mac_a: String,
    /// Receiver MAC.
    pub mac_b: String,
    /// Sender IPv4.
    pub ip4_a: Ipv4Addr,
    /// Receiver IPv4.
    pub ip4_b: Ipv4Addr,
    /// Sender IPv6 (if enabled).
    pub ip6_a: Option<Ipv6Addr>,
    /// Receiver IPv6 (if enabled).
    pub ip6_b: Option<Ipv6Addr>,
    /// MTU.
    pub mtu: u32,
    /// Queues per veth end.
    pub queues: u32,
    #[serde(skip)]
    keep: bool,
    /// Which namespaces (a, b) this value created: only those are removed on drop.
    #[serde(skip)]
    made: [bool; 2],
}

/// Run `ip` (or another tool) and turn a failure into an error with its stderr.
fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::io(
                format!("{:?} not found (install iproute2)", cmd.get_program()),
                e,
            )
        } else {
            Error::io(format!("running {cmd:?}"), e)
        }
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.contains("Operation not permitted") || stderr.contains("Permission denied") {
            return Err(Error::NoPermission {
                what: format!("{cmd:?} failed: {stderr}"),
            });
        }
        return Err(Error::io(
            format!("{cmd:?} failed"),
            std::io::Error::other(stderr),
        ));
    }
    Ok(out)
}

fn ip(args: &[&str]) -> Result<Output> {
    run(Command::new("ip").args(args))
}

impl Lab {
    /// Build a lab. Needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN).
    pub fn up(cfg: &LabConfig) -> Result<Lab> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = cfg.name.clone().unwrap_or_else(|| {
            format!(
                "xs{}n{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            )
        });
        check_name(&name)?;
        for ns in [format!("{name}a"), format!("{name}b")] {
            if netns_exists(&ns) {
                // Never touch what is there: it may be a running lab.
                return Err(Error::InvalidOption(format!(
                    "lab {name} already exists (namespace {ns}); remove it first with `xsend lab down {name}` or choose another --name"
                )));
            }
        }
        let mut lab = Lab {
            ns_a: format!("{name}a"),
            ns_b: format!("{name}b"),
            if_a: format!("{name}a"),
            if_b: format!("{name}b"),
            mac_a: "02:58:53:00:00:0a".into(),
            mac_b: "02:58:53:00:00:0b".into(),
            ip4_a: Ipv4Addr::new(198, 18, 0, 1),
            ip4_b: Ipv4Addr::new(198, 18, 0, 2),
            ip6_a: cfg
                .ipv6
                .then(|| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            ip6_b: cfg
                .ipv6
                .then(|| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
            mtu: cfg.mtu,
            queues: cfg.queues.max(1),
            name,
            // Until fully built, a failure removes what was made, and only that.
            keep: false,
            made: [false, false],
        };
        lab.build(cfg)?;
        Ok(lab)
    }

    fn build(&mut self, cfg: &LabConfig) -> Result<()> {
        ip(&["netns", "add", &self.ns_a])?;
        self.made[0] = true;
        ip(&["netns", "add", &self.ns_b])?;
        self.made[1] = true;
        let q = self.queues.to_string();
        let mtu = cfg.mtu.to_string();
        ip(&[
            "link",
            "add",
            &self.if_a,
            "address",
            &self.mac_a,
            "netns",
            &self.ns_a,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &self.if_b,
            "address",
            &self.mac_b,
            "netns",
            &self.ns_b,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
        ])?;
        let sides = [
            (
                &self.ns_a,
                &self.if_a,
                self.ip4_a,
                self.ip6_a,
                self.ip4_b,
                self.ip6_b,
                &self.mac_b,
            ),
            (
                &self.ns_b,
                &self.if_b,
                self.ip4_b,
                self.ip6_b,
                self.ip4_a,
                self.ip6_a,
                &self.mac_a,
            ),
        ];
        for (ns, ifname, my4, my6, peer4, peer6, peer_mac) in sides {
            if !cfg.ipv6 {
                run(Command::new("ip")
                    .args(["netns", "exec", ns, "sysctl", "-qw"])
                    .arg(format!("net.ipv6.conf.{ifname}.disable_ipv6=1")))?;
            }
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", ifname, "mtu", &mtu])?;
            ip(&["-n", ns, "addr", "add", &format!("{my4}/24"), "dev", ifname])?;
            ip(&[
                "-n",
                ns,
                "neigh",
                "replace",
                &peer4.to_string(),
                "lladdr",
                peer_mac,
                "dev",
                ifname,
                "nud",
                "permanent",
            ])?;
            if let (Some(my6), Some(peer6)) = (my6, peer6) {
                ip(&[
                    "-n",
                    ns,
                    "-6",
                    "addr",
                    "add",
                    &format!("{my6}/64"),
                    "dev",
                    ifname,
                    "nodad",
                ])?;
                ip(&[
                    "-n",
                    ns,
                    "-6",
                    "neigh",
                    "replace",
                    &peer6.to_string(),
                    "lladdr",
                    peer_mac,
                    "dev",
                    ifname,
                    "nud",
                    "permanent",
                ])?;
            }
            ip(&["-n", ns, "link", "set", ifname, "up"])?;
        }
        // The kernel reports a new link as running (IFF_RUNNING, operstate UP) only once its
        // link-watch work has run, up to a second later; until then xsend would rightly call
        // the interface down. A lab is ready when both ends are running.
        wait_running(&[
            (self.ns(Side::A), self.iface(Side::A)),
            (self.ns(Side::B), self.iface(Side::B)),
        ])
    }

    /// Keep the namespaces after this value is dropped (`xsend lab up`).
    pub fn keep(mut self) -> Self {
        self.keep = true;
        self
    }

    /// Remove a lab by name (`xsend lab down`). Missing namespaces are not an error.
    pub fn remove(name: &str) -> Result<()> {
        check_name(name)?;
        let mut found = false;
        for suffix in ["a", "b", "d"] {
            let ns = format!("{name}{suffix}");
            if netns_exists(&ns) {
                ip(&["netns", "del", &ns])?;
                found = true;
            }
        }
        if !found {
            return Err(Error::InvalidOption(format!(
                "no lab named {name} (neither namespace {name}a nor {name}b exists)"
            )));
        }
        Ok(())
    }

    /// True if a lab of this name (any of its namespaces) exists.
    pub fn exists(name: &str) -> bool {
        ["a", "b", "d"]
            .iter()
            .any(|s| netns_exists(&format!("{name}{s}")))
    }

    /// Namespace of a side.
    pub fn ns(&self, side: Side) -> &str {
        match side {
            Side::A => &self.ns_a,
            Side::B => &self.ns_b,
        }
    }

    /// Interface of a side.
    pub fn iface(&self, side: Side) -> &str {
        match side {
            Side::A => &self.if_a,
            Side::B => &self.if_b,
        }
    }

    /// Run `f` on a thread inside a side's namespace. Sockets made there stay in that
    /// namespace and may be used from any thread afterwards.
    pub fn run_in<T: Send>(&self, side: Side, f: impl FnOnce() -> T + Send) -> Result<T> {
        run_in_netns(self.ns(side), f)
    }

    /// A command that runs `program` inside a side's namespace (`ip netns exec`).
    pub fn command(&self, side: Side, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.ns(side)]).arg(program);
        c
    }

    /// A counting sink on a side's interface: an XDP program that counts the UDP and TCP
    /// frames arriving there and drops them (`drop`: the fastest receiver there is, as a
    /// benchmark's drop sink) or passes them on to the kernel (captures and sockets still
    /// see them); other frames (ARP, ND) always pass. With it, the other side's veth takes
    /// redirected frames (live frames). Removed when dropped.
    pub fn sink(&self, side: Side, drop: bool) -> Result<Sink> {
        attach_sink(self.ns(side), self.iface(side), drop)
    }

    /// Interface counters of a side.
    pub fn stats(&self, side: Side) -> Result<LinkStats> {
        let out = ip(&[
            "-n",
            self.ns(side),
            "-j",
            "-s",
            "link",
            "show",
            "dev",
            self.iface(side),
        ])?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| Error::io("parsing ip -j output", std::io::Error::other(e)))?;
        let s = &v[0]["stats64"];
        let g = |a: &str, b: &str| s[a][b].as_u64().unwrap_or(0);
        Ok(LinkStats {
            rx_packets: g("rx", "packets"),
            rx_bytes: g("rx", "bytes"),
            rx_dropped: g("rx", "dropped"),
            tx_packets: g("tx", "packets"),
            tx_dropped: g("tx", "dropped"),
        })
    }
}

/// Wait until every (namespace, interface) runs: the kernel reports a new link as running
/// (IFF_RUNNING, operstate UP) only once its link-watch work has run, up to a second later,
/// and until then xsend would rightly call it down. At most 5 s.
fn wait_running(ifaces: &[(&str, &str)]) -> Result<()> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    for &(ns, ifname) in ifaces {
        loop {
            let (n, i) = (ns.to_string(), ifname.to_string());
            let up = std::thread::spawn(move || {
                sys::thread::enter_netns(&n).is_ok() && sys::netdev::if_running(&i).unwrap_or(false)
            })
            .join()
            .unwrap_or(false);
            if up {
                break;
            }
            if std::time::Instant::now() >= until {
                return Err(Error::InterfaceDown {
                    name: ifname.to_string(),
                    source: std::io::Error::other("not running 5 s after the lab was built"),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    Ok(())
}

/// Attach a counting sink to `ifname` in namespace `ns`.
fn attach_sink(ns: &str, ifname: &str, drop: bool) -> Result<Sink> {
    let (ns, ifname) = (ns.to_string(), ifname.to_string());
    std::thread::scope(|s| {
        s.spawn(move || {
            sys::thread::enter_netns(&ns)
                .map_err(|e| Error::io(format!("entering netns {ns}"), e))?;
            let idx =
                sys::netdev::if_nametoindex(&ifname).ok_or_else(|| Error::InterfaceNotFound {
                    name: ifname.clone(),
                })?;
            crate::device::xdp::SinkProg::attach(idx, &ifname, drop).map(|prog| Sink { prog })
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// A counting XDP sink on a lab interface ([`Lab::sink`]); detached when dropped.
pub struct Sink {
    prog: crate::device::xdp::SinkProg,
}

impl Sink {
    /// Attach a counting sink to `ifname` (in network namespace `netns`, or the calling
    /// thread's): a receiving port of its own (`xsend ndr --rx-iface`).
    pub fn attach(netns: Option<&str>, ifname: &str, drop: bool) -> Result<Sink> {
        match netns {
            Some(ns) => attach_sink(ns, ifname, drop),
            None => {
                let idx = sys::netdev::if_nametoindex(ifname).ok_or_else(|| {
                    Error::InterfaceNotFound {
                        name: ifname.to_string(),
                    }
                })?;
                crate::device::xdp::SinkProg::attach(idx, ifname, drop).map(|prog| Sink { prog })
            }
        }
    }

    /// UDP/TCP frames counted so far.
    pub fn frames(&self) -> Result<u64> {
        self.prog.counts().map(|c| c.0)
    }

    /// Their bytes (Ethernet frames without FCS).
    pub fn bytes(&self) -> Result<u64> {
        self.prog.counts().map(|c| c.1)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.keep {
            for (ns, made) in [(&self.ns_a, self.made[0]), (&self.ns_b, self.made[1])] {
                if made {
                    let _ = ip(&["netns", "del", ns]);
                }
            }
        }
    }
}

/// Run `f` on a thread that has entered network namespace `ns` (the caller's thread stays
/// where it is).
pub fn run_in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(move || {
            sys::thread::enter_netns(ns)
                .map_err(|e| Error::io(format!("entering netns {ns}"), e))?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}
