//! The device-under-test topology (`xsend lab up --topology dut`): tester port A ↔ a DUT
//! namespace that forwards between its two veths (Linux routing, its own addresses and
//! routes) ↔ tester port B, so that what A sends toward B crosses a real forwarding device.
//! An optional policer in the DUT's forward path (`--dut-rate`: nftables `limit rate over N/second
//! drop`, counted; this kernel has no tc police action) gives it a known capacity; an RFC 2544
//! search must find it.
//!
//! ```text
//!  {name}a: 198.18.0.1/24  ──  {name}da: 198.18.0.2/24  [{name}d forwards]  {name}db: 198.19.0.1/24  ──  {name}b: 198.19.0.2/24
//! ```
//!
//! The DUT's receiving veth has GRO on: a veth takes redirected frames (live frames) only
//! when its peer has an XDP program or GRO.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::Serialize;

use super::{attach_sink, check_name, ip, netns_exists, run, wait_running, Sink};
use crate::error::{Error, Result};

/// DUT topology settings.
#[derive(Debug, Clone)]
pub struct DutConfig {
    /// MTU of every interface (default 1500).
    pub mtu: u32,
    /// Packets per second the DUT forwards at most (a policer in its forward path; `None`:
    /// no limit but its own speed).
    pub rate_pps: Option<f64>,
    /// Name to use instead of a generated unique one (1-13 letters/digits).
    pub name: Option<String>,
}

impl Default for DutConfig {
    fn default() -> Self {
        DutConfig {
            mtu: 1500,
            rate_pps: None,
            name: None,
        }
    }
}

/// A running DUT lab: three namespaces, removed when dropped unless kept.
#[derive(Debug, Serialize)]
pub struct DutLab {
    /// Lab name (namespaces `{name}a`, `{name}d`, `{name}b`).
    pub name: String,
    /// Tester port A's namespace and interface (the sender).
    pub ns_a: String,
    /// Tester port A's interface.
    pub if_a: String,
    /// The DUT's namespace.
    pub ns_d: String,
    /// The DUT's interface toward A.
    pub if_da: String,
    /// The DUT's interface toward B.
    pub if_db: String,
    /// Tester port B's namespace (the receiving port).
    pub ns_b: String,
    /// Tester port B's interface.
    pub if_b: String,
    /// MACs of A, DUT-A, DUT-B and B.
    pub macs: [String; 4],
    /// A's address.
    pub ip4_a: Ipv4Addr,
    /// The DUT's address toward A (A's gateway).
    pub ip4_da: Ipv4Addr,
    /// The DUT's address toward B.
    pub ip4_db: Ipv4Addr,
    /// B's address (where streams are sent).
    pub ip4_b: Ipv4Addr,
    /// MTU.
    pub mtu: u32,
    /// The DUT's policer, packets/s.
    pub rate_pps: Option<f64>,
    #[serde(skip)]
    keep: bool,
    #[serde(skip)]
    made: [bool; 3],
}

