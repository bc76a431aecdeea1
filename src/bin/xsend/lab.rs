//! `xsend lab`: veth labs (two namespaces joined by a veth pair) to try xsend on.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use xsend::lab::{DutConfig, DutLab, Lab, LabConfig};

use crate::demo;

#[derive(Subcommand)]
pub(crate) enum LabCmd {
    /// Create a lab and leave it running; prints its names and addresses.
    Up(LabArgs),
    /// Remove a lab made by `lab up`.
    Down {
        /// Lab name.
        #[arg(value_parser = lab_name)]
        name: String,
    },
    /// Run a command inside one side of a lab (`a` sends, `b` receives).
    Exec {
        /// Lab name.
        #[arg(value_parser = lab_name)]
        name: String,
        /// `a` or `b` (`d`: the DUT of a DUT lab).
        #[arg(value_parser = ["a", "b", "d", "A", "B", "D"])]
        side: String,
        /// Command and arguments.
        #[arg(trailing_var_arg = true, required = true)]
        cmd: Vec<String>,
    },
    /// Build a lab, send a generated file over TCP and chunked UDP to `xsend recv` in the peer
    /// namespace, verify sha256, print a table, remove the lab.
    Demo(demo::DemoArgs),
}

#[derive(Args)]
pub(crate) struct LabArgs {
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u32).range(68..=65535))]
    mtu: u32,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    queues: u32,
    /// No IPv6 addresses (IPv6 disabled on the lab interfaces).
    #[arg(long)]
    no_ipv6: bool,
    /// Lab name (default: generated, unique).
    #[arg(long, value_parser = lab_name)]
    name: Option<String>,
    /// `pair`: two namespaces joined by a veth pair. `dut`: tester port A ↔ a DUT namespace
    /// forwarding between two veths ↔ tester port B (198.18.0.1 → 198.19.0.2 via the DUT).
    #[arg(long, value_enum, default_value = "pair")]
    topology: Topology,
    /// DUT topology: packets/s the DUT forwards at most (an nftables policer in its forward
    /// path), e.g. 500k.
    #[arg(long, value_parser = crate::args::rate, requires = "topology")]
    dut_rate: Option<f64>,
    #[arg(long)]
    json: bool,
}

/// Lab shapes.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Topology {
    Pair,
    Dut,
}

pub(crate) fn run(l: LabCmd) -> anyhow::Result<ExitCode> {
    match l {
        LabCmd::Up(a) if a.topology == Topology::Dut => {
            if a.queues != 1 {
                bail!("--queues applies to the pair topology only");
            }
            let lab = DutLab::up(&DutConfig {
                mtu: a.mtu,
                rate_pps: a.dut_rate,
                name: a.name,
            })?
            .keep();
            if a.json {
                println!("{}", serde_json::to_string(&lab)?);
            } else {
                println!(
                    "lab {}: {} ({} {}) <-> DUT {} ({} {} | {} {}{}) <-> {} ({} {}), mtu {}\nsend from {} to {}; remove with: xsend lab down {}",
                    lab.name,
                    lab.ns_a,
                    lab.if_a,
                    lab.ip4_a,
                    lab.ns_d,
                    lab.if_da,
                    lab.ip4_da,
                    lab.if_db,
                    lab.ip4_db,
                    lab.rate_pps
                        .map(|r| format!(", policed at {r:.0} packets/s"))
                        .unwrap_or_default(),
                    lab.ns_b,
                    lab.if_b,
                    lab.ip4_b,
                    lab.mtu,
                    lab.ns_a,
                    lab.ip4_b,
                    lab.name
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCmd::Up(a) => {
            if a.dut_rate.is_some() {
                bail!("--dut-rate needs --topology dut");
            }
            let lab = Lab::up(&LabConfig {
                mtu: a.mtu,
                queues: a.queues,
                ipv6: !a.no_ipv6,
                name: a.name,
            })?
            .keep();
            if a.json {
                println!("{}", serde_json::to_string(&lab)?);
            } else {
                println!(
                    "lab {}: {} ({} {} {}) <-> {} ({} {} {}), mtu {}, {} queue(s)\nremove with: xsend lab down {}",
                    lab.name,
                    lab.ns_a,
                    lab.if_a,
                    lab.ip4_a,
                    lab.ip6_a.map(|a| a.to_string()).unwrap_or_default(),
                    lab.ns_b,
                    lab.if_b,
                    lab.ip4_b,
                    lab.ip6_b.map(|a| a.to_string()).unwrap_or_default(),
                    lab.mtu,
                    lab.queues,
                    lab.name
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCmd::Down { name } => {
            Lab::remove(&name)?;
            Ok(ExitCode::SUCCESS)
        }
        LabCmd::Exec { name, side, cmd } => {
            let ns = format!("{name}{}", side.to_ascii_lowercase());
            if !std::path::Path::new("/run/netns").join(&ns).exists() {
                bail!("no lab named {name} (namespace {ns} does not exist)");
            }
            let st = std::process::Command::new("ip")
                .args(["netns", "exec", &ns])
                .args(&cmd)
                .status()
                .context("running ip netns exec")?;
            Ok(ExitCode::from(st.code().unwrap_or(1).clamp(0, 255) as u8))
        }
        LabCmd::Demo(a) => demo::run(a),
    }
}

/// A lab name as a value parser: a bad one is a usage error.
pub(crate) fn lab_name(s: &str) -> Result<String, String> {
    xsend::lab::check_name(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}
