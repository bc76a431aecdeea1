//! The DPDK backend (feature `dpdk`) over vdevs on veth labs: `net_af_xdp` and
//! `net_af_packet` on the lab's interface (receivers are the peer's kernel), `net_pcap`
//! writing every TX frame to a file, and bad input. Each send is an `xsend` process: the EAL
//! starts once per process.
#![cfg(feature = "dpdk")]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use xsend::lab::{Lab, Side};
use xsend::wire::{probe, xsend as xhdr};

use common::*;

const PMDS: [&str; 2] = ["net_af_xdp", "net_af_packet"];

/// The payload road `auto` takes for a file of 1 MiB or more on `pmd`.
fn zero_copy_of(pmd: &str) -> &'static str {
    if pmd == "net_af_xdp" {
        "copy"
    } else {
        "zero-copy"
    }
}

fn vdev(pmd: &str, lab: &Lab) -> String {
    format!("--vdev={pmd}0,iface={}", lab.if_a)
}

/// `xsend ARGS --backend dpdk --dpdk-args EAL` in side A.
fn dpdk_in_a(lab: &Lab, eal: &str, args: &[&str]) -> std::process::Output {
    let mut a: Vec<&str> = args.to_vec();
    a.extend(["--backend", "dpdk", "--dpdk-args", eal]);
    xsend_in_a(lab, &a)
}

fn ok(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "xsend failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    json(&out.stdout)
}

/// This process's children must not leave EAL runtime directories behind.
/// (A killed process's directory goes a moment after the process, with its switch: waited
/// for.)
fn no_runtime_dirs_left() {
    let gone = eventually(|| runtime_dirs_left().is_empty());
    assert!(gone, "left in /var/run/dpdk: {:?}", runtime_dirs_left());
}

