//! `xsend lab`: veth labs (two namespaces joined by a veth pair) to try xsend on.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use xsend::lab::{Lab, LabConfig};

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
        /// `a` or `b`.
        #[arg(value_parser = ["a", "b", "A", "B"])]
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
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(l: LabCmd) -> anyhow::Result<ExitCode> {
    match l {
        LabCmd::Up(a) => {
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
            let ns = match side.as_str() {
                "a" | "A" => format!("{name}a"),
                _ => format!("{name}b"),
            };
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
