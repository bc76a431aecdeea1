//! Keeping the kernel out of a DPDK TCP connection. A vdev such as `net_af_packet` taps the
//! kernel interface without taking its packets away: the kernel also gets the peer's
//! segments for our port, finds no socket in a state to take them, and resets the
//! connection. An nftables rule in the interface's namespace drops them at the input hook,
//! after the PMD's tap has seen them; the table is removed when the connection ends, and
//! tables of xsend processes that no longer run are removed by the next one.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};

/// An nftables table dropping the peer's segments to our port before the kernel's TCP.
pub(crate) struct KernelBlind {
    table: String,
}

fn nft(script: &str) -> std::io::Result<std::process::Output> {
    let mut c = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut i) = c.stdin.take() {
        i.write_all(script.as_bytes())?;
    }
    c.wait_with_output()
}

/// Tables left by xsend processes that are gone (SIGKILL).
fn remove_stale() {
    let Ok(out) = Command::new("nft")
        .args(["list", "tables", "inet"])
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(t) = line.strip_prefix("table inet ") else {
            continue;
        };
        let Some(pid) = t
            .strip_prefix("xsend_")
            .and_then(|r| r.split('_').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = nft(&format!("delete table inet {t}\n"));
        }
    }
}

impl KernelBlind {
    /// Drop TCP segments from `peer` to `local` (ours) on `iface` before the kernel's TCP.
    pub(crate) fn install(iface: &str, local: SocketAddr, peer: SocketAddr) -> Result<Self> {
        remove_stale();
        static N: AtomicU32 = AtomicU32::new(0);
        let table = format!(
            "xsend_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let fam = if peer.is_ipv4() { "ip" } else { "ip6" };
        let script = format!(
            "table inet {table} {{\n  chain input {{\n    type filter hook input priority -400; policy accept;\n    iifname \"{iface}\" {fam} saddr {} {fam} daddr {} tcp sport {} tcp dport {} drop\n  }}\n}}\n",
            peer.ip(),
            local.ip(),
            peer.port(),
            local.port()
        );
        let out = nft(&script).map_err(|e| {
            Error::io(
                "running nft (nftables) to keep the kernel's TCP off the DPDK connection",
                e,
            )
        })?;
        if !out.status.success() {
            return Err(Error::io(
                format!("nft: a rule keeping the kernel's TCP off {iface}"),
                std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            ));
        }
        Ok(KernelBlind { table })
    }
}

impl Drop for KernelBlind {
    fn drop(&mut self) {
        let _ = nft(&format!("delete table inet {}\n", self.table));
    }
}
