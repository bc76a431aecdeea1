//! `xsend replay`: captures written here (pcap with µs and ns timestamps, pcapng with several
//! interfaces and sections) replayed into the peer, which must see the same frames in the
//! same order, byte for byte after rewriting; loops, oversize frames, jumbo frames, bad
//! captures, and memory flat whatever the capture's size.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;
use etherparse::PacketBuilder;
use xsend::lab::{Lab, LabConfig, Side};

const PORT: u16 = 7300;

/// A UDP frame `src → dst:PORT` with `len` bytes of frame in all, checksums valid.
fn udp_frame(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    len: usize,
    i: u16,
) -> Vec<u8> {
    let payload = pattern(len - 42, i as u64 + 1);
    let mut v = Vec::with_capacity(len);
    PacketBuilder::ethernet2(smac, dmac)
        .ipv4(src.octets(), dst.octets(), 64)
        .udp(40_000 + i, PORT)
        .write(&mut v, &payload)
        .unwrap();
    v
}

fn mac(s: &str) -> [u8; 6] {
    let b: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    b.try_into().unwrap()
}

/// The frames as captured "elsewhere" (198.19.0.0/16, foreign MACs), and as they must arrive
/// in the lab after rewriting.
fn frames(lab: &Lab, sizes: &[usize]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (fa, fb) = ([2, 0xaa, 0, 0, 0, 1], [2, 0xaa, 0, 0, 0, 2]);
    let (oa, ob) = (Ipv4Addr::new(198, 19, 0, 1), Ipv4Addr::new(198, 19, 0, 2));
    let captured = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| udp_frame(fa, fb, oa, ob, n, i as u16))
        .collect();
    let wanted = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            udp_frame(
                mac(&lab.mac_a),
                mac(&lab.mac_b),
                lab.ip4_a,
                lab.ip4_b,
                n,
                i as u16,
            )
        })
        .collect();
    (captured, wanted)
}

fn rewrite_args(lab: &Lab) -> Vec<String> {
    [
        "--dst-mac".to_string(),
        lab.mac_b.clone(),
        "--src-mac".into(),
        lab.mac_a.clone(),
        "--src-ip".into(),
        format!("198.19.0.1={}", lab.ip4_a),
        "--dst-ip".into(),
        lab.ip4_b.to_string(),
    ]
    .to_vec()
}

/// Classic pcap: `nanos` picks the nanosecond magic; `snaplen`, `linktype` as given.
fn write_pcap(p: &Path, frames: &[Vec<u8>], gap_ns: u64, nanos: bool, snaplen: u32, linktype: u32) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(p).unwrap());
    let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
    f.write_all(&magic.to_le_bytes()).unwrap();
    f.write_all(&2u16.to_le_bytes()).unwrap();
    f.write_all(&4u16.to_le_bytes()).unwrap();
    f.write_all(&[0u8; 8]).unwrap();
    f.write_all(&snaplen.to_le_bytes()).unwrap();
    f.write_all(&linktype.to_le_bytes()).unwrap();
    for (i, fr) in frames.iter().enumerate() {
        let t = 1_700_000_000_000_000_000u64 + i as u64 * gap_ns;
        let sub = if nanos {
            t % 1_000_000_000
        } else {
            t % 1_000_000_000 / 1000
        };
        f.write_all(&((t / 1_000_000_000) as u32).to_le_bytes())
            .unwrap();
        f.write_all(&(sub as u32).to_le_bytes()).unwrap();
        f.write_all(&(fr.len() as u32).to_le_bytes()).unwrap();
        f.write_all(&(fr.len() as u32).to_le_bytes()).unwrap();
        f.write_all(fr).unwrap();
    }
}

fn block(f: &mut impl Write, ty: u32, body: &[u8]) {
    let len = 12 + body.len().div_ceil(4) * 4;
    f.write_all(&ty.to_le_bytes()).unwrap();
    f.write_all(&(len as u32).to_le_bytes()).unwrap();
    f.write_all(body).unwrap();
    f.write_all(&vec![0u8; body.len().div_ceil(4) * 4 - body.len()])
        .unwrap();
    f.write_all(&(len as u32).to_le_bytes()).unwrap();
}

