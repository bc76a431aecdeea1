//! Compiles the XDP program in bpf/ with clang (via libbpf-cargo) into OUT_DIR.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let multiarch = match arch.as_str() {
        "aarch64" => "aarch64-linux-gnu",
        _ => "x86_64-linux-gnu",
    };
    let src = "bpf/xsend.bpf.c";
    println!("cargo:rerun-if-changed=bpf/build.rs");
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
}
