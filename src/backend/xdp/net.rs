//! What the framer needs from the kernel's view of the network: the egress interface and
//! next hop for a destination (`ip route get`), the next hop's MAC (the neighbour table,
//! resolved with a probe if absent), and the interface's MAC and MTU.

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sys;
use crate::wire::ethernet::MacAddr;

/// The route to a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Egress interface.
    pub dev: String,
    /// Gateway, if the destination is not on-link.
    pub gateway: Option<IpAddr>,
    /// Preferred source address.
    pub prefsrc: Option<IpAddr>,
}

impl Route {
    /// The address whose MAC frames are sent to.
    pub fn next_hop(&self, dst: IpAddr) -> IpAddr {
        self.gateway.unwrap_or(dst)
    }
}

fn ip_json(args: &[&str]) -> Result<serde_json::Value> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::io("running ip (install iproute2)", e))?;
    if !out.status.success() {
        return Err(Error::io(
            format!("ip {}", args.join(" ")),
            std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        ));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::io("parsing ip -j output", std::io::Error::other(e)))
}

/// Parse `ip -j route get` output.
pub fn parse_route(v: &serde_json::Value) -> Option<Route> {
    let r = v.get(0)?;
    Some(Route {
        dev: r.get("dev")?.as_str()?.to_string(),
        gateway: r
            .get("gateway")
            .and_then(|g| g.as_str())
            .and_then(|g| g.parse().ok()),
        prefsrc: r
            .get("prefsrc")
            .and_then(|g| g.as_str())
            .and_then(|g| g.parse().ok()),
    })
}

/// The route the kernel would use for `dst` (in the calling thread's namespace).
pub fn route_get(dst: IpAddr) -> Result<Route> {
    let v = ip_json(&["-j", "route", "get", &dst.to_string()])?;
    parse_route(&v).ok_or_else(|| {
        Error::io(
            format!("no route to {dst}"),
            std::io::ErrorKind::NotFound.into(),
        )
    })
}

/// Parse `ip -j neigh show` output: the MAC of a usable entry.
pub fn parse_neigh(v: &serde_json::Value) -> Option<MacAddr> {
    v.as_array()?.iter().find_map(|e| {
        let states: Vec<&str> = e
            .get("state")?
            .as_array()?
            .iter()
            .filter_map(|s| s.as_str())
            .collect();
        if states
            .iter()
            .any(|s| matches!(*s, "FAILED" | "INCOMPLETE" | "NONE"))
        {
            return None;
        }
        e.get("lladdr")?.as_str()?.parse().ok()
    })
}

/// The neighbour-table MAC of `ip` on `dev`, if known.
pub fn neighbour(ip: IpAddr, dev: &str) -> Result<Option<MacAddr>> {
    let v = ip_json(&["-j", "neigh", "show", "to", &ip.to_string(), "dev", dev])?;
    Ok(parse_neigh(&v))
}

/// The MAC of `ip` on `dev`: from the neighbour table, else after making the kernel resolve
/// it (one empty datagram to the discard port triggers ARP / neighbour discovery).
pub fn resolve(ip: IpAddr, dev: &str, timeout: Duration) -> Result<MacAddr> {
    if let Some(m) = neighbour(ip, dev)? {
        return Ok(m);
    }
    let bind = if ip.is_ipv4() {
        std::net::SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    } else {
        std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    };
    if let Ok(s) = std::net::UdpSocket::bind(bind) {
        let _ = s.send_to(&[], (ip, 9));
    }
    let start = Instant::now();
    while start.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(10));
        if let Some(m) = neighbour(ip, dev)? {
            return Ok(m);
        }
    }
    Err(Error::io(
        format!("cannot resolve the MAC of {ip} on {dev} (no ARP/ND answer; give --dst-mac)"),
        std::io::ErrorKind::TimedOut.into(),
    ))
}

/// An interface's index, MAC, MTU and whether it is up.
#[derive(Debug, Clone)]
pub struct IfInfo {
    /// Name.
    pub name: String,
    /// Index.
    pub index: u32,
    /// MAC.
    pub mac: MacAddr,
    /// MTU.
    pub mtu: u32,
}

/// Look up `name` in the calling thread's namespace.
pub fn if_info(name: &str) -> Result<IfInfo> {
    let index = sys::if_nametoindex(name).ok_or_else(|| Error::InterfaceNotFound {
        name: name.to_string(),
    })?;
    let mac =
        sys::if_hwaddr(name).map_err(|e| Error::io(format!("reading the MAC of {name}"), e))?;
    let mtu = sys::if_mtu(name).map_err(|e| Error::io(format!("reading the MTU of {name}"), e))?;
    if !sys::if_running(name).unwrap_or(false) {
        return Err(Error::InterfaceDown {
            name: name.to_string(),
            source: std::io::Error::from_raw_os_error(libc::ENETDOWN),
        });
    }
    Ok(IfInfo {
        name: name.to_string(),
        index,
        mac: MacAddr(mac),
        mtu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_json() {
        let v: serde_json::Value = serde_json::from_str(
            r#"[{"dst":"198.18.0.2","dev":"xs1a","prefsrc":"198.18.0.1","flags":[],"uid":0,"cache":[]}]"#,
        )
        .unwrap();
        let r = parse_route(&v).unwrap();
        assert_eq!(r.dev, "xs1a");
        assert_eq!(r.gateway, None);
        assert_eq!(
            r.next_hop("198.18.0.2".parse().unwrap()),
            "198.18.0.2".parse::<IpAddr>().unwrap()
        );
        let v: serde_json::Value =
            serde_json::from_str(r#"[{"dst":"198.19.0.9","gateway":"198.18.0.254","dev":"eth0"}]"#)
                .unwrap();
        assert_eq!(
            parse_route(&v).unwrap().gateway,
            Some("198.18.0.254".parse().unwrap())
        );
        let v: serde_json::Value = serde_json::from_str(
            r#"[{"dst":"198.18.0.2","dev":"x","lladdr":"02:58:53:00:00:0b","state":["PERMANENT"]},{"dst":"198.18.0.3","dev":"x","state":["FAILED"]}]"#,
        )
        .unwrap();
        assert_eq!(parse_neigh(&v).unwrap().to_string(), "02:58:53:00:00:0b");
        let v: serde_json::Value =
            serde_json::from_str(r#"[{"dst":"198.18.0.3","dev":"x","state":["INCOMPLETE"]}]"#)
                .unwrap();
        assert_eq!(parse_neigh(&v), None);
    }
}
