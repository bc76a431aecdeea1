//! The DUT topology (`xsend lab up --topology dut`): frames sent from tester port A to B
//! cross a forwarding namespace; its policer gives it a known capacity.

mod common;

use common::*;
use xsend::lab::{DutConfig, DutLab};

fn bench_in_a(lab: &DutLab, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(xsend_bin())
        .args(["bench", "--json", "--netns", &lab.ns_a])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xsend bench {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out.stdout)
}

/// Through a DUT without a limit every frame arrives at B (routed: TTL and MACs rewritten by
/// the DUT, still counted); through a policed DUT what is not forwarded is exactly what its
/// policer dropped; `lab down` removes all three namespaces.
#[test]
fn frames_cross_the_dut_and_the_policer_accounts_for_every_loss() {
    need_live!();
    let _wire = udp_lock();
    let to = "198.19.0.2:9";
    {
        let lab = DutLab::up(&DutConfig::default()).unwrap();
        let sink = lab.sink_b(true).unwrap();
        for backend in ["live", "xdp"] {
            let before = sink.frames().unwrap();
            let v = bench_in_a(
                &lab,
                &[
                    "--backend",
                    backend,
                    "--to",
                    to,
                    "--count",
                    "20000",
                    "--pps",
                    "50k",
                ],
            );
            assert_eq!(v["backend"], backend, "{v}");
            let sent = left_the_port(&v, 20000);
            assert_eq!(
                sink.frames().unwrap() - before,
                sent,
                "{backend}: every frame that left crossed the DUT"
            );
        }
        assert_eq!(lab.policed().unwrap(), 0);
    }
    let lab = DutLab::up(&DutConfig {
        rate_pps: Some(20_000.0),
        ..Default::default()
    })
    .unwrap();
    let sink = lab.sink_b(true).unwrap();
    let v = bench_in_a(&lab, &["--to", to, "--count", "30000", "--pps", "100k"]);
    let sent = left_the_port(&v, 30000);
    let got = sink.frames().unwrap();
    let policed = lab.policed().unwrap();
    assert!(
        policed > 0 && got < sent,
        "the policer acted: got {got}, policed {policed}"
    );
    assert_eq!(
        got + policed,
        sent,
        "every frame either forwarded or policed"
    );
    // `xsend lab down` knows the third namespace.
    let name = lab.name.clone();
    let lab = lab.keep();
    drop(sink);
    xsend::lab::Lab::remove(&name).unwrap();
    for s in ["a", "d", "b"] {
        assert!(
            !netns_exists(&format!("{name}{s}")),
            "{name}{s} left behind"
        );
    }
    drop(lab);
}

