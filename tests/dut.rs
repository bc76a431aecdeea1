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
    need_root!();
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
            assert_eq!(v["packets"], 20000, "{v}");
            assert_eq!(
                sink.frames().unwrap() - before,
                20000,
                "{backend}: every frame crossed the DUT"
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
    let sent = v["packets"].as_u64().unwrap();
    assert_eq!(sent, 30000, "{v}");
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
        "latency_p50_us",
        "latency_p99_us",
        "trials",
    ] {
        assert!(r.get(f).is_some(), "field {f} missing: {r}");
    }
    let ndr = r["ndr_pps"].as_f64().unwrap();
    let pdr = r["pdr_pps"].as_f64().unwrap();
    // The policer's burst lets a 1 s trial pass at most `burst` frames over the rate.
    assert!(
        ndr <= rate * 1.005 && ndr > rate / 2.0,
        "NDR {ndr} for a DUT policed at {rate}"
    );
    assert!(pdr >= ndr, "PDR {pdr} below NDR {ndr}");
    assert!(r["trials"].as_u64().unwrap() < 60);
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
