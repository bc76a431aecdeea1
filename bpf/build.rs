//! Compiles the XDP program in bpf/ with clang (via libbpf-cargo) into OUT_DIR.

use std::path::PathBuf;

#[cfg(feature = "dpdk")]
#[path = "build_dpdk.rs"]
mod dpdk;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let multiarch = match arch.as_str() {
        "aarch64" => "aarch64-linux-gnu",
        _ => "x86_64-linux-gnu",
    };
    #[cfg(feature = "dpdk")]
    dpdk::build(&out);
    let src = "bpf/xsend.bpf.c";
    println!("cargo:rerun-if-changed=bpf/build.rs");
    println!("cargo:rerun-if-changed=bpf/lat_bucket.h");
    if let Err(e) = libbpf_cargo::SkeletonBuilder::new()
        .source(src)
        .obj(out.join("xsend.bpf.o"))
        .clang_args(["-O2", "-g", "-Wall", &format!("-I/usr/include/{multiarch}")])
        .build_and_generate(out.join("xsend.skel.rs"))
    {
        panic!(
            "building {src} failed (needs clang, llvm, libelf-dev: run scripts/setup.sh): {e:#}"
        );
    }
    println!("cargo:rerun-if-changed={src}");

    // The in-kernel generator (bench --backend live), the lab's counting sink, the
    // receiving port and replay on live frames.
    for (src, obj) in [
        ("bpf/live.bpf.c", "live.bpf.o"),
        ("bpf/sink.bpf.c", "sink.bpf.o"),
        ("bpf/rxport.bpf.c", "rxport.bpf.o"),
        ("bpf/replay.bpf.c", "replay.bpf.o"),
    ] {
        if let Err(e) = libbpf_cargo::SkeletonBuilder::new()
            .source(src)
            .obj(out.join(obj))
            .clang_args(["-O2", "-g", "-Wall", &format!("-I/usr/include/{multiarch}")])
            .build()
        {
            panic!("building {src} failed: {e:#}");
        }
        println!("cargo:rerun-if-changed={src}");
    }

    // Loss injection for the tests (bpf/lossy.bpf.c), one object per variant.
    let lossy = "bpf/lossy.bpf.c";
    for (name, defs) in [
        ("lossy_data_1pct.bpf.o", ["-DDATA", "-DEVERY=100"]),
        ("lossy_data_5pct.bpf.o", ["-DDATA", "-DEVERY=20"]),
        ("lossy_acks_10pct.bpf.o", ["-DACKS", "-DEVERY=10"]),
    ] {
        let inc = format!("-I/usr/include/{multiarch}");
        if let Err(e) = libbpf_cargo::SkeletonBuilder::new()
            .source(lossy)
            .obj(out.join(name))
            .clang_args(["-O2", "-g", "-Wall", &inc, defs[0], defs[1]])
            .build()
        {
            panic!("building {lossy} ({name}) failed: {e:#}");
        }
    }
    println!("cargo:rerun-if-changed={lossy}");
}
