//! Multi-flow generation (sans-IO): ranges of addresses and ports expanded into every
//! combination, in round-robin order.

use super::framer::Flow;
use crate::error::{Error, Result};

/// Ranges of addresses and ports for multi-flow generation (inclusive bounds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowRanges {
    /// Source ports.
    pub src_ports: Option<(u16, u16)>,
    /// Destination ports.
    pub dst_ports: Option<(u16, u16)>,
    /// Source addresses (same family as the destination).
    pub src_ips: Option<(std::net::IpAddr, std::net::IpAddr)>,
    /// Destination addresses.
    pub dst_ips: Option<(std::net::IpAddr, std::net::IpAddr)>,
}

/// Most flows one generator run may cycle through.
pub const MAX_FLOWS: u64 = 1 << 16;

fn ip_range(r: (std::net::IpAddr, std::net::IpAddr)) -> Result<(u128, u64)> {
    use std::net::IpAddr;
    let n = |a: IpAddr| match a {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    };
    if r.0.is_ipv4() != r.1.is_ipv4() || n(r.1) < n(r.0) {
        return Err(Error::InvalidOption(format!(
            "address range {}-{} is empty or mixes families",
            r.0, r.1
        )));
    }
    let count = n(r.1) - n(r.0) + 1;
    Ok((n(r.0), count.min(u64::MAX as u128) as u64))
}

impl FlowRanges {
    /// How many flows [`FlowRanges::expand`] makes (an absent range is one value); an error
    /// over [`MAX_FLOWS`] or for an empty range.
    pub fn count(&self) -> Result<u64> {
        let ports = |r: Option<(u16, u16)>| match r {
            Some((a, b)) if b < a => {
                Err(Error::InvalidOption(format!("port range {a}-{b} is empty")))
            }
            Some((a, b)) => Ok((b - a) as u64 + 1),
            None => Ok(1),
        };
        let ips = |r: Option<(std::net::IpAddr, std::net::IpAddr)>| match r {
            Some(r) => ip_range(r).map(|(_, n)| n),
            None => Ok(1),
        };
        let f = [
            ports(self.src_ports)?,
            ports(self.dst_ports)?,
            ips(self.src_ips)?,
            ips(self.dst_ips)?,
        ];
        f.iter()
            .try_fold(1u64, |t, &n| t.checked_mul(n))
            .filter(|&t| t <= MAX_FLOWS)
            .ok_or_else(|| {
                Error::InvalidOption(format!(
                    "{} x {} x {} x {} flows: at most {MAX_FLOWS}",
                    f[0], f[1], f[2], f[3]
                ))
            })
    }

    /// Every flow of the ranges applied to `base`, in round-robin order (at most
    /// [`MAX_FLOWS`]).
    pub fn expand(&self, base: &Flow) -> Result<Vec<Flow>> {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
        let port_range = |r: Option<(u16, u16)>, dflt: u16| -> Result<(u64, u64)> {
            let (a, b) = r.unwrap_or((dflt, dflt));
            if b < a {
                return Err(Error::InvalidOption(format!("port range {a}-{b} is empty")));
            }
            Ok((a as u64, (b - a) as u64 + 1))
        };
        let (sp0, spn) = port_range(self.src_ports, base.src.port())?;
        let (dp0, dpn) = port_range(self.dst_ports, base.dst.port())?;
        let (si0, sin) = ip_range(self.src_ips.unwrap_or((base.src.ip(), base.src.ip())))?;
        let (di0, din) = ip_range(self.dst_ips.unwrap_or((base.dst.ip(), base.dst.ip())))?;
        let v6 = base.dst.is_ipv6();
        for r in [self.src_ips, self.dst_ips].into_iter().flatten() {
            if r.0.is_ipv6() != v6 {
                return Err(Error::InvalidOption(format!(
                    "address range {}-{} is not of the destination's family",
                    r.0, r.1
                )));
            }
        }
        let total = spn
            .checked_mul(dpn)
            .and_then(|x| x.checked_mul(sin))
            .and_then(|x| x.checked_mul(din))
            .filter(|&t| t <= MAX_FLOWS)
            .ok_or_else(|| {
                Error::InvalidOption(format!(
                    "{spn} x {dpn} x {sin} x {din} flows: at most {MAX_FLOWS}"
                ))
            })?;
        let ip = |x: u128| -> IpAddr {
            if v6 {
                IpAddr::V6(Ipv6Addr::from(x))
            } else {
                IpAddr::V4(Ipv4Addr::from(x as u32))
            }
        };
        Ok((0..total)
            .map(|mut i| {
                let sp = sp0 + i % spn;
                i /= spn;
                let dp = dp0 + i % dpn;
                i /= dpn;
                let si = si0 + (i % sin) as u128;
                i /= sin;
                let di = di0 + (i % din) as u128;
                Flow {
                    src: SocketAddr::new(ip(si), sp as u16),
                    dst: SocketAddr::new(ip(di), dp as u16),
                    ..*base
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Flow {
        Flow {
            src_mac: "02:58:53:00:00:0a".parse().unwrap(),
            dst_mac: "02:58:53:00:00:0b".parse().unwrap(),
            vlan: None,
            src: "198.18.0.1:40000".parse().unwrap(),
            dst: "198.18.0.2:9".parse().unwrap(),
        }
    }

    #[test]
    fn flow_ranges_expand_to_every_combination_in_round_robin() {
        let r = FlowRanges {
            src_ports: Some((1000, 1001)),
            dst_ips: Some(("198.18.0.2".parse().unwrap(), "198.18.0.4".parse().unwrap())),
            ..Default::default()
        };
        let f = r.expand(&base()).unwrap();
        assert_eq!(f.len(), 6);
        assert_eq!(r.count().unwrap(), 6);
        assert_eq!(f[0].src.port(), 1000);
        assert_eq!(f[1].src.port(), 1001);
        assert_eq!(f[1].dst.ip().to_string(), "198.18.0.2");
        assert_eq!(f[2].dst.ip().to_string(), "198.18.0.3");
        assert_eq!(f[5].dst.to_string(), "198.18.0.4:9");
        let set: std::collections::HashSet<_> = f.iter().map(|x| (x.src, x.dst)).collect();
        assert_eq!(set.len(), 6);
        // Defaults keep the base flow; bad ranges are refused with a reason.
        assert_eq!(FlowRanges::default().expand(&base()).unwrap(), vec![base()]);
        let bad = FlowRanges {
            dst_ports: Some((10, 9)),
            ..Default::default()
        };
        assert!(bad.expand(&base()).is_err());
        assert!(bad.count().is_err());
        assert_eq!(FlowRanges::default().count().unwrap(), 1);
        let v6 = FlowRanges {
            dst_ips: Some((
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            )),
            ..Default::default()
        };
        assert!(v6.expand(&base()).is_err(), "family mismatch");
        let huge = FlowRanges {
            src_ports: Some((0, 65535)),
            dst_ports: Some((0, 1)),
            ..Default::default()
        };
        assert!(huge.expand(&base()).is_err(), "over MAX_FLOWS");
        assert!(huge.count().is_err(), "over MAX_FLOWS");
    }
}