/// EAL runtime directories of xsend processes that have ended.
fn runtime_dirs_left() -> Vec<String> {
    std::fs::read_dir("/var/run/dpdk")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("xsend-"))
                .filter(|n| {
                    // Only dead processes' directories count: other tests run meanwhile.
                    let pid = n.trim_start_matches("xsend-");
                    !Path::new(&format!("/proc/{pid}")).exists()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn chunked_udp_256mib_verified_over_af_xdp_and_af_packet() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let path = big_file(dir.path(), 256 << 20);
    let sha = sha256_file(&path);
    for (i, pmd) in PMDS.into_iter().enumerate() {
        let listen = format!("{}:{}", lab.ip4_b, 12_000 + i);
        let recv = spawn_recv(
            &lab,
            &[
                "--listen",
                &listen,
                "--proto",
                "udp",
                "--expect-sha256",
                &sha,
                "--json",
            ],
        );
        let v = ok(&dpdk_in_a(
            &lab,
            &vdev(pmd, &lab),
            &[
                "send",
                path.to_str().unwrap(),
                "--to",
                &listen,
                "--proto",
                "udp",
                "--chunk",
                "auto",
                "--json",
            ],
        ));
        assert_eq!(v["backend"], "dpdk", "{v}");
        assert_eq!(v["driver"], pmd, "{v}");
        assert_eq!(v["dpdk_port"], 0, "{v}");
        assert_eq!(v["mode"], format!("{pmd}/copy"), "{v}");
        // net_af_packet gathers chained mbufs: the file's pages go as they are.
        assert_eq!(v["payload"], zero_copy_of(pmd), "{v}");
        assert_eq!(v["bytes"], 256u64 << 20, "{v}");
        // The next hop was resolved over the port itself.
        assert_eq!(v["dst_mac"], "02:58:53:00:00:0b", "{v}");
        let out = recv.wait_output();
        let r = json(&out.stdout);
        assert!(out.status.success(), "{pmd}: {r}");
        assert_eq!(r["verified"], true, "{pmd}: {r}");
        assert_eq!(r["lost"], 0, "{pmd}: {r}");
        assert!(
            !xdp_attached(&lab, Side::A),
            "{pmd}: the PMD's XDP program is still attached"
        );
    }
    no_runtime_dirs_left();
}

/// Two queue pairs (one thread each) on net_af_packet: xsend gives the vdev its queue count
/// (`qpairs=`), and the two queues' datagrams reassemble at the receiver. net_af_xdp opens
/// at most the interface's combined channels, which a veth has none of: refused, saying so.
#[test]
fn chunked_udp_over_two_queues_verified() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab_with(xsend::lab::LabConfig {
        queues: 2,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let path = big_file(dir.path(), 64 << 20);
    let sha = sha256_file(&path);
    for (i, pmd) in PMDS.into_iter().enumerate() {
        let listen = format!("{}:{}", lab.ip4_b, 12_400 + i);
        let args = [
            "send",
            path.to_str().unwrap(),
            "--to",
            &listen,
            "--proto",
            "udp",
            "--queues",
            "2",
            "--json",
        ];
        if pmd == "net_af_xdp" {
            let out = dpdk_in_a(&lab, &vdev(pmd, &lab), &args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success());
            assert!(
                err.contains("2 queues asked for") && err.contains("combined channels"),
                "{err}"
            );
            continue;
        }
        let recv = spawn_recv(
            &lab,
            &[
                "--listen",
                &listen,
                "--proto",
                "udp",
                "--expect-sha256",
                &sha,
                "--json",
            ],
        );
        let v = ok(&dpdk_in_a(&lab, &vdev(pmd, &lab), &args));
        assert_eq!(v["queues"], 2, "{v}");
        assert!(v["eal_args"].to_string().contains("qpairs=2"), "{v}");
        let out = recv.wait_output();
        let r = json(&out.stdout);
        assert!(out.status.success(), "{pmd}: {r}");
        assert_eq!(r["verified"], true, "{pmd}: {r}");
        assert_eq!(r["lost"], 0, "{pmd}: {r}");
    }
    no_runtime_dirs_left();
}

/// The generator over both PMDs, one size (frames written once and re-stamped: every mbuf of
/// the pool goes out) and a mix: the peer's receiving port counts every frame of its probe
/// stream, none lost. (net_af_xdp maps its pool as the UMEM; a pool laid out with padding
/// left mbufs outside it, whose frames the kernel dropped.)
#[test]
fn generator_frames_all_arrive_over_af_xdp_and_af_packet() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab();
    let to = format!("{}:9", lab.ip4_b);
    for pmd in PMDS {
        for (size, count) in [("64", "30000"), ("1514", "20000"), ("64,1514", "20000")] {
            let v = ok(&dpdk_in_a(
                &lab,
                &vdev(pmd, &lab),
                &[
                    "bench",
                    "--to",
                    &to,
                    "--size",
                    size,
                    "--count",
                    count,
                    "--rx-iface",
                    &lab.if_b,
                    "--rx-netns",
                    &lab.ns_b,
                    "--json",
                ],
            ));
            let n: u64 = count.parse().unwrap();
            assert_eq!(v["packets"], n, "{pmd} {size}: {v}");
            let rx = &v["rx"];
            assert_eq!(rx["received"], n, "{pmd} {size}: {rx}");
            assert_eq!(rx["lost"], 0, "{pmd} {size}: {rx}");
        }
    }
    no_runtime_dirs_left();
}

#[test]
fn datagram_boundaries_and_oversize_refused() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "d", 3 * 1000 + 123, 5);
    for (i, pmd) in PMDS.into_iter().enumerate() {
        let dst = SocketAddr::from((lab.ip4_b, 12_100 + i as u16));
        let sink = udp_sink(&lab, dst);
        let v = ok(&dpdk_in_a(
            &lab,
            &vdev(pmd, &lab),
            &[
                "send",
                path.to_str().unwrap(),
                "--to",
                &dst.to_string(),
                "--proto",
                "udp",
                "--raw",
                "--chunk",
                "1000",
                "--json",
            ],
        ));
        assert_eq!(v["packets"], 4, "{v}");
        let got = recv_datagrams(&sink, 4);
        let lens: Vec<usize> = got.iter().map(Vec::len).collect();
        assert_eq!(lens, [1000, 1000, 1000, 123], "{pmd}");
        assert_eq!(got.concat(), data, "{pmd}");
        // 1473 bytes in one datagram do not fit MTU 1500: refused, nothing sent.
        let (big, _) = file(dir.path(), "big", 1473, 6);
        let out = dpdk_in_a(
            &lab,
            &vdev(pmd, &lab),
            &[
                "send",
                big.to_str().unwrap(),
                "--to",
                &dst.to_string(),
                "--proto",
                "udp",
                "--chunk",
                "none",
            ],
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("1473") && err.contains("1472"), "{err}");
        sink.set_read_timeout(Some(std::time::Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 2048];
        assert!(sink.recv(&mut buf).is_err(), "{pmd}: something arrived");
    }
    no_runtime_dirs_left();
}