/// pcapng: two sections, each with two interfaces (µs and ns resolution); the frames are
/// spread over them in turn.
fn write_pcapng(p: &Path, frames: &[Vec<u8>], gap_ns: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(p).unwrap());
    let half = frames.len() / 2;
    for (s, part) in [&frames[..half], &frames[half..]].iter().enumerate() {
        let mut shb = vec![];
        shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        block(&mut f, 0x0a0d_0d0a, &shb);
        for res in [6u8, 9] {
            let mut idb = vec![];
            idb.extend_from_slice(&1u16.to_le_bytes());
            idb.extend_from_slice(&0u16.to_le_bytes());
            idb.extend_from_slice(&0u32.to_le_bytes());
            // if_tsresol option (9), 1 byte, padded; then end of options.
            idb.extend_from_slice(&9u16.to_le_bytes());
            idb.extend_from_slice(&1u16.to_le_bytes());
            idb.extend_from_slice(&[res, 0, 0, 0]);
            idb.extend_from_slice(&[0u8; 4]);
            block(&mut f, 1, &idb);
        }
        for (j, fr) in part.iter().enumerate() {
            let i = s * half + j;
            let iface = (i % 2) as u32;
            let t_ns = 1_700_000_000_000_000_000u64 + i as u64 * gap_ns;
            let t = if iface == 0 { t_ns / 1000 } else { t_ns };
            let mut epb = vec![];
            epb.extend_from_slice(&iface.to_le_bytes());
            epb.extend_from_slice(&((t >> 32) as u32).to_le_bytes());
            epb.extend_from_slice(&(t as u32).to_le_bytes());
            epb.extend_from_slice(&(fr.len() as u32).to_le_bytes());
            epb.extend_from_slice(&(fr.len() as u32).to_le_bytes());
            epb.extend_from_slice(fr);
            epb.extend_from_slice(&vec![0u8; fr.len().div_ceil(4) * 4 - fr.len()]);
            block(&mut f, 6, &epb);
        }
    }
}

