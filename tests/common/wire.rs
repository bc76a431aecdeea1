//! Frames as the peer sees them: an AF_PACKET socket in side B checks every frame of a
//! chunked UDP send (size within the MTU, MACs, IPv4 header checksum, UDP checksum, xsend
//! header offsets) and gives back the payload reassembled in order.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use xsend::lab::{Lab, Side};

/// Run `send` (a chunked UDP send to `dst` with three end markers) while capturing in side B;
/// returns the frames of the flow (end markers included) and the payload in order.
pub fn chunked_frames_on_the_wire(
    lab: &Lab,
    dst: SocketAddr,
    mtu: usize,
    send: impl FnOnce(),
) -> (usize, Vec<u8>) {
    let raw = lab
        .run_in(Side::B, || {
            // SAFETY: plain socket(2); the descriptor is owned below.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW,
                    (libc::ETH_P_ALL as u16).to_be() as i32,
                )
            };
            assert!(fd >= 0, "AF_PACKET socket");
            // Room for the whole burst: the frames are read only after the send.
            let size: libc::c_int = 256 << 20;
            // SAFETY: setsockopt with a live c_int and its size.
            let r = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(r, 0, "SO_RCVBUFFORCE");
            // SAFETY: fd is a new descriptor nothing else owns.
            unsafe { OwnedFd::from_raw_fd(fd) }
        })
        .unwrap();
    send();
    let mut payload = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut frames = 0;
    let mut ends = 0;
    while ends < 3 {
        // SAFETY: reading into a live buffer of its length.
        let n = unsafe { libc::recv(raw.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        assert!(n > 0);
        let f = &buf[..n as usize];
        let Ok(p) = SlicedPacket::from_ethernet(f) else {
            continue;
        };
        let Some(TransportSlice::Udp(u)) = &p.transport else {
            continue;
        };
        if u.destination_port() != dst.port() {
            continue;
        }
        frames += 1;
        assert!(f.len() <= mtu + 14, "frame of {} bytes", f.len());
        let eth = xsend::wire::ethernet::Frame::new_checked(f).unwrap();
        assert_eq!(eth.dst().to_string(), lab.mac_b);
        assert_eq!(eth.src().to_string(), lab.mac_a);
        let (s, d) = match p.net.as_ref().unwrap() {
            NetSlice::Ipv4(h) => {
                let h = h.header();
                assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
                (
                    IpAddr::V4(h.source_addr()),
                    IpAddr::V4(h.destination_addr()),
                )
            }
            NetSlice::Ipv6(h) => (
                IpAddr::V6(h.header().source_addr()),
                IpAddr::V6(h.header().destination_addr()),
            ),
        };
        assert_eq!(d, dst.ip());
        let pl = u.payload();
        let want = match (s, d) {
            (IpAddr::V4(a), IpAddr::V4(b)) => u
                .to_header()
                .calc_checksum_ipv4_raw(a.octets(), b.octets(), pl)
                .unwrap(),
            (IpAddr::V6(a), IpAddr::V6(b)) => u
                .to_header()
                .calc_checksum_ipv6_raw(a.octets(), b.octets(), pl)
                .unwrap(),
            _ => unreachable!(),
        };
        assert_eq!(u.checksum(), want, "UDP checksum on the wire");
        let h = xsend::wire::xsend::Packet::new_checked(pl).unwrap();
        if h.flags() & xsend::wire::xsend::FLAG_END != 0 {
            ends += 1;
            continue;
        }
        assert_eq!(h.offset(), payload.len() as u64);
        payload.extend_from_slice(h.payload());
    }
    (frames, payload)
}