#[test]
fn tcp_byte_exact_over_af_xdp_and_af_packet_also_with_loss() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (small, small_data) = file(dir.path(), "s", (1 << 20) + 7, 9);
    let big = big_file(dir.path(), 256 << 20);
    let big_sha = sha256_file(&big);
    let mut port = 12_200;
    for loss in [false, true] {
        if loss {
            drop_data(&lab, "lossy_data_1pct.bpf.o");
        }
        for pmd in PMDS {
            for (path, len) in [(&small, (1u64 << 20) + 7), (&big, 256 << 20)] {
                port += 1;
                let dst = SocketAddr::from((lab.ip4_b, port));
                let sink = tcp_sink(&lab, dst, 1);
                let v = ok(&dpdk_in_a(
                    &lab,
                    &vdev(pmd, &lab),
                    &[
                        "send",
                        path.to_str().unwrap(),
                        "--to",
                        &dst.to_string(),
                        "--proto",
                        "tcp",
                        "--json",
                    ],
                ));
                assert_eq!(v["backend"], "dpdk", "{v}");
                assert_eq!(v["bytes"], len, "{v}");
                assert_eq!(v["payload"], zero_copy_of(pmd), "{v}");
                let got = sink.join().unwrap().remove(0);
                assert_eq!(got.len, len, "{pmd} loss {loss}");
                if len == (1 << 20) + 7 {
                    assert!(
                        got.data.as_deref() == Some(&small_data[..]),
                        "{pmd}: bytes differ"
                    );
                } else {
                    assert_eq!(got.sha256, big_sha, "{pmd} loss {loss}");
                }
                if loss && len > 1 << 20 {
                    assert!(v["tcp"]["retransmits"].as_u64().unwrap() > 0, "{v}");
                }
            }
        }
    }
    // No nftables table of ours is left in the namespace.
    let t = lab
        .command(Side::A, "nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&t.stdout).contains("xsend_"),
        "{}",
        String::from_utf8_lossy(&t.stdout)
    );
    no_runtime_dirs_left();
}

/// Frames of a pcap file, checked: Ethernet/IPv4/UDP with valid IP and UDP checksums.
fn udp_frames(pcap: &Path) -> Vec<(usize, Vec<u8>)> {
    let b = std::fs::read(pcap).unwrap();
    pcap_frames(&b)
        .into_iter()
        .map(|f| {
            let p = SlicedPacket::from_ethernet(&f).unwrap();
            let Some(NetSlice::Ipv4(ip)) = &p.net else {
                panic!("not IPv4")
            };
            let h = ip.header().to_header();
            assert_eq!(h.header_checksum, h.calc_header_checksum());
            let Some(TransportSlice::Udp(u)) = &p.transport else {
                panic!("not UDP")
            };
            let uh = u.to_header();
            let payload = u.payload();
            assert_eq!(uh.checksum, uh.calc_checksum_ipv4(&h, payload).unwrap());
            assert_eq!(uh.length as usize, 8 + payload.len());
            (f.len(), payload.to_vec())
        })
        .collect()
}

