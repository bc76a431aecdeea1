//! The sans-IO core: protocol logic with no I/O, no clock of its own and no libc, so that it
//! is unit tested, property tested and fuzzed on its own.
//!
//! - [`wire`]: typed views over packet bytes (smoltcp style: `new_checked`, accessors,
//!   `Repr::parse`/`emit`) for Ethernet/VLAN, IPv4, IPv6, UDP, TCP, the xsend header and the generator's probe header;
//! - [`framer`]: per-flow header templates that turn payloads into frames (lengths, IDs,
//!   checksums), never past the MTU or the buffer;
//! - [`tcp`]: the TCP sender state machine (congestion control behind a trait, SACK
//!   scoreboard);
//! - [`pacing`]: the open-loop pacer and frame-size mixes;
//! - [`cut`]: cutting a payload into datagrams;
//! - [`flows`]: multi-flow ranges;
//! - [`live`]: the tables of the in-kernel generator (`bpf/live.bpf.c`) and its model;
//! - [`rewrite`]: rewriting captured frames (MACs, address maps, checksums fixed incrementally);
//! - [`schedule`]: when each packet of a replayed capture is due;
//! - [`search`]: the RFC 2544 throughput search (NDR and PDR) over trials the caller runs;
//! - [`seqtrack`]: the receiving port's per-stream sequence tracking and latency buckets
//!   (the model of `bpf/rxport.bpf.c`).

pub mod cut;
pub mod flows;
pub mod framer;
pub(crate) mod live;
pub mod neigh;
pub mod pacing;
pub mod rewrite;
pub mod schedule;
pub mod search;
pub mod seqtrack;
pub mod tcp;
pub mod wire;
