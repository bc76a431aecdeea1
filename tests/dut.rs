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