#[test]
fn net_pcap_frames_of_a_generator_run_and_a_chunked_file() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("gen.pcap");
    let eal = format!("--vdev=net_pcap0,tx_pcap={}", pcap.display());
    let common = [
        "--to",
        "198.18.0.2:9",
        "--src-ip",
        "198.18.0.1",
        "--dst-mac",
        "02:58:53:00:00:0b",
        "--json",
    ];
    let mut args = vec!["bench", "--count", "3000", "--size", "64,512,1514"];
    args.extend(common);
    let v = ok(&dpdk_in_a(&lab, &eal, &args));
    assert_eq!(v["driver"], "net_pcap", "{v}");
    assert_eq!(v["packets"], 3000, "{v}");
    let frames = udp_frames(&pcap);
    assert_eq!(frames.len(), 3000);
    for (next, (len, payload)) in frames.iter().enumerate() {
        assert!([60, 64, 512, 1514].contains(len), "{len}");
        let p = probe::Repr::parse(payload).unwrap();
        assert_eq!((p.stream, p.seq), (0, next as u64));
    }
    // A chunked file, copied into mbufs and sent from the file's pages (chained mbufs):
    // payloads are the file's bytes, in order, every datagram in one frame.
    let (path, data) = file(dir.path(), "f", 3_000_007, 3);
    for payload in ["copy", "zero-copy"] {
        let pcap2 = dir.path().join(format!("file-{payload}.pcap"));
        let eal2 = format!("--vdev=net_pcap0,tx_pcap={}", pcap2.display());
        let mut args = vec![
            "send",
            path.to_str().unwrap(),
            "--proto",
            "udp",
            "--chunk",
            "auto",
            "--payload",
            payload,
        ];
        args.extend(common);
        let v = ok(&dpdk_in_a(&lab, &eal2, &args));
        assert_eq!(v["bytes"], 3_000_007, "{v}");
        assert_eq!(v["payload"], payload, "{v}");
        let mut got = vec![0u8; data.len()];
        let (mut ends, mut frames) = (0, 0);
        for (len, p) in udp_frames(&pcap2) {
            assert!(len <= 1514);
            let h = xhdr::Packet::new_checked(&p[..]).unwrap();
            if h.flags() & xhdr::FLAG_END != 0 {
                ends += 1;
                continue;
            }
            frames += 1;
            let off = h.offset() as usize;
            got[off..off + h.payload().len()].copy_from_slice(h.payload());
        }
        assert_eq!(ends, 3, "{payload}");
        assert_eq!(frames, v["packets"].as_u64().unwrap(), "{payload}: {v}");
        assert!(got == data, "{payload}: payload differs from the file");
    }
    no_runtime_dirs_left();
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_nothing() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = file(dir.path(), "x", 10_000, 1);
    let to = format!("{}:9", lab.ip4_b);
    let send = |eal: &str, extra: &[&str]| {
        let mut a = vec![
            "send",
            path.to_str().unwrap(),
            "--to",
            &to,
            "--proto",
            "udp",
        ];
        a.extend(extra);
        dpdk_in_a(&lab, eal, &a)
    };
    let af = vdev("net_af_packet", &lab);
    for (eal, extra, want) in [
        // No device named: no port.
        ("", &[][..], "found no port"),
        (
            &af[..],
            &["--dpdk-port", "3"][..],
            "DPDK port 3: the EAL found 1 port",
        ),
        ("--no-such-eal-flag", &[][..], "rte_eal_init"),
        ("--vdev=net_nosuchpmd0", &[][..], "rte_eal_init"),
        (&af[..], &["--queues", "64"][..], "64 queues asked for"),
        (
            "--vdev=net_null0",
            &[][..],
            "no kernel interface behind it: give our address with --src-ip",
        ),
        (
            "--vdev=net_null0",
            &["--src-ip", "198.18.0.1"][..],
            "no ARP answer from 198.18.0.2",
        ),
        (
            &af[..],
            &["--payload", "zero-copy"][..],
            "zero-copy payload",
        ),
    ] {
        let out = send(eal, extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{eal} {extra:?} succeeded");
        assert!(err.contains(want), "{eal} {extra:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // Zero-copy asked for where the PMD sends only a chain's first segment: refused before
    // anything is sent, saying why.
    let (big, _) = file(dir.path(), "big", 2 << 20, 5);
    let out = dpdk_in_a(
        &lab,
        &vdev("net_af_xdp", &lab),
        &[
            "send",
            big.to_str().unwrap(),
            "--to",
            &to,
            "--proto",
            "udp",
            "--payload",
            "zero-copy",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("zero-copy payload") && err.contains("first segment"),
        "{err}"
    );
    no_runtime_dirs_left();
}

/// An endless generator run over `pmd` in side A, once it reports progress; the rest of its
/// stderr lines.
fn endless_bench(
    lab: &Lab,
    pmd: &str,
) -> (
    ChildGuard,
    std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
) {
    endless_bench_with(lab, &vdev(pmd, lab), &[])
}

/// An endless generator run with EAL arguments `eal` (and `extra` arguments) in side A.
fn endless_bench_with(
    lab: &Lab,
    eal: &str,
    extra: &[&str],
) -> (
    ChildGuard,
    std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
) {
    let to = format!("{}:9", lab.ip4_b);
    let mut c = lab
        .command(Side::A, xsend_bin())
        .args([
            "bench",
            "--to",
            &to,
            "--backend",
            "dpdk",
            "--duration",
            "600",
        ])
        .args(["--dpdk-args", eal])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = c.stderr.take().unwrap();
    let guard = ChildGuard(Some(c));
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(err));
    assert!(lines.any(|l| l.map(|l| l.contains("packets/s")).unwrap_or(false)));
    (guard, lines)
}

/// Wait (at most 10 s: the switches act as the process ends) until `done`.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let t0 = std::time::Instant::now();
    while !done() && t0.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    done()
}

#[test]
fn interface_gone_mid_send_and_ctrl_c_clean_up() {
    need_root!();
    let lab = lab();
    // Ctrl-C during an endless generator run on net_af_xdp: reported, exit 130, the PMD's
    // XDP program and the EAL's runtime directory gone. SIGKILL: the program is detached by
    // the switch the port armed, and the runtime directory removed by the one the EAL armed
    // (both waited for: they act as the process ends).
    for sig in [libc::SIGINT, libc::SIGKILL] {
        let (guard, _lines) = endless_bench(&lab, "net_af_xdp");
        let pid = guard.0.as_ref().unwrap().id();
        let dir = format!("/var/run/dpdk/xsend-{pid}");
        assert!(Path::new(&dir).exists(), "no {dir} while it runs");
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(pid as i32, sig) };
        let out = guard.wait_output();
        if sig == libc::SIGINT {
            assert_eq!(out.status.code(), Some(130));
            assert!(
                !xdp_attached(&lab, Side::A),
                "XDP program left after Ctrl-C"
            );
            no_runtime_dirs_left();
        } else {
            assert!(
                eventually(|| !xdp_attached(&lab, Side::A)),
                "the PMD's XDP program left after SIGKILL"
            );
        }
        assert!(
            eventually(|| !Path::new(&dir).exists()),
            "{dir} left after signal {sig}"
        );
    }

    // The interface deleted during a long send: an error naming it, not a hang.
    let (guard, lines) = endless_bench(&lab, "net_af_packet");
    ip_ok(&lab, Side::A, "ip", &["link", "del", &lab.if_a]);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let out = guard.wait_output();
    assert!(!out.status.success());
    let rest = rest.join("\n");
    assert!(
        rest.contains(&lab.if_a) && rest.contains("down or gone"),
        "{rest}"
    );
    no_runtime_dirs_left();
}