impl DutLab {
    /// Build the topology. Needs root.
    pub fn up(cfg: &DutConfig) -> Result<DutLab> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = cfg.name.clone().unwrap_or_else(|| {
            format!(
                "xd{}n{}",
                std::process::id() % 1_000_000,
                COUNTER.fetch_add(1, Ordering::Relaxed)
            )
        });
        check_name(&name)?;
        if name.len() > 13 {
            return Err(Error::InvalidOption(format!(
                "lab name {name:?}: at most 13 characters for a DUT lab (its DUT interfaces add two)"
            )));
        }
        if let Some(r) = cfg.rate_pps.filter(|r| !r.is_finite() || *r < 1.0) {
            return Err(Error::InvalidOption(format!(
                "DUT rate {r}: at least 1 packet/s"
            )));
        }
        for s in ["a", "d", "b"] {
            if netns_exists(&format!("{name}{s}")) {
                return Err(Error::InvalidOption(format!(
                    "lab {name} already exists (namespace {name}{s}); remove it first with `xsend lab down {name}` or choose another --name"
                )));
            }
        }
        let mut lab = DutLab {
            ns_a: format!("{name}a"),
            if_a: format!("{name}a"),
            ns_d: format!("{name}d"),
            if_da: format!("{name}da"),
            if_db: format!("{name}db"),
            ns_b: format!("{name}b"),
            if_b: format!("{name}b"),
            macs: [
                "02:58:53:00:01:0a".into(),
                "02:58:53:00:01:da".into(),
                "02:58:53:00:01:db".into(),
                "02:58:53:00:01:0b".into(),
            ],
            ip4_a: Ipv4Addr::new(198, 18, 0, 1),
            ip4_da: Ipv4Addr::new(198, 18, 0, 2),
            ip4_db: Ipv4Addr::new(198, 19, 0, 1),
            ip4_b: Ipv4Addr::new(198, 19, 0, 2),
            mtu: cfg.mtu,
            rate_pps: cfg.rate_pps,
            name,
            keep: false,
            made: [false; 3],
        };
        lab.build()?;
        Ok(lab)
    }

    fn build(&mut self) -> Result<()> {
        for (i, ns) in [&self.ns_a, &self.ns_d, &self.ns_b].into_iter().enumerate() {
            ip(&["netns", "add", ns])?;
            self.made[i] = true;
        }
        let mtu = self.mtu.to_string();
        let m = &self.macs;
        for (ns1, if1, mac1, ns2, if2, mac2) in [
            (
                &self.ns_a,
                &self.if_a,
                &m[0],
                &self.ns_d,
                &self.if_da,
                &m[1],
            ),
            (
                &self.ns_d,
                &self.if_db,
                &m[2],
                &self.ns_b,
                &self.if_b,
                &m[3],
            ),
        ] {
            ip(&[
                "link", "add", if1, "address", mac1, "netns", ns1, "mtu", &mtu, "type", "veth",
                "peer", "name", if2, "address", mac2, "netns", ns2, "mtu", &mtu,
            ])?;
        }
        let (a, da, db, b) = (
            self.ip4_a.to_string(),
            self.ip4_da.to_string(),
            self.ip4_db.to_string(),
            self.ip4_b.to_string(),
        );
        // Addresses, and permanent neighbours (AF_XDP and live frames bypass ARP).
        for (ns, ifname, addr, peer, peer_mac) in [
            (&self.ns_a, &self.if_a, &a, &da, &m[1]),
            (&self.ns_d, &self.if_da, &da, &a, &m[0]),
            (&self.ns_d, &self.if_db, &db, &b, &m[3]),
            (&self.ns_b, &self.if_b, &b, &db, &m[2]),
        ] {
            run(Command::new("ip")
                .args(["netns", "exec", ns, "sysctl", "-qw"])
                .arg(format!("net.ipv6.conf.{ifname}.disable_ipv6=1")))?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                ifname,
            ])?;
            ip(&[
                "-n",
                ns,
                "neigh",
                "replace",
                peer,
                "lladdr",
                peer_mac,
                "dev",
                ifname,
                "nud",
                "permanent",
            ])?;
            ip(&["-n", ns, "link", "set", ifname, "up"])?;
        }
        for ns in [&self.ns_a, &self.ns_d, &self.ns_b] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        // Routes across the DUT, and the DUT forwarding.
        ip(&[
            "-n",
            &self.ns_a,
            "route",
            "add",
            "198.19.0.0/24",
            "via",
            &da,
        ])?;
        ip(&[
            "-n",
            &self.ns_b,
            "route",
            "add",
            "198.18.0.0/24",
            "via",
            &db,
        ])?;
        run(Command::new("ip").args([
            "netns",
            "exec",
            &self.ns_d,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]))?;
        // The DUT's receiving veth takes redirected frames (live frames) with GRO on.
        run(Command::new("ip").args([
            "netns",
            "exec",
            &self.ns_d,
            "ethtool",
            "-K",
            &self.if_da,
            "gro",
            "on",
        ]))?;
        if let Some(r) = self.rate_pps {
            // A policer in the DUT's forward path (nftables `limit rate over`: packets above
            // the rate are dropped and counted), with a burst of 10 ms of packets: a DUT with
            // that much buffer. (5 ms was less than a software generator on a busy 2-core
            // machine stalls now and then; its catch-up then overflowed the bucket.)
            let nft = |args: &[&str]| {
                run(Command::new("ip")
                    .args(["netns", "exec", &self.ns_d, "nft"])
                    .args(args))
            };
            let rate = format!("{}/second", r.round() as u64);
            let burst = ((r / 100.0).round() as u64).max(32).to_string();
            nft(&["add", "table", "inet", "xsend"])?;
            nft(&[
                "add",
                "chain",
                "inet",
                "xsend",
                "policer",
                "{ type filter hook forward priority 0; policy accept; }",
            ])?;
            nft(&[
                "add", "rule", "inet", "xsend", "policer", "limit", "rate", "over", &rate, "burst",
                &burst, "packets", "counter", "drop",
            ])?;
        }
        // Ready when every interface runs (the kernel's link watch can take a second).
        wait_running(&[
            (&self.ns_a, &self.if_a),
            (&self.ns_d, &self.if_da),
            (&self.ns_d, &self.if_db),
            (&self.ns_b, &self.if_b),
        ])
    }

    /// Keep the namespaces after this value is dropped (`xsend lab up`).
    pub fn keep(mut self) -> Self {
        self.keep = true;
        self
    }

    /// A counting sink on tester port B (see [`super::Lab::sink`]).
    pub fn sink_b(&self, drop: bool) -> Result<Sink> {
        attach_sink(&self.ns_b, &self.if_b, drop)
    }

    /// Packets the DUT's policer dropped so far (0 without one).
    pub fn policed(&self) -> Result<u64> {
        if self.rate_pps.is_none() {
            return Ok(0);
        }
        let out = run(Command::new("ip").args([
            "netns", "exec", &self.ns_d, "nft", "-j", "list", "chain", "inet", "xsend", "policer",
        ]))?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| Error::io("parsing nft -j output", std::io::Error::other(e)))?;
        let mut dropped = 0;
        for item in v["nftables"].as_array().into_iter().flatten() {
            for e in item["rule"]["expr"].as_array().into_iter().flatten() {
                dropped += e["counter"]["packets"].as_u64().unwrap_or(0);
            }
        }
        Ok(dropped)
    }
}

impl Drop for DutLab {
    fn drop(&mut self) {
        if !self.keep {
            for (ns, made) in [
                (&self.ns_a, self.made[0]),
                (&self.ns_d, self.made[1]),
                (&self.ns_b, self.made[2]),
            ] {
                if made {
                    let _ = ip(&["netns", "del", ns]);
                }
            }
        }
    }
}
