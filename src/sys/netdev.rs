//! Network interfaces in the calling thread's namespace: index, name, MAC, MTU, flags.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;

/// Interface index of `name`.
pub(crate) fn if_nametoindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// Name of interface `index`.
pub(crate) fn if_indextoname(index: u32) -> Option<String> {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write (NUL included).
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr().cast()) };
    if p.is_null() {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    let b = name.as_bytes();
    if b.len() >= r.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    for (d, s) in r.ifr_name.iter_mut().zip(b) {
        *d = *s as libc::c_char;
    }
    Ok(r)
}

fn ifreq_ioctl(name: &str, req: libc::c_ulong) -> io::Result<libc::ifreq> {
    let mut r = ifreq(name)?;
    let s =
        std::net::UdpSocket::bind("0.0.0.0:0").or_else(|_| std::net::UdpSocket::bind("[::]:0"))?;
    // SAFETY: the request reads ifr_name and writes the union of the live ifreq.
    syscall!(ioctl(s.as_raw_fd(), req, &mut r))?;
    Ok(r)
}

/// MAC address of an interface.
pub(crate) fn if_hwaddr(name: &str) -> io::Result<[u8; 6]> {
    let r = ifreq_ioctl(name, libc::SIOCGIFHWADDR)?;
    // SAFETY: SIOCGIFHWADDR filled the ifru_hwaddr member.
    let sa = unsafe { r.ifr_ifru.ifru_hwaddr };
    let mut m = [0u8; 6];
    for (d, s) in m.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(m)
}

/// MTU of an interface.
pub(crate) fn if_mtu(name: &str) -> io::Result<u32> {
    let r = ifreq_ioctl(name, libc::SIOCGIFMTU)?;
    // SAFETY: SIOCGIFMTU filled the ifru_mtu member.
    Ok(unsafe { r.ifr_ifru.ifru_mtu } as u32)
}

/// True if the interface is administratively and operationally up.
pub(crate) fn if_running(name: &str) -> io::Result<bool> {
    let r = ifreq_ioctl(name, libc::SIOCGIFFLAGS)?;
    // SAFETY: SIOCGIFFLAGS filled the ifru_flags member.
    let f = unsafe { r.ifr_ifru.ifru_flags } as libc::c_int;
    Ok(f & libc::IFF_UP != 0 && f & libc::IFF_RUNNING != 0)
}

/// `struct ethtool_channels` (`ETHTOOL_GCHANNELS`).
#[repr(C)]
#[derive(Default)]
struct Channels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// The combined channels an interface has now (`ethtool -l`; 0 if it reports none, as veth
/// does, with separate RX and TX counts).
#[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
pub(crate) fn if_combined_channels(name: &str) -> io::Result<u32> {
    const ETHTOOL_GCHANNELS: u32 = 0x3c;
    let mut ch = Channels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    let mut r = ifreq(name)?;
    r.ifr_ifru.ifru_data = (&mut ch as *mut Channels).cast();
    let s =
        std::net::UdpSocket::bind("0.0.0.0:0").or_else(|_| std::net::UdpSocket::bind("[::]:0"))?;
    // SAFETY: SIOCETHTOOL with ETHTOOL_GCHANNELS writes a `struct ethtool_channels` (36
    // bytes) through ifru_data, which points to `ch`, live for the call.
    syscall!(ioctl(s.as_raw_fd(), libc::SIOCETHTOOL, &mut r))?;
    Ok(ch.combined_count)
}

/// `struct ethtool_drvinfo` (`ETHTOOL_GDRVINFO`), as far as the driver name.
#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    rest: [u8; 160],
}

/// The driver of an interface (`ethtool -i`): `veth`, `mlx5_core`, ...
pub(crate) fn if_driver(name: &str) -> io::Result<String> {
    const ETHTOOL_GDRVINFO: u32 = 3;
    let mut info = DrvInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        rest: [0; 160],
    };
    let mut r = ifreq(name)?;
    r.ifr_ifru.ifru_data = (&mut info as *mut DrvInfo).cast();
    let s =
        std::net::UdpSocket::bind("0.0.0.0:0").or_else(|_| std::net::UdpSocket::bind("[::]:0"))?;
    // SAFETY: SIOCETHTOOL with ETHTOOL_GDRVINFO writes at most a `struct ethtool_drvinfo`
    // (196 bytes) through ifru_data, which points to `info`, live for the call.
    syscall!(ioctl(s.as_raw_fd(), libc::SIOCETHTOOL, &mut r))?;
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}
