//! The EAL: initialised once per process with our defaults around the user's arguments,
//! cleaned up at exit (ports closed, `rte_eal_cleanup`, runtime directory removed; after a
//! SIGKILL a dead man's switch removes the directory).

use std::ffi::CString;
use std::io;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use super::ffi;
use crate::sys::watchdog::Watchdog;

/// What the EAL was started with.
#[derive(Debug, Clone)]
pub(crate) struct EalInfo {
    /// The arguments EAL got (ours and the user's), without argv[0].
    pub(crate) args: Vec<String>,
}

static EAL: OnceLock<Result<EalInfo, String>> = OnceLock::new();
/// Ports started by this process: closed at exit before the EAL is cleaned up (a PMD such
/// as net_af_xdp removes its XDP program from the interface only when its port is closed).
pub(super) static OPEN_PORTS: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// Where DPDK keeps a process's runtime files (`/var/run/dpdk` as root).
fn runtime_base() -> PathBuf {
    // SAFETY: getuid cannot fail.
    if unsafe { libc::getuid() } == 0 {
        return PathBuf::from("/var/run/dpdk");
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(|d| PathBuf::from(d).join("dpdk"))
        .unwrap_or_else(|| PathBuf::from("/tmp/dpdk"))
}

/// Remove runtime directories of xsend processes that no longer run (killed with SIGKILL).
fn remove_stale(base: &std::path::Path) {
    let Ok(dir) = std::fs::read_dir(base) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("xsend-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn has(args: &[String], names: &[&str]) -> bool {
    args.iter().any(|a| {
        names.iter().any(|n| {
            a == n || a.starts_with(&format!("{n}=")) || (n.len() == 2 && a.starts_with(n))
        })
    })
}

/// The EAL's arguments: ours (quiet logs, a file prefix of our own, no shared config, no
/// telemetry socket, the main lcore on a CPU we may run on, and — when no PCI device is
/// named — no PCI scan and no hugepages) followed by the user's. With hugepages (a PCI port,
/// or the user's `-m`/`--socket-mem`), `--in-memory` rather than `--no-shconf` alone: the
/// EAL's memory is then memfd-backed, with no `<prefix>map_N` files in hugetlbfs, which
/// `--no-shconf` leaves behind (their huge pages taken) after every exit, not only a kill.
pub(crate) fn eal_args(user: &[String], cpu: usize, prefix: &str) -> Vec<String> {
    let mut a: Vec<String> = vec!["--log-level=*:warning".into()];
    if !has(user, &["-l", "-c", "--lcores"]) {
        a.push(format!("-l{cpu}"));
    }
    if !has(user, &["--file-prefix"]) {
        a.push(format!("--file-prefix={prefix}"));
    }
    let pci = has(user, &["-a", "--allow", "-w", "-b", "--block"]);
    // (DPDK 22.11 refuses --in-memory together with --no-huge.)
    let no_huge = !pci
        && !has(
            user,
            &[
                "--no-huge",
                "-m",
                "--socket-mem",
                "--huge-dir",
                "--in-memory",
            ],
        );
    // (It also refuses --in-memory with --legacy-mem or --huge-unlink=never: those keep
    // --no-shconf.)
    let huge = !no_huge && !has(user, &["--no-huge", "--legacy-mem", "--huge-unlink"]);
    if !has(user, &["--in-memory", "--no-shconf"]) {
        a.push(if huge { "--in-memory" } else { "--no-shconf" }.into());
    }
    if !has(user, &["--telemetry", "--no-telemetry"]) {
        a.push("--no-telemetry".into());
    }
    if !pci && !has(user, &["--no-pci"]) {
        a.push("--no-pci".into());
    }
    if no_huge {
        a.push("--no-huge".into());
        a.push("-m256".into());
    }
    a.extend(user.iter().cloned());
    a
}

/// Start the EAL with `user` arguments (split like a shell would not: by whitespace), once
/// per process; later calls get the first call's result.
pub(crate) fn eal_init(user: &[String]) -> io::Result<&'static EalInfo> {
    let r = EAL.get_or_init(|| init(user).map_err(|e| e.to_string()));
    match r {
        Ok(i) => {
            if !user.is_empty() && !i.args.ends_with(user) {
                return Err(io::Error::other(format!(
                    "the EAL of this process was started with {:?}; it cannot be started again with {user:?}",
                    i.args
                )));
            }
            Ok(i)
        }
        Err(e) => Err(io::Error::other(e.clone())),
    }
}

fn init(user: &[String]) -> io::Result<EalInfo> {
    let base = runtime_base();
    remove_stale(&base);
    let prefix = format!("xsend-{}", std::process::id());
    // rte_eal_init pins the calling thread to the main lcore, and threads started later
    // would inherit that: keep this thread's CPUs as they were.
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer and size.
    let got = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) } == 0;
    let cpu = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: reads a bit of a valid set.
        .find(|&c| got && unsafe { libc::CPU_ISSET(c, &set) })
        .unwrap_or(0);
    let args = eal_args(user, cpu, &prefix);
    let prefix_used = args
        .iter()
        .rev()
        .find_map(|a| a.strip_prefix("--file-prefix="))
        .unwrap_or(&prefix)
        .to_string();
    let runtime_dir = base.join(&prefix_used);
    let existed = runtime_dir.exists();
    let mut cargs: Vec<CString> = Vec::with_capacity(args.len() + 1);
    for a in std::iter::once("xsend").chain(args.iter().map(String::as_str)) {
        cargs.push(CString::new(a).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("NUL in EAL argument {a:?}"),
            )
        })?);
    }
    let mut argv: Vec<*mut libc::c_char> = cargs.iter().map(|c| c.as_ptr() as *mut _).collect();
    // SAFETY: argv points at NUL-terminated strings that outlive the call (EAL keeps no
    // pointer into them after returning; it may permute argv's entries).
    let rc = unsafe { ffi::rte_eal_init(argv.len() as i32, argv.as_mut_ptr()) };
    if got {
        // SAFETY: restores this thread's own previous mask.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    }
    if rc < 0 {
        let e = super::last_rte_error();
        if !existed {
            let _ = std::fs::remove_dir_all(&runtime_dir);
        }
        return Err(io::Error::new(
            e.kind(),
            format!("rte_eal_init({}) failed: {e}", args.join(" ")),
        ));
    }
    if !existed {
        let _ = CLEANUP_DIR.set(runtime_dir.clone());
        // A SIGKILL runs no atexit: a switch removes the directory as the process ends
        // (without one, the next xsend to start DPDK removes it: remove_stale).
        if let Ok(w) = Watchdog::arm_remove_dir(&runtime_dir) {
            if let Ok(mut g) = DIR_SWITCH.lock() {
                *g = Some(w);
            }
        }
    }
    // SAFETY: registers a plain extern "C" function with no captured state.
    unsafe { libc::atexit(cleanup) };
    Ok(EalInfo { args })
}

static CLEANUP_DIR: OnceLock<PathBuf> = OnceLock::new();
/// The switch that removes [`CLEANUP_DIR`] if this process is killed.
static DIR_SWITCH: Mutex<Option<Watchdog>> = Mutex::new(None);

/// At exit: close the ports still open, clean up the EAL, remove its runtime directory.
extern "C" fn cleanup() {
    let ports = OPEN_PORTS
        .lock()
        .map(|mut p| std::mem::take(&mut *p))
        .unwrap_or_default();
    for p in ports {
        // SAFETY: a port this process started and has not closed.
        unsafe { ffi::xs_port_close(p) };
    }
    // SAFETY: the EAL was initialised; nothing uses it after exit began.
    unsafe { ffi::rte_eal_cleanup() };
    if let Some(d) = CLEANUP_DIR.get() {
        // (DPDK's base directory stays: another process may be starting in it.)
        let _ = std::fs::remove_dir_all(d);
    }
    // Removed: the switch leaves (dropping it waits for it to exit).
    drop(DIR_SWITCH.lock().ok().and_then(|mut g| g.take()));
}
