use super::*;
use crate::sansio::framer::{Flow, TcpFramer, UdpFramer};
use crate::sansio::wire::tcp;

fn flows(v6: bool, vlan: Option<u16>) -> Vec<Flow> {
    let (a, b) = if v6 {
        ("[2001:db8::1]:40000", "[2001:db8::2]:9")
    } else {
        ("198.18.0.1:40000", "198.18.0.2:9")
    };
    let base = Flow {
        src_mac: "02:58:53:00:00:0a".parse().unwrap(),
        dst_mac: "02:58:53:00:00:0b".parse().unwrap(),
        vlan,
        src: a.parse().unwrap(),
        dst: b.parse().unwrap(),
    };
    let mut other = base;
    other.src.set_port(40001);
    other.dst.set_port(4242);
    vec![base, other]
}

enum F {
    Udp(UdpFramer),
    Tcp(TcpFramer),
}

impl F {
    fn new(f: &Flow, tcp: bool) -> F {
        if tcp {
            F::Tcp(TcpFramer::new(f, 1500))
        } else {
            F::Udp(UdpFramer::new(f, 1500))
        }
    }
    fn emit(&mut self, frame: &mut [u8], payload: usize, tseq: u32, prefix: &[u8]) -> usize {
        let fill = |w: &mut crate::sansio::framer::PayloadWriter<'_>| {
            w.put(prefix);
            w.put(&vec![0u8; payload - prefix.len()]);
        };
        match self {
            F::Udp(u) => u.emit(frame, payload, fill).unwrap(),
            F::Tcp(t) => {
                let seg = tcp::Repr {
                    seq: tseq,
                    ack: 1,
                    flags: tcp::Flags::ACK | tcp::Flags::PSH,
                    window: 65535,
                    payload_len: payload,
                    ..Default::default()
                };
                t.emit(frame, &seg, fill).unwrap()
            }
        }
    }
}

/// The model stamps, packet after packet over two flows and a mix of sizes, exactly the
/// frames the framers write (every byte, every checksum), including payloads under 8 bytes.
#[test]
fn stamping_matches_the_framers() {
    for v6 in [false, true] {
        for tcp in [false, true] {
            for vlan in [None, Some(7)] {
                let fl = flows(v6, vlan);
                let lay = Layout {
                    l3: 14 + if vlan.is_some() { 4 } else { 0 },
                    v6,
                    tcp,
                };
                let hdr = lay.header_len();
                let mix = Imix::parse(&format!("3:{},2:{},1:1514", hdr.max(60), hdr + 5)).unwrap();
                let cycle = size_cycle(&mix).unwrap();
                assert_eq!(cycle.len(), 6);
                let max = *cycle.iter().max().unwrap() as usize;
                // Entries from each flow's first frame; the template from flow 0.
                let mut entries: Vec<FlowEntry> = fl
                    .iter()
                    .enumerate()
                    .map(|(k, f)| {
                        let mut buf = vec![0u8; 2048];
                        let n = F::new(f, tcp).emit(&mut buf, 0, 1, &[]);
                        let mut e = FlowEntry::from_frame(&buf[..n], lay).unwrap();
                        e.stream = 0x0a_bc00 + k as u32;
                        e
                    })
                    .collect();
                let mut template = vec![0u8; 2048];
                F::new(&fl[0], tcp).emit(&mut template, max - hdr, 1, &[]);
                // The reference stream: what the AF_XDP generator writes.
                let mut framers: Vec<F> = fl.iter().map(|f| F::new(f, tcp)).collect();
                let mut tseqs = [1u32; 2];
                let mut page = template.clone();
                let mut mix = Imix::new(mix.sizes()).unwrap();
                for seq in 0..40u64 {
                    let size = mix.next_size();
                    assert_eq!(size as u32, cycle[seq as usize % cycle.len()]);
                    let k = seq as usize % 2;
                    let payload = size - hdr;
                    // A send time whose words carry into the sum.
                    let time = 0xffff_fff0u32.wrapping_add(seq as u32 * 7919);
                    let head = crate::sansio::wire::probe::Repr {
                        stream: 0x0a_bc00 + k as u32,
                        seq: seq / 2,
                        time,
                    }
                    .to_bytes();
                    let prefix = &head[..payload.min(16)];
                    let mut want = vec![0u8; 2048];
                    let n = framers[k].emit(&mut want, payload, tseqs[k], prefix);
                    tseqs[k] = tseqs[k].wrapping_add(payload as u32);
                    assert_eq!(n, size);
                    // Pages are reused: stamp over whatever frame was there before.
                    stamp(&mut page, lay, &mut entries[k], size, time);
                    assert_eq!(
                        &page[..size],
                        &want[..size],
                        "v6 {v6} tcp {tcp} vlan {vlan:?} seq {seq} size {size}"
                    );
                    // What lies past the frame stays zero (it is never summed).
                    assert!(page[size.max(hdr + 16)..max].iter().all(|&b| b == 0));
                }
            }
        }
    }
}

#[test]
fn cycles_and_state() {
    let imix = Imix::parse("imix").unwrap();
    let c = size_cycle(&imix).unwrap();
    let total: u64 = imix.sizes().iter().map(|&(_, w)| w).sum();
    assert_eq!(c.len() as u64, total);
    for &(s, w) in imix.sizes() {
        assert_eq!(c.iter().filter(|&&x| x as usize == s).count() as u64, w);
    }
    let huge = Imix::new(&[(64, 1 << 20), (128, 1)]).unwrap();
    assert!(size_cycle(&huge).is_none());
    let b = state_bytes(9, Some(1000.0), 4);
    assert_eq!(u64::from_ne_bytes(b[8..16].try_into().unwrap()), 9);
    assert_eq!(
        u64::from_ne_bytes(b[40..48].try_into().unwrap()),
        4_000_000_000
    );
    assert_eq!(parse_state(&b), Some(Counters::default()));
    assert_eq!(FlowEntry::default().to_bytes().len(), FLOW_ENTRY_LEN);
}