/// Frames the peer's interface has received so far.
fn peer_rx_packets(lab: &Lab) -> u64 {
    let out = lab
        .command(Side::B, "ip")
        .args(["-s", "-j", "link", "show", &lab.if_b])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["stats64"]["rx"]["packets"].as_u64().unwrap()
}

/// A file truncated while its pages are being sent as external buffers (net_af_packet
/// copies them in its tx_burst): `FileTruncated` naming the new size, no SIGBUS, nothing left.
#[test]
fn zero_copy_file_truncated_mid_send_is_an_error_not_a_crash() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    let to = format!("{}:9", lab.ip4_b);
    let before = peer_rx_packets(&lab);
    let c = lab
        .command(Side::A, xsend_bin())
        .args([
            "send",
            path.to_str().unwrap(),
            "--to",
            &to,
            "--proto",
            "udp",
        ])
        .args(["--payload", "zero-copy", "--backend", "dpdk"])
        .args(["--dpdk-args", &vdev("net_af_packet", &lab)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(c));
    // Truncated once the peer has seen the send going (event, not time; a sender that ended
    // first is a failure, not a hang).
    while peer_rx_packets(&lab) < before + 2000 {
        if let Some(Ok(Some(st))) = guard.0.as_mut().map(|c| c.try_wait()) {
            panic!("the sender ended before the truncation: {st}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let out = guard.wait_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("truncated while being sent") && err.contains("file now has 1048576"),
        "{err}"
    );
    no_runtime_dirs_left();
}

/// A DPDK TCP sender killed with SIGKILL: the watchdog still makes the peer reset the
/// connection (over net_af_packet the kernel-blinding nftables table goes with the process,
/// so the kernel's TCP answers the peer; over net_af_xdp the PMD's XDP program, attached
/// without a link, is detached by the same kind of switch), and neither table nor program
/// is left.
#[test]
fn killed_tcp_sender_resets_the_peer_over_af_packet_and_af_xdp() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = file(dir.path(), "f", 256 << 20, 8);
    for (i, pmd) in PMDS.into_iter().enumerate() {
        let to = SocketAddr::from((lab.ip4_b, 12_300 + i as u16));
        let eal = vdev(pmd, &lab);
        let end = killed_sender_end(&lab, to, &path, &["--backend", "dpdk", "--dpdk-args", &eal]);
        assert_eq!(
            end, "ConnectionReset",
            "{pmd}: the peer learned of the kill"
        );
        // net_af_xdp attaches its program without a link: the switch detached it.
        assert!(
            !xdp_attached(&lab, Side::A),
            "{pmd}: the PMD's XDP program stayed after SIGKILL"
        );
        let t = lab
            .command(Side::A, "nft")
            .args(["list", "tables"])
            .output()
            .unwrap();
        let t = String::from_utf8_lossy(&t.stdout);
        assert!(!t.contains("xsend_"), "{pmd}: {t}");
    }
}

const NR_HUGEPAGES: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";

/// Free 2 MiB huge pages now (of that size: /proc/meminfo counts the default size only).
fn huge_free() -> u64 {
    std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Huge pages reserved for a test, the machine's count restored on drop.
struct HugePages(u64);
impl HugePages {
    /// `n` more 2 MiB pages than the machine has; `None` (said loudly) if it cannot give them.
    fn reserve(n: u64) -> Option<Self> {
        let Some(old) = std::fs::read_to_string(NR_HUGEPAGES)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        else {
            not_running(format!(
                "huge_pages: no 2 MiB huge pages on this kernel ({NR_HUGEPAGES}); NOT RUNNING"
            ));
            return None;
        };
        let guard = HugePages(old);
        let _ = std::fs::write(NR_HUGEPAGES, format!("{}", old + n));
        if huge_free() < n {
            not_running(format!(
                "huge_pages: the kernel gave fewer than {n} free 2 MiB huge pages; NOT RUNNING"
            ));
            return None;
        }
        Some(guard)
    }
}
impl Drop for HugePages {
    fn drop(&mut self) {
        let _ = std::fs::write(NR_HUGEPAGES, format!("{}", self.0));
    }
}

/// Files of xsend processes in any mounted hugetlbfs.
fn hugetlbfs_files() -> Vec<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"hugetlbfs")).then(|| f[1].to_string())
        })
        .flat_map(|m| {
            std::fs::read_dir(&m)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.path().display().to_string())
                        .filter(|p| p.contains("xsend-"))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect()
}