/// tcpdump in side B writing `cap`, stopping after `n` frames of our port.
fn capture(lab: &Lab, cap: &Path, n: usize) -> Child {
    let mut c = lab
        .command(Side::B, "tcpdump")
        .args([
            "-i",
            &lab.if_b,
            "-n",
            "-U",
            "-s",
            "0",
            "-B",
            "32768",
            "-c",
            &n.to_string(),
            "-w",
        ])
        .arg(cap)
        .args(["udp", "dst", "port", &PORT.to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump");
    let err = c.stderr.take().unwrap();
    let mut lines = BufReader::new(err).lines();
    assert!(lines.any(|l| l.map(|l| l.contains("listening on")).unwrap_or(false)));
    c
}

fn replay(lab: &Lab, file: &Path, extra: &[String]) -> std::process::Output {
    let mut args = vec![
        "replay".to_string(),
        file.to_str().unwrap().to_string(),
        "--iface".into(),
        lab.if_a.clone(),
        "--json".into(),
    ];
    args.extend(extra.iter().cloned());
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    xsend_in_a(lab, &a)
}

#[test]
fn replayed_frames_arrive_byte_for_byte_in_order() {
    need_live!();
    let _l = udp_lock();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let sizes: Vec<usize> = (0..24)
        .map(|i| [60, 64, 200, 512, 1000, 1514][i % 6])
        .collect();
    let (captured, wanted) = frames(&lab, &sizes);
    let files = [("us.pcap", 0), ("ns.pcap", 1), ("two-sections.pcapng", 2)];
    for (name, kind) in files {
        let p = dir.path().join(name);
        match kind {
            0 => write_pcap(&p, &captured, 20_000, false, 65535, 1),
            1 => write_pcap(&p, &captured, 20_000, true, 65535, 1),
            _ => write_pcapng(&p, &captured, 20_000),
        }
        for backend in ["xdp", "kernel", "live"] {
            // Live frames need the veth's peer to take redirected frames: an XDP program
            // there (the lab's counting sink, passing every frame on to the capture).
            let sink = (backend == "live").then(|| lab.sink(Side::B, false).unwrap());
            let cap = dir.path().join(format!("{name}-{backend}.cap"));
            let mut dump = capture(&lab, &cap, wanted.len());
            let mut extra = rewrite_args(&lab);
            extra.extend(["--backend".to_string(), backend.to_string()]);
            let out = replay(&lab, &p, &extra);
            assert!(
                out.status.success(),
                "{name} {backend}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let r = json(&out.stdout);
            assert_eq!(r["backend"], backend, "{r}");
            assert_eq!(r["packets"], wanted.len(), "{r}");
            assert!(r["timing_error"]["p99_ns"].is_u64(), "{r}");
            wait_capture(&mut dump, Duration::from_secs(10));
            let got = pcap_frames(&std::fs::read(&cap).unwrap());
            assert_eq!(
                got.len(),
                wanted.len(),
                "{name} {backend}: frames at the peer"
            );
            for (i, (g, w)) in got.iter().zip(&wanted).enumerate() {
                assert!(g == w, "{name} {backend}: frame {i} differs");
            }
            if let Some(sink) = sink {
                assert_eq!(r["dropped"], 0, "{r}");
                assert_eq!(sink.frames().unwrap(), wanted.len() as u64);
            }
        }
    }
}

#[test]
fn loops_oversize_frames_and_strict() {
    need_live!();
    let _l = udp_lock();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (captured, wanted) = frames(&lab, &[100, 300, 1514]);
    let p = dir.path().join("three.pcap");
    write_pcap(&p, &captured, 1000, false, 65535, 1);
    // --loop 3 sends exactly 3×, in order.
    let cap = dir.path().join("loop.cap");
    let mut dump = capture(&lab, &cap, 9);
    let mut extra = rewrite_args(&lab);
    extra.extend(["--loop", "3", "--topspeed"].map(String::from));
    let out = replay(&lab, &p, &extra);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&out.stdout);
    assert_eq!(
        (r["packets"].clone(), r["loops"].clone()),
        (9.into(), 3.into()),
        "{r}"
    );
    wait_capture(&mut dump, Duration::from_secs(10));
    let got = pcap_frames(&std::fs::read(&cap).unwrap());
    let want: Vec<_> = wanted.iter().cycle().take(9).cloned().collect();
    assert_eq!(got, want);
    // Live frames asked for while the peer takes no redirected frames: refused, saying why.
    let mut live = extra.clone();
    live.extend(["--backend", "live"].map(String::from));
    let out = replay(&lab, &p, &live);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not take redirected frames"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same at top speed on live frames, which `auto` takes once the peer takes
    // redirected frames; then the peer's counting sink saw exactly 3 × 3 frames.
    {
        let sink = lab.sink(Side::B, false).unwrap();
        let cap = dir.path().join("loop-live.cap");
        let mut dump = capture(&lab, &cap, 9);
        let out = replay(&lab, &p, &extra);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = json(&out.stdout);
        assert_eq!(r["backend"], "live", "{r}");
        assert_eq!(
            (r["packets"].clone(), r["dropped"].clone()),
            (9.into(), 0.into()),
            "{r}"
        );
        wait_capture(&mut dump, Duration::from_secs(10));
        assert_eq!(pcap_frames(&std::fs::read(&cap).unwrap()), want);
        assert_eq!(sink.frames().unwrap(), 9);
    }
    // A frame over the MTU: skipped and counted; with --strict, refused before sending.
    let (mut big, _) = frames(&lab, &[100, 2000, 300]);
    let pb = dir.path().join("big.pcap");
    write_pcap(&pb, &big, 1000, false, 65535, 1);
    let mut extra = rewrite_args(&lab);
    extra.push("--strict".into());
    let out = replay(&lab, &pb, &extra);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was sent"));
    // Just over the link: an untagged 1515-byte frame (MTU + 15; the 4 bytes beyond MTU + 14
    // are for a VLAN tag only) is refused too.
    let (edge, _) = frames(&lab, &[100, 1515]);
    let pe = dir.path().join("edge.pcap");
    write_pcap(&pe, &edge, 1000, false, 65535, 1);
    let out = replay(&lab, &pe, &extra);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("largest 1515"));
    let cap = dir.path().join("big.cap");
    let mut dump = capture(&lab, &cap, 2);
    let out = replay(&lab, &pb, &rewrite_args(&lab));
    assert!(out.status.success());
    let r = json(&out.stdout);
    assert_eq!(
        (r["packets"].clone(), r["skipped_oversize"].clone()),
        (2.into(), 1.into())
    );
    wait_capture(&mut dump, Duration::from_secs(10));
    // What the strict run refused never arrived: the first two frames seen are these.
    let got = pcap_frames(&std::fs::read(&cap).unwrap());
    assert_eq!(got.len(), 2);
    big.remove(1);
    assert_eq!(got[0].len(), big[0].len());
    assert_eq!(got[1].len(), big[1].len());
}

#[test]
fn jumbo_frames_go_out_whole_over_multi_buffer_af_xdp_and_af_packet() {
    need_root!();
    let _l = udp_lock();
    let lab = lab_with(LabConfig {
        mtu: 9000,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (captured, wanted) = frames(&lab, &[9014, 1514, 9014]);
    let p = dir.path().join("jumbo.pcap");
    write_pcap(&p, &captured, 1000, false, 65535, 1);
    for backend in ["auto", "kernel"] {
        let cap = dir.path().join(format!("jumbo-{backend}.cap"));
        let mut dump = capture(&lab, &cap, 3);
        let mut args = rewrite_args(&lab);
        args.extend(["--backend".to_string(), backend.to_string()]);
        let out = replay(&lab, &p, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = json(&out.stdout);
        if backend == "auto" {
            // Live frames cannot carry 9014 bytes (one page each); AF_XDP sends them as
            // three descriptors each.
            assert_eq!(
                (&r["backend"], &r["segments"]),
                (&"xdp".into(), &3.into()),
                "{r}"
            );
            let why = r["fallback_reasons"].as_array().unwrap();
            assert!(
                why[0].as_str().unwrap().starts_with("live: "),
                "live frames were tried first: {r}"
            );
        } else {
            assert_eq!(r["backend"], "kernel", "{r}");
        }
        wait_capture(&mut dump, Duration::from_secs(10));
        assert_eq!(
            pcap_frames(&std::fs::read(&cap).unwrap()),
            wanted,
            "{backend}"
        );
    }
}

#[test]
fn bad_captures_are_clear_errors_and_send_nothing() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (captured, _) = frames(&lab, &[100, 200, 300]);
    let d = dir.path();
    std::fs::write(
        d.join("garbage.pcap"),
        b"this is not a capture at all, not even close",
    )
    .unwrap();
    write_pcap(&d.join("ok.pcap"), &captured, 1000, false, 65535, 1);
    let whole = std::fs::read(d.join("ok.pcap")).unwrap();
    std::fs::write(d.join("cut.pcap"), &whole[..whole.len() - 150]).unwrap();
    write_pcap(&d.join("snap.pcap"), &captured, 1000, false, 150, 1);
    write_pcap(&d.join("rawip.pcap"), &captured, 1000, false, 65535, 101);
    let mut tiny = captured.clone();
    tiny.insert(1, vec![0u8; 10]);
    write_pcap(&d.join("tiny.pcap"), &tiny, 1000, false, 65535, 1);
    let fifo = d.join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for (name, says) in [
        ("garbage.pcap", "not a pcap or pcapng file"),
        ("cut.pcap", "truncated"),
        ("snap.pcap", "longer than the snap length 150"),
        ("rawip.pcap", "not Ethernet"),
        (
            "tiny.pcap",
            "record 2: 10 bytes captured, less than an Ethernet header",
        ),
        ("missing.pcap", "not found"),
        ("fifo", "fifo"),
    ] {
        let before = lab.stats(Side::B).unwrap().rx_packets;
        let out = replay(&lab, &d.join(name), &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
        // Every check comes before the first frame: the truncated file sends none of its
        // good records either.
        let after = lab.stats(Side::B).unwrap().rx_packets;
        assert!(
            after - before < 3,
            "{name}: {} frames arrived",
            after - before
        );
    }
}

#[test]
fn a_two_gib_capture_replays_with_flat_memory() {
    need_root!();
    let _l = udp_lock();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (captured, _) = frames(&lab, &[1514]);
    // 2 GiB of 1514-byte records, written as a stream.
    let p = dir.path().join("big.pcap");
    {
        let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&p).unwrap());
        f.write_all(&0xa1b2_c3d4u32.to_le_bytes()).unwrap();
        f.write_all(&[
            2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
        ])
        .unwrap();
        let n = (2u64 << 30) / (16 + 1514);
        for i in 0..n {
            f.write_all(&((i / 1_000_000) as u32).to_le_bytes())
                .unwrap();
            f.write_all(&((i % 1_000_000) as u32).to_le_bytes())
                .unwrap();
            f.write_all(&1514u32.to_le_bytes()).unwrap();
            f.write_all(&1514u32.to_le_bytes()).unwrap();
            f.write_all(&captured[0]).unwrap();
        }
    }
    let mut extra = rewrite_args(&lab);
    extra.push("--topspeed".into());
    let out = replay(&lab, &p, &extra);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&out.stdout);
    assert_eq!(r["packets"].as_u64().unwrap(), (2u64 << 30) / 1530, "{r}");
    let rss = r["max_rss_kib"].as_u64().unwrap();
    assert!(rss < 64 << 10, "peak RSS {rss} KiB for a 2 GiB capture");
}

/// A live-frames replay that runs until stopped: Ctrl-C ends it with what it sent (exit 130),
/// and the sending interface deleted under it ends it with `InterfaceDown` (exit 1), never a
/// hang.
#[test]
fn live_replay_stops_on_ctrl_c_and_when_the_interface_goes() {
    need_live!();
    let _l = udp_lock();
    let lab = lab();
    let sink = lab.sink(Side::B, true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (captured, _) = frames(&lab, &[64, 300]);
    let p = dir.path().join("two.pcap");
    write_pcap(&p, &captured, 1000, false, 65535, 1);
    let start = |sink: &xsend::lab::Sink| {
        let mut child = lab
            .command(Side::A, xsend_bin())
            .arg("replay")
            .arg(&p)
            .args(["--iface", &lab.if_a, "--backend", "live", "--loop", "0"])
            .args(["--pps", "50k", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Running once the peer counts frames.
        let before = sink.frames().unwrap();
        while sink.frames().unwrap() < before + 1000 {
            if let Some(st) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                panic!(
                    "replay ended early ({st}): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        ChildGuard(Some(child))
    };
    let g = start(&sink);
    let pid = g.0.as_ref().unwrap().id() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = g.wait_output();
    assert_eq!(out.status.code(), Some(130));
    let r = json(&out.stdout);
    assert_eq!(r["backend"], "live", "{r}");
    assert!(r["packets"].as_u64().unwrap() >= 1000, "{r}");
    let g = start(&sink);
    let del = std::process::Command::new("ip")
        .args(["-n", &lab.ns_a, "link", "del", &lab.if_a])
        .status()
        .unwrap();
    assert!(del.success());
    let out = g.wait_output();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("down or gone") || err.contains("not found"),
        "{err}"
    );
}
