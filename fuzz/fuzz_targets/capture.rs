//! The pcap/pcapng reader over arbitrary bytes: no panic, no hang, every record within bounds.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = xsend::fuzz::read_capture(data);
});
