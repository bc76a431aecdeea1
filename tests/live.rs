//! `xsend bench --backend live`: the in-kernel generator, on veth labs with a counting sink
//! on the peer (an XDP program there makes the veth take redirected frames).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use xsend::lab::{Lab, LabConfig, Side};

/// A lab with only our traffic on it (no IPv6 chatter) unless `v6`.
fn quiet_lab(v6: bool) -> Lab {
    lab_with(LabConfig {
        ipv6: v6,
        ..Default::default()
    })
}

/// tcpdump in side B writing `cap`, stopping after `n` frames of `filter`.
fn capture(lab: &Lab, cap: &Path, n: usize, filter: &[&str]) -> Child {
    let mut c = lab
        .command(Side::B, "tcpdump")
        .args([
            "-i", &lab.if_b, "-Q", "in", "-n", "-U", "-s", "0", "-B", "32768", "-c",
        ])
        .arg(n.to_string())
        .arg("-w")
        .arg(cap)
        .args(filter)
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump");
    let err = c.stderr.take().unwrap();
    let mut lines = BufReader::new(err).lines();
    assert!(lines.any(|l| l.map(|l| l.contains("listening on")).unwrap_or(false)));
    c
}

fn bench(lab: &Lab, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["bench", "--json"];
    all.extend_from_slice(args);
    let out = xsend_in_a(lab, &all);
    assert!(
        out.status.success(),
        "xsend {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out.stdout)
}

/// One's-complement sum of big-endian words.
fn sum(b: &[u8]) -> u32 {
    let mut s = 0u32;
    for c in b.chunks(2) {
        s += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Every frame a live run sends, captured at the peer and parsed: sizes in the mix's exact
/// order, sequence numbers contiguous, IPv4 IDs per flow, flow fields cycling through the
/// ranges, TCP sequence numbers advancing by the payload, every checksum valid; the counts of
/// the report, the interface and the peer's sink agree.
#[test]
fn live_frames_are_stamped_like_the_generator_and_counted_honestly() {
    need_live!();
    let _wire = udp_lock();
    let dir = tempfile::tempdir().unwrap();
    for (v6, tcp, vlan) in [
        (false, false, false),
        (false, true, false),
        (true, false, false),
        (true, true, true),
    ] {
        let lab = quiet_lab(v6);
        let sink = lab.sink(Side::B, false).unwrap();
        let to = if v6 {
            format!("[{}]:9", lab.ip6_b.unwrap())
        } else {
            format!("{}:9", lab.ip4_b)
        };
        let hdr =
            14 + if vlan { 4 } else { 0 } + if v6 { 40 } else { 20 } + if tcp { 20 } else { 8 };
        let small = hdr.max(60);
        let sizes = [small, 576, 1500];
        let n = 240usize; // 20 cycles of 12
        let cap = dir.path().join(format!("live-{v6}-{tcp}.pcap"));
        let filter: &[&str] = match (vlan, tcp) {
            (true, _) => &["vlan"],
            (false, true) => &["tcp"],
            (false, false) => &["udp"],
        };
        let mut dump = capture(&lab, &cap, n, filter);
        let mix = format!("7:{},4:{},1:{}", sizes[0], sizes[1], sizes[2]);
        let count = n.to_string();
        let mut args = vec![
            "--backend",
            "live",
            "--to",
            &to,
            "--size",
            &mix,
            "--count",
            &count,
            "--src-ports",
            "1000-1002",
        ];
        if tcp {
            args.push("--tcp-stateless");
        }
        if vlan {
            args.extend(["--vlan", "7"]);
        }
        let v = bench(&lab, &args);
        wait_capture(&mut dump, Duration::from_secs(5));
        assert_eq!(v["backend"], "live", "{v}");
        assert_eq!(v["submitted"], n as u64, "{v}");
        assert_eq!(v["packets"], n as u64, "{v}");
        assert_eq!(v["dropped"], 0, "{v}");
        assert_eq!(sink.frames().unwrap(), n as u64, "counted at the peer");
        let frames = pcap_frames(&std::fs::read(&cap).unwrap());
        assert_eq!(frames.len(), n, "captured");
        // The exact order of the weighted round robin over 7:4:1 (what Imix yields).
        let mut mix = xsend::gen::Imix::parse(&mix).unwrap();
        let mut ids = [None::<u16>; 3];
        let mut tseq = [None::<u32>; 3];
        for (i, f) in frames.iter().enumerate() {
            let want = mix.next_size();
            assert_eq!(f.len(), want, "frame {i} size");
            let p = SlicedPacket::from_ethernet(f).unwrap();
            if vlan {
                match &p.vlan {
                    Some(etherparse::VlanSlice::SingleVlan(v)) => {
                        assert_eq!(v.vlan_identifier().value(), 7)
                    }
                    v => panic!("frame {i}: not a single VLAN tag: {v:?}"),
                }
            }
            let k = i % 3;
            let (pseudo, l4len) = match p.net.as_ref().unwrap() {
                NetSlice::Ipv4(ip) => {
                    let h = ip.header();
                    assert_eq!(fold(sum(h.slice())), 0xffff, "IPv4 checksum of frame {i}");
                    let id = h.identification();
                    if let Some(prev) = ids[k] {
                        assert_eq!(id, prev.wrapping_add(1), "IP ID per flow");
                    }
                    ids[k] = Some(id);
                    let l4len = h.total_len() as usize - 20;
                    (
                        sum(&h.source()) + sum(&h.destination()) + h.protocol().0 as u32,
                        l4len,
                    )
                }
                NetSlice::Ipv6(ip) => {
                    let h = ip.header();
                    let l4len = h.payload_length() as usize;
                    (
                        sum(&h.source()) + sum(&h.destination()) + h.next_header().0 as u32,
                        l4len,
                    )
                }
            };
            let l4 = &f[f.len() - l4len..];
            assert_eq!(
                fold(pseudo + l4len as u32 + sum(l4)),
                0xffff,
                "L4 checksum of frame {i}"
            );
            let (sport, payload) = match p.transport.as_ref().unwrap() {
                TransportSlice::Udp(u) => (u.source_port(), u.payload()),
                TransportSlice::Tcp(t) => {
                    if let Some(prev) = tseq[k] {
                        assert_eq!(t.sequence_number(), prev, "TCP sequence of frame {i}");
                    }
                    tseq[k] = Some(t.sequence_number().wrapping_add(t.payload().len() as u32));
                    assert!(t.ack() && t.psh());
                    (t.source_port(), t.payload())
                }
                _ => panic!("frame {i}: not UDP/TCP"),
            };
            assert_eq!(sport, 1000 + k as u16, "flows round robin");
            // The probe header: flow k's stream, its own sequence number, a send time, the
            // magic (as much of it as the payload holds).
            let id = ((k as u64) << 40) | (i / 3) as u64;
            let mut want = [0u8; 16];
            want[..8].copy_from_slice(&id.to_be_bytes());
            want[12..].copy_from_slice(b"xSG1");
            let m = payload.len().min(16);
            for (j, (&got, &w)) in payload[..m].iter().zip(&want).enumerate() {
                if !(8..12).contains(&j) {
                    assert_eq!(got, w, "frame {i}: probe header byte {j}");
                }
            }
            assert!(payload[m..].iter().all(|&b| b == 0));
        }
    }
}

/// `--count N` into the drop sink: the report's sent, the interface's count and the peer's
/// all equal N, with several runners and with a rate.
#[test]
fn live_counts_are_exact_at_the_drop_sink() {
    need_live!();
    let _wire = udp_lock();
    let lab = lab_with(LabConfig {
        ipv6: false,
        queues: 2,
        ..Default::default()
    });
    let sink = lab.sink(Side::B, true).unwrap();
    let to = format!("{}:9", lab.ip4_b);
    let mut total = 0u64;
    for args in [
        vec!["--count", "1000003"],
        vec!["--count", "500001", "--queues", "2", "--size", "imix"],
        vec!["--count", "20000", "--pps", "100k", "--batch", "16"],
    ] {
        let mut all = vec!["--backend", "live", "--to", &to];
        all.extend(args.iter().copied());
        let v = bench(&lab, &all);
        let n: u64 = args[1].parse().unwrap();
        assert_eq!(v["backend"], "live");
        assert_eq!(v["submitted"], n, "{v}");
        assert_eq!(
            v["packets"].as_u64().unwrap() + v["dropped"].as_u64().unwrap(),
            n
        );
        total += v["packets"].as_u64().unwrap();
        assert_eq!(
            sink.frames().unwrap(),
            total,
            "sent == counted at the peer: {v}"
        );
    }
}

/// The receiving port on the veth's peer is the XDP program live frames need there: a run
/// with `--rx-iface` opens, and the port counts every frame the generator sent, one stream
/// per runner and flow, then detaches.
#[test]
fn the_receiving_port_on_the_peer_counts_every_live_frame() {
    need_live!();
    let _wire = udp_lock();
    let lab = lab_with(LabConfig {
        ipv6: false,
        queues: 2,
        ..Default::default()
    });
    let to = format!("{}:9", lab.ip4_b);
    let v = bench(
        &lab,
        &[
            "--backend",
            "live",
            "--to",
            &to,
            "--count",
            "400000",
            "--queues",
            "2",
            "--src-ports",
            "1000-1003",
            "--size",
            "imix",
            "--rx-netns",
            &lab.ns_b,
            "--rx-iface",
            &lab.if_b,
        ],
    );
    assert_eq!(v["backend"], "live", "{v}");
    let r = &v["rx"];
    assert_eq!(r["received"], v["packets"], "{r}");
    assert_eq!(r["lost"], 0, "{r}");
    // Sequence numbers missing at the receiver are exactly the frames the sending interface
    // refused (a full peer ring under load: `dropped` = redirected − counted as sent), which
    // the report states; none went missing between the two ports.
    assert_eq!(r["seq_lost"], v["dropped"], "{v}");
    if r["seq_lost"] != 0 {
        eprintln!(
            "note: the sending veth refused {} live frame(s) under load",
            v["dropped"]
        );
    }
    assert_eq!(r["duplicated"], 0, "{r}");
    assert_eq!(r["streams_seen"], 8, "2 runners x 4 flows: {r}");
    let link = std::process::Command::new("ip")
        .args(["-n", &lab.ns_b, "link", "show", &lab.if_b])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(!link.contains("xdp"), "the receiving port detached: {link}");
}

/// `auto` takes live frames when the target takes redirected frames and AF_XDP otherwise,
/// saying why; `live` alone refuses with the reason; a killed or interrupted run leaves no
/// program attached.
#[test]
fn auto_falls_back_and_nothing_is_left_attached() {
    need_live!();
    let _wire = udp_lock();
    let lab = quiet_lab(false);
    let to = format!("{}:9", lab.ip4_b);
    // No program, no GRO on the peer: the veth does not take redirected frames.
    let v = bench(&lab, &["--to", &to, "--count", "1000"]);
    assert_eq!(v["backend"], "xdp");
    let reasons = v["fallback_reasons"].to_string();
    assert!(
        reasons.contains("live frames") && reasons.contains("ndo_xdp_xmit"),
        "{reasons}"
    );
    let out = xsend_in_a(
        &lab,
        &["bench", "--backend", "live", "--to", &to, "--count", "10"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not take redirected frames"), "{err}");
    // With a sink on the peer, auto is live.
    let _sink = lab.sink(Side::B, true).unwrap();
    let v = bench(&lab, &["--to", &to, "--count", "1000"]);
    assert_eq!(v["backend"], "live", "{v}");
    // Ctrl-C and SIGKILL in the middle of an endless run.
    for sig in [libc::SIGINT, libc::SIGKILL] {
        let mut c = std::process::Command::new(xsend_bin())
            .args([
                "bench",
                "--backend",
                "live",
                "--netns",
                &lab.ns_a,
                "--to",
                &to,
            ])
            .args(["--duration", "600"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The live stats' first line: the runner is sending.
        let mut lines = BufReader::new(c.stderr.take().unwrap()).lines();
        assert!(lines.any(|l| l.map(|l| l.contains("packets/s")).unwrap_or(false)));
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(c.id() as i32, sig) };
        let st = c.wait().unwrap();
        if sig == libc::SIGINT {
            assert_eq!(
                st.code(),
                Some(130),
                "Ctrl-C: the run is reported and cut short"
            );
        }
        let link = lab
            .command(Side::A, "ip")
            .args(["-d", "link", "show", "dev", &lab.if_a])
            .output()
            .unwrap();
        let link = String::from_utf8_lossy(&link.stdout);
        assert!(
            !link.contains("prog/xdp"),
            "program left on {}: {link}",
            lab.if_a
        );
        let progs = std::process::Command::new("bpftool").arg("prog").output();
        if let Ok(p) = progs {
            let p = String::from_utf8_lossy(&p.stdout);
            assert!(
                !p.contains("xsend_l"),
                "a live-frames program is still loaded: {p}"
            );
        }
    }
}

/// Frames over one page: live frames refuse them with the reason (the kernel's page_pool
/// holds one page per frame), and `auto` takes AF_XDP for them, saying why.
#[test]
fn frames_over_a_page_go_to_af_xdp() {
    need_live!();
    let _wire = udp_lock();
    let lab = lab_with(LabConfig {
        ipv6: false,
        mtu: 3800,
        ..Default::default()
    });
    let sink = lab.sink(Side::B, true).unwrap();
    let to = format!("{}:9", lab.ip4_b);
    let big = "3814";
    let out = xsend_in_a(
        &lab,
        &[
            "bench",
            "--backend",
            "live",
            "--to",
            &to,
            "--size",
            big,
            "--count",
            "10",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("do not fit one page"), "{err}");
    assert_eq!(sink.frames().unwrap(), 0, "nothing sent before the refusal");
    let v = bench(&lab, &["--to", &to, "--size", big, "--count", "100"]);
    assert_eq!(v["backend"], "xdp", "{v}");
    assert!(
        v["fallback_reasons"].to_string().contains("one page"),
        "{v}"
    );
    assert_eq!(v["packets"], 100);
    assert_eq!(sink.frames().unwrap(), 100);
    // Frames that fit stay on live frames, at this MTU too.
    let v = bench(&lab, &["--to", &to, "--size", "1514", "--count", "100"]);
    assert_eq!(v["backend"], "live", "{v}");
    assert_eq!(sink.frames().unwrap(), 200);
}
