//! Keeping the kernel out of a DPDK TCP connection. A vdev such as `net_af_packet` taps the
//! kernel interface without taking its packets away: the kernel also gets the peer's
//! segments for our port, finds no socket in a state to take them, and resets the
//! connection. An nftables rule in the interface's namespace drops them at the input hook,
//! after the PMD's tap has seen them.
//!
//! The rule's table is an *owner* table (`flags owner`) of an `nft -i` child that lives as
//! long as we hold its stdin: when the connection ends, or this process dies however it dies
//! (SIGKILL included), the child sees end-of-file and exits, and the kernel removes the table
//! with the netlink socket that owns it. So nothing is left behind, and after a SIGKILL the
//! peer's answer to the TCP watchdog's provocation reaches the kernel's TCP again, which
//! resets the connection (`sys::watchdog`).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use crate::error::{Error, Result};

/// Longest wait for `nft` to confirm the table (a hang guard: it takes milliseconds).
const CONFIRM: Duration = Duration::from_secs(10);

/// An nftables table dropping the peer's segments to our port before the kernel's TCP,
/// owned by an `nft -i` child: gone with the child, which goes with our end of its stdin.
pub(crate) struct KernelBlind {
    stdin: Option<ChildStdin>,
    child: Child,
}

fn nft_error(what: String, msg: impl Into<String>) -> Error {
    Error::io(what, std::io::Error::other(msg.into()))
}

impl KernelBlind {
    /// Drop TCP segments from `peer` to `local` (ours) on `iface` before the kernel's TCP.
    pub(crate) fn install(iface: &str, local: SocketAddr, peer: SocketAddr) -> Result<Self> {
        static N: AtomicU32 = AtomicU32::new(0);
        let table = format!(
            "xsend_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let fam = if peer.is_ipv4() { "ip" } else { "ip6" };
        let what = || format!("nft: a rule keeping the kernel's TCP off {iface}");
        if !iface
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
        {
            return Err(nft_error(
                what(),
                "the interface name has characters an nftables rule cannot quote safely",
            ));
        }
        // One line, one transaction: the table, its chain and the rule, or nothing.
        let script = format!(
            "add table inet {table} {{ flags owner; }}; add chain inet {table} input {{ type filter hook input priority -400; policy accept; }}; add rule inet {table} input iifname \"{iface}\" {fam} saddr {} {fam} daddr {} tcp sport {} tcp dport {} drop\nlist table inet {table}\n",
            peer.ip(),
            local.ip(),
            peer.port(),
            local.port()
        );
        let mut child = Command::new("nft")
            .arg("-i")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Not in the terminal's process group: a Ctrl-C is ours to handle, not its.
            .process_group(0)
            .spawn()
            .map_err(|e| {
                Error::io(
                    "running nft (nftables) to keep the kernel's TCP off the DPDK connection",
                    e,
                )
            })?;
        let (stdin, stdout, stderr) =
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(i), Some(o), Some(e)) => (i, o, e),
                _ => return Err(nft_error(what(), "nft's standard streams")),
            };
        let mut blind = KernelBlind {
            stdin: Some(stdin),
            child,
        };
        // The listing of the table on stdout says it is in place; an error on stderr that
        // it is not.
        let (tx, rx) = mpsc::channel::<std::result::Result<(), String>>();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            let (mut seen, mut rule) = (false, false);
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                seen |= line.starts_with("table inet");
                rule |= seen && line.trim_end().ends_with(" drop");
                if seen && line == "}" {
                    let _ = tx.send(if rule {
                        Ok(())
                    } else {
                        Err("the table holds no drop rule".into())
                    });
                }
            }
            let _ = tx.send(Err("nft exited".into()));
        });
        std::thread::spawn(move || {
            // (nft -i goes on after an error: the first error line is the answer.)
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                if line.starts_with("Error") {
                    let _ = tx2.send(Err(line));
                }
            }
        });
        let wrote = blind
            .stdin
            .as_mut()
            .map(|i| i.write_all(script.as_bytes()).and_then(|_| i.flush()));
        if let Some(Err(e)) = wrote {
            return Err(Error::io(what(), e));
        }
        let r = match rx.recv_timeout(CONFIRM) {
            Ok(Ok(())) => return Ok(blind),
            Ok(Err(msg)) => nft_error(what(), msg),
            Err(_) => nft_error(
                what(),
                format!("nft did not confirm the table in {} s", CONFIRM.as_secs()),
            ),
        };
        // (A wedged nft must not hang the way out: the drop's wait.)
        let _ = blind.child.kill();
        Err(r)
    }
}

impl Drop for KernelBlind {
    fn drop(&mut self) {
        // End of its input: nft exits, and the kernel removes the table it owns.
        self.stdin.take();
        let _ = self.child.wait();
    }
}
