//! The receiver's chunk tracking fed arbitrary datagrams (length-prefixed in the input):
//! no panic, bounded state, and a hash only of a complete stream.
#![no_main]
use libfuzzer_sys::fuzz_target;
use xsend::recv::ChunkTracker;

fuzz_target!(|data: &[u8]| {
    let mut t = ChunkTracker::new(true, None);
    let mut rest = data;
    let mut offered = 0u64;
    while let [n, tail @ ..] = rest {
        let n = (*n as usize).min(tail.len());
        let (d, more) = tail.split_at(n);
        offered += d.len().saturating_sub(32) as u64;
        let _ = t.datagram_at(d, 1);
        rest = more;
    }
    let complete = t.complete();
    let r = t.finish();
    assert!(r.bytes <= offered, "more payload accepted than offered");
    assert_eq!(r.complete, Some(complete));
    // A hash only of a complete stream (a complete one may lack it if the hash was given up).
    assert!(r.sha256.is_none() || complete);
    if complete {
        assert_eq!(Some(r.bytes), r.expected_bytes);
    }
});