/// With huge pages (a real NIC's memory; here `-m 64` on net_null) the EAL's memory is in
/// memfds (`--in-memory`): after an exit, a Ctrl-C and a SIGKILL every huge page it took is
/// free again, nothing of ours is in hugetlbfs and the runtime directory is gone.
#[test]
fn huge_pages_are_given_back_after_exit_ctrl_c_and_sigkill() {
    need_root!();
    let Some(_pages) = HugePages::reserve(48) else {
        return;
    };
    let lab = lab();
    let free0 = huge_free();
    let eal = "--vdev=net_null0 -m 64";
    let ip = lab.ip4_a.to_string();
    let addr = ["--src-ip", &ip, "--dst-mac", &lab.mac_b];
    let to = format!("{}:9", lab.ip4_b);
    let mut args = vec!["bench", "--to", &to, "--count", "100000", "--json"];
    args.extend(addr);
    let v = ok(&dpdk_in_a(&lab, eal, &args));
    assert!(
        v["eal_args"].to_string().contains("--in-memory"),
        "{}",
        v["eal_args"]
    );
    for sig in [None, Some(libc::SIGINT), Some(libc::SIGKILL)] {
        if let Some(sig) = sig {
            let (guard, _lines) = endless_bench_with(&lab, eal, &addr);
            assert!(huge_free() < free0, "the run took no huge pages");
            // SAFETY: kill(2) of our own child.
            unsafe { libc::kill(guard.0.as_ref().unwrap().id() as i32, sig) };
            let out = guard.wait_output();
            if sig == libc::SIGINT {
                assert_eq!(out.status.code(), Some(130));
            }
        }
        // (After a SIGKILL the pages go when the last user of the memory, the switch that
        // removes the runtime directory, has exited.)
        assert!(
            eventually(|| huge_free() == free0),
            "after {sig:?}: {} of {free0} huge pages free",
            huge_free()
        );
        assert_eq!(hugetlbfs_files(), Vec::<String>::new(), "after {sig:?}");
        assert!(
            eventually(|| runtime_dirs_left().is_empty()),
            "after {sig:?}: left in /var/run/dpdk: {:?}",
            runtime_dirs_left()
        );
    }
}
