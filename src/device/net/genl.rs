//! Generic netlink: the `netdev` family's view of an interface (its XDP features), resolved
//! by name through the controller. Message building and parsing are pure functions.

use std::io;

use super::rtnl::{attr, attrs, error_of, finish, header, messages, NLM_F_REQUEST};
use crate::sys::netlink::Netlink;

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
const NETDEV_A_DEV_XDP_ZC_MAX_SEGS: u16 = 4;
/// `struct genlmsghdr`: command, version, reserved.
const GENL_HDRLEN: usize = 4;

fn request(ty: u16, cmd: u8, seq: u32, attrs_: &[(u16, &[u8])]) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    header(&mut b, ty, NLM_F_REQUEST, seq);
    b.extend_from_slice(&[cmd, 1, 0, 0]);
    for (t, d) in attrs_ {
        attr(&mut b, *t, d);
    }
    finish(b)
}

/// `CTRL_CMD_GETFAMILY` for `name`.
pub(crate) fn family_request(name: &str, seq: u32) -> Vec<u8> {
    let mut n = name.as_bytes().to_vec();
    n.push(0);
    request(
        GENL_ID_CTRL,
        CTRL_CMD_GETFAMILY,
        seq,
        &[(CTRL_ATTR_FAMILY_NAME, &n)],
    )
}

/// `NETDEV_CMD_DEV_GET` of interface `ifindex` to the family `family`.
pub(crate) fn dev_request(family: u16, ifindex: u32, seq: u32) -> Vec<u8> {
    request(
        family,
        NETDEV_CMD_DEV_GET,
        seq,
        &[(NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes())],
    )
}

/// The first attribute `want` (after the generic header) of a reply; `Ok(None)` if absent.
fn reply_attr(b: &[u8], want: u16) -> io::Result<Option<Vec<u8>>> {
    for m in messages(b) {
        if let Some(e) = error_of(&m) {
            return Err(e);
        }
        if m.body.len() < GENL_HDRLEN {
            continue;
        }
        if let Some((_, d)) = attrs(&m.body[GENL_HDRLEN..]).find(|&(t, _)| t == want) {
            return Ok(Some(d.to_vec()));
        }
    }
    Ok(None)
}

/// The family id in the reply to [`family_request`].
pub(crate) fn parse_family(b: &[u8]) -> io::Result<Option<u16>> {
    Ok(reply_attr(b, CTRL_ATTR_FAMILY_ID)?
        .and_then(|d| Some(u16::from_ne_bytes(d.get(..2)?.try_into().ok()?))))
}

/// The XDP feature bits in the reply to [`dev_request`].
pub(crate) fn parse_xdp_features(b: &[u8]) -> io::Result<Option<u64>> {
    Ok(reply_attr(b, NETDEV_A_DEV_XDP_FEATURES)?
        .and_then(|d| Some(u64::from_ne_bytes(d.get(..8)?.try_into().ok()?))))
}

/// The largest number of descriptors a zero-copy AF_XDP frame may take, in the reply to
/// [`dev_request`].
pub(crate) fn parse_zc_max_segs(b: &[u8]) -> io::Result<Option<u32>> {
    Ok(reply_attr(b, NETDEV_A_DEV_XDP_ZC_MAX_SEGS)?
        .and_then(|d| Some(u32::from_ne_bytes(d.get(..4)?.try_into().ok()?))))
}

/// The XDP features of `ifindex`; `None` if the kernel has no `netdev` family (before 6.3).
pub(crate) fn xdp_features(ifindex: u32) -> io::Result<Option<u64>> {
    dev_get(ifindex, parse_xdp_features)
}

/// The driver's `xdp_zc_max_segs` of `ifindex`; `None` if the kernel does not say.
pub(crate) fn xdp_zc_max_segs(ifindex: u32) -> io::Result<Option<u32>> {
    dev_get(ifindex, parse_zc_max_segs)
}

/// `NETDEV_CMD_DEV_GET` of `ifindex`, its reply parsed by `parse`; `None` if the kernel has
/// no `netdev` family.
fn dev_get<T>(
    ifindex: u32,
    parse: impl FnOnce(&[u8]) -> io::Result<Option<T>>,
) -> io::Result<Option<T>> {
    let sock = Netlink::generic(std::time::Duration::from_secs(2))?;
    let mut buf = vec![0u8; 8192];
    sock.send(&family_request("netdev", 1))?;
    let n = sock.recv(&mut buf)?;
    let family = match parse_family(&buf[..n]) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    sock.send(&dev_request(family, ifindex, 2))?;
    let n = sock.recv(&mut buf)?;
    parse(&buf[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(ty: u16, attrs_: &[(u16, &[u8])]) -> Vec<u8> {
        request(ty, 1, 7, attrs_)
    }

    #[test]
    fn requests_and_replies() {
        let r = family_request("netdev", 3);
        assert_eq!(
            u32::from_ne_bytes(r[0..4].try_into().unwrap()) as usize,
            r.len()
        );
        assert_eq!(&r[16..20], &[CTRL_CMD_GETFAMILY, 1, 0, 0]);
        assert_eq!(&r[24..31], b"netdev\0");
        let fam = reply(GENL_ID_CTRL, &[(CTRL_ATTR_FAMILY_ID, &33u16.to_ne_bytes())]);
        assert_eq!(parse_family(&fam).unwrap(), Some(33));
        let dev = reply(
            33,
            &[
                (NETDEV_A_DEV_IFINDEX, &5u32.to_ne_bytes()),
                (NETDEV_A_DEV_XDP_FEATURES, &0x47u64.to_ne_bytes()),
            ],
        );
        assert_eq!(parse_xdp_features(&dev).unwrap(), Some(0x47));
        assert_eq!(parse_xdp_features(&fam).unwrap(), None);
        // Truncated and garbage replies are refused or empty, never a panic.
        for cut in 0..dev.len() {
            let _ = parse_xdp_features(&dev[..cut]);
        }
        let mut err = Vec::new();
        header(&mut err, 2, 0, 1);
        err.extend_from_slice(&(-libc::ENODEV).to_ne_bytes());
        err.extend_from_slice(&[0; 16]);
        let err = finish(err);
        assert_eq!(
            parse_xdp_features(&err).unwrap_err().raw_os_error(),
            Some(libc::ENODEV)
        );
    }
}