/// The receiving port on tester port B counts every frame of a `--count N` run through a DUT
/// without a limit (no loss, no gap, no duplicate, a latency), for both generators; with the
/// DUT's nft dropping every 10th frame, its loss and sequence gaps are exactly what nft dropped.
#[test]
fn the_receiving_port_counts_what_the_dut_forwards_and_drops() {
    need_live!();
    let _wire = udp_lock();
    let lab = DutLab::up(&DutConfig::default()).unwrap();
    let rx = [
        "--rx-netns",
        lab.ns_b.as_str(),
        "--rx-iface",
        lab.if_b.as_str(),
    ];
    let run = |backend: &str| {
        let mut args = vec![
            "--backend",
            backend,
            "--to",
            "198.19.0.2:9",
            "--count",
            "20000",
            "--pps",
            "50k",
        ];
        args.extend(rx);
        bench_in_a(&lab, &args)
    };
    for backend in ["live", "xdp"] {
        let v = run(backend);
        let sent = left_the_port(&v, 20000);
        let refused = 20000 - sent;
        let r = &v["rx"];
        assert_eq!(r["received"], sent, "{backend}: {r}");
        assert_eq!(r["lost"], refused, "{backend}: {r}");
        if refused == 0 {
            assert_eq!(r["gaps"], 0, "{backend}: {r}");
        }
        assert_eq!(r["duplicated"], 0, "{backend}: {r}");
        assert_eq!(r["unknown_stream"], 0, "{backend}: {r}");
        let p50 = r["latency"]["p50_us"].as_f64().unwrap_or(-1.0);
        assert!(p50 > 0.0, "{backend}: a latency was measured: {r}");
    }
    let nft = |script: &str| {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &lab.ns_d, "nft", script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nft {script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    nft("add table inet t");
    nft("add chain inet t c { type filter hook forward priority 0; }");
    nft("add rule inet t c udp dport 9 numgen inc mod 10 0 counter drop");
    for backend in ["live", "xdp"] {
        let before = nft_dropped(&nft("list chain inet t c"));
        let v = run(backend);
        let sent = left_the_port(&v, 20000);
        let refused = 20000 - sent;
        let dropped = nft_dropped(&nft("list chain inet t c")) - before;
        let r = &v["rx"];
        assert_eq!(r["received"], sent - dropped, "{backend}: {r}");
        assert_eq!(r["lost"], dropped + refused, "{backend}: {r}");
        assert_eq!(r["seq_lost"], dropped + refused, "{backend}: {r}");
        if refused == 0 {
            assert_eq!(dropped, 2000, "{backend}: nft dropped every 10th frame");
            assert_eq!(
                r["gaps"], dropped,
                "{backend}: one gap per dropped frame: {r}"
            );
        }
        assert_eq!(r["duplicated"], 0, "{backend}: {r}");
    }
}

/// The frames of a `--count count` run that left port A: all of them, but for what the sending
/// veth refused, which the report counts (`dropped`: its ring to the peer was full, as under
/// a slow receiver such as an emulated VM's) and which must make up the difference.
fn left_the_port(v: &serde_json::Value, count: u64) -> u64 {
    let sent = v["packets"].as_u64().expect("packets");
    let refused = v["dropped"].as_u64().unwrap_or(0);
    assert_eq!(
        sent + refused,
        count,
        "every frame sent or counted as refused: {v}"
    );
    if refused > 0 {
        eprintln!("note: the sending veth refused {refused} frame(s) under load");
    }
    sent
}

/// The packet count of the first `counter packets N` in `nft list` output.
fn nft_dropped(list: &str) -> u64 {
    let mut words = list.split_whitespace();
    while let Some(w) = words.next() {
        if w == "packets" {
            return words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        }
    }
    panic!("no counter in {list}")
}

/// `xsend ndr` through a DUT policed at a known rate: an NDR at or below it and above half of
/// it (the machine is shared: the benchmark reports it exactly), a PDR at least the NDR, every
/// field of the JSON results there.
#[test]
fn ndr_finds_the_policed_rate_of_the_dut() {
    need_root!();
    let _wire = udp_lock();
    let rate = 50_000.0;
    let lab = DutLab::up(&DutConfig {
        rate_pps: Some(rate),
        ..Default::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("ndr.png");
    let out = std::process::Command::new(xsend_bin())
        .args([
            "ndr",
            "--json",
            "--netns",
            &lab.ns_a,
            "--to",
            "198.19.0.2:9",
        ])
        .args(["--rx-netns", &lab.ns_b, "--rx-iface", &lab.if_b])
        .args([
            "--size",
            "64",
            "--trial",
            "1",
            "--final",
            "2",
            "--precision",
            "2%",
        ])
        .arg("--plot")
        .arg(&plot)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out.stdout);
    let r = &v["results"][0];
    for f in [
        "size",
        "ndr_pps",
        "ndr_gbps",
        "pdr_pps",
        "pdr_gbps",
        "ndr_confirmed",
        "pdr_confirmed",
        "latency_p50_us",
        "latency_p99_us",
        "trials",
    ] {
        assert!(r.get(f).is_some(), "field {f} missing: {r}");
    }
    let ndr = r["ndr_pps"].as_f64().unwrap();
    let pdr = r["pdr_pps"].as_f64().unwrap();
    // The policer's bucket holds 10 ms of its rate: a trial passes at most 1 % over it.
    assert!(
        ndr <= rate * 1.01 && ndr > rate / 2.0,
        "NDR {ndr} for a DUT policed at {rate}; the search: {r}"
    );
    assert!(pdr >= ndr, "PDR {pdr} below NDR {ndr}");
    let p50 = r["latency_p50_us"].as_f64().unwrap_or(-1.0);
    assert!(p50 > 0.0, "a latency at the NDR: {r}");
    assert!(r["trials"].as_u64().unwrap() < 60);
    let png = std::fs::read(&plot).expect("the --plot PNG");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // Bad values are refused before anything runs.
    let bad = std::process::Command::new(xsend_bin())
        .args([
            "ndr",
            "--to",
            "198.19.0.2:9",
            "--rx-iface",
            "x",
            "--pdr",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let gone = std::process::Command::new(xsend_bin())
        .args([
            "ndr",
            "--netns",
            &lab.ns_a,
            "--to",
            "198.19.0.2:9",
            "--rx-iface",
            "nosuch0",
        ])
        .output()
        .unwrap();
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("nosuch0"));
}
