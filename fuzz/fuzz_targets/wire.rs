//! Every wire view over arbitrary bytes: no panic, and what parses re-emits consistently.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use xsend::sansio::framer::parse_segment;
use xsend::wire::{ethernet, ipv4, ipv6, tcp, udp, xsend as xh};

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = ethernet::Frame::new_checked(data) {
        let r = ethernet::Repr::parse(&f);
        let _ = (f.vlan(), f.ethertype(), f.payload().len());
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut b);
        let again = ethernet::Frame::new_checked(&b[..]).expect("an emitted header parses");
        assert_eq!(ethernet::Repr::parse(&again), r);
    }
    if let Ok(p) = ipv4::Packet::new_checked(data) {
        let _ = (
            p.verify_checksum(),
            p.payload().len(),
            ipv4::Repr::parse(&p),
        );
    }
    if let Ok(p) = ipv6::Packet::new_checked(data) {
        let _ = (ipv6::Repr::parse(&p), p.payload().len());
    }
    if let Ok(p) = udp::Packet::new_checked(data) {
        let _ = p.payload().len();
    }
    if let Ok(p) = tcp::Packet::new_checked(data) {
        if let Ok(r) = tcp::Repr::parse(&p) {
            // Options that parsed fit the space they say they need.
            assert!(r.options.buffer_len() <= tcp::MAX_HEADER_LEN - tcp::HEADER_LEN);
        }
    }
    if let Ok(p) = xh::Packet::new_checked(data) {
        if let Ok(r) = xh::Repr::parse(&p) {
            let mut b = vec![0u8; xh::HEADER_LEN];
            r.emit(&mut b);
            assert_eq!(b, data[..xh::HEADER_LEN]);
        }
    }
    for peer in ["198.18.0.2:80", "[2001:db8::2]:80"] {
        let peer: SocketAddr = peer.parse().unwrap();
        let _ = parse_segment(data, peer, 4000);
    }
});
