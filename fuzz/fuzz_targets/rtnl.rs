//! The rtnetlink reply parsers over arbitrary bytes: no panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

fuzz_target!(|data: &[u8]| {
    let _ = xsend::fuzz::parse_route_reply(data);
    for ip in ["198.18.0.2", "2001:db8::2"] {
        let ip: IpAddr = ip.parse().unwrap();
        let _ = xsend::fuzz::parse_neigh_dump(data, ip, 2);
    }
});
