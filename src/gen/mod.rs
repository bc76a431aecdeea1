//! The line-rate generator behind `xsend bench`: synthetic UDP datagrams (a sequence number,
//! valid IP and UDP checksums) or stateless TCP segments, of fixed, listed, weighted or IMIX
//! sizes, over one or many flows, as fast as possible or on an open-loop schedule
//! (`--pps`/`--bps`), with one pinned thread per queue: in the kernel (live frames: our XDP
//! program stamps and redirects each frame, [`live`]) or on AF_XDP (frames written in user
//! space), whichever [`GenBackend`](crate::GenBackend) asks for; `Auto` takes live frames when
//! the target takes redirected frames and reports why not otherwise.
//!
//! ```no_run
//! use std::time::Duration;
//! use xsend::gen::{GenSpec, Imix};
//!
//! # fn main() -> xsend::Result<()> {
//! // Auto: live frames when the interface takes redirected frames, AF_XDP otherwise.
//! let mut gen = xsend::Connection::udp("198.18.0.2:9".parse().unwrap())
//!     .gen_backend(xsend::GenBackend::Auto)
//!     .generator()?;
//! let mut spec = GenSpec::new(Imix::parse("64").unwrap());
//! spec.duration = Some(Duration::from_secs(5));
//! let r = gen.run(&spec)?;
//! println!(
//!     "{} packets in {:.2} s over {} ({:?})",
//!     r.packets,
//!     r.seconds,
//!     gen.info().backend,
//!     gen.info().fallback_reasons
//! );
//! # Ok(()) }
//! ```

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::api::CancelHandle;
use crate::device::live::{self as live_dev, LivePort};
use crate::device::xdp::{self, XdpQueue};
use crate::device::{Port, TxQueue};
use crate::engine::gen::{generate, GenFramers, GenLoop};
use crate::engine::{on_threads, OpCtx, Totals};
use crate::error::{Error, Result};
use crate::options::{ConnConfig, GenBackend, ProgressFn, Proto};
use crate::report::BackendInfo;
pub use crate::sansio::flows::{FlowRanges, MAX_FLOWS};
use crate::sansio::framer::{TcpFramer, UdpFramer};
pub use crate::sansio::pacing::Imix;

mod live;
use crate::sansio::pacing::Pacer;
use crate::stats::{self, Percentiles};
use crate::sys::thread::pin_to_cpu;

/// What a generator run should send.
#[derive(Debug, Clone)]
pub struct GenSpec {
    /// Ethernet frame lengths without FCS (headers included), with weights.
    pub sizes: Imix,
    /// Target packets per second over all queues (`None`: as fast as possible).
    pub rate_pps: Option<f64>,
    /// Packets due together under a rate (≥ 1).
    pub burst: u64,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after this many frames (over all queues).
    pub count: Option<u64>,
    /// Frame TCP segments instead of UDP datagrams (`--tcp-stateless`): ACK|PSH segments
    /// with consistent sequence numbers (advancing by the payload) and valid checksums, no
    /// handshake, for device-under-test benchmarking.
    pub tcp_stateless: bool,
    /// Multi-flow: ranges (inclusive) substituted into each queue's flow; packets cycle
    /// through every combination, round robin. `None` keeps the connection's value.
    pub flows: FlowRanges,
    /// Live frames: frames per page_pool cycle and redirect flush (1..=256; 0: 256). Under
    /// a rate, whole slots are released on time: `burst` frames if above 1, else `batch` if
    /// set, else 64.
    pub batch: u32,
    /// Live frames: run the benchmark's reference loop (the constant template redirected,
    /// nothing stamped: the kernel's ceiling) instead of the generator.
    #[doc(hidden)]
    pub reference: bool,
}

impl GenSpec {
    /// Frames of `sizes`, unpaced, until stopped (set `duration` or `count`).
    pub fn new(sizes: Imix) -> Self {
        GenSpec {
            sizes,
            rate_pps: None,
            burst: 1,
            duration: None,
            count: None,
            tcp_stateless: false,
            flows: FlowRanges::default(),
            batch: 0,
            reference: false,
        }
    }
}

/// What a generator run sent: AF_XDP, frames whose completion came back; live frames, frames
/// the target interface counted as transmitted (at most those submitted).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GenReport {
    /// Frames.
    pub packets: u64,
    /// Frame bytes (without FCS).
    pub bytes: u64,
    /// Wall time from the first submission to the last completion.
    pub seconds: f64,
    /// Time from TX-ring submission to completion (per batch, every frame counted).
    pub completion: Option<Percentiles>,
    /// With a rate: time between consecutive departures (frames handed to the ring).
    pub inter_departure: Option<Percentiles>,
    /// With a rate: how late each frame was handed to the ring against its schedule (AF_XDP;
    /// live frames are released by the kernel and have none).
    pub lateness: Option<Percentiles>,
    /// Live frames: frames the program stamped and redirected.
    pub submitted: Option<u64>,
    /// Live frames: submitted frames the target did not count as transmitted (a full queue,
    /// a device gone). `packets` is the interface's TX counter over the run (at most
    /// `submitted`): other traffic leaving the interface meanwhile counts too.
    pub dropped: Option<u64>,
    /// Live frames: frames per page_pool cycle and redirect flush.
    pub batch: Option<u32>,
}

/// Where the frames are made.
enum Engine {
    Xdp(Port<XdpQueue>),
    Live(LivePort),
    #[cfg(feature = "dpdk")]
    Dpdk(Port<crate::device::dpdk::DpdkQueue>),
}

/// A frame generator: live frames in the kernel, or AF_XDP queues.
pub struct Generator {
    engine: Engine,
    cfg: ConnConfig,
    cancel: CancelHandle,
    progress: Option<ProgressFn>,
}

impl Generator {
    /// Open `cfg.gen_backend` for `cfg` (its peer, interface, MAC, queues; AF_XDP: ring and
    /// checksum choice).
    pub(crate) fn open(mut cfg: ConnConfig) -> Result<Self> {
        cfg.proto = Proto::Udp;
        let engine = match cfg.gen_backend {
            GenBackend::Xdp => Engine::Xdp(open_xdp(&cfg, Vec::new())?),
            GenBackend::Live => Engine::Live(live_dev::open(&cfg, cfg.queues.max(1))?),
            #[cfg(feature = "dpdk")]
            GenBackend::Dpdk => Engine::Dpdk(crate::device::dpdk::open(&cfg)?.0),
            #[cfg(not(feature = "dpdk"))]
            GenBackend::Dpdk => return Err(crate::device::dpdk::not_built()),
            GenBackend::Auto => match live_dev::open(&cfg, cfg.queues.max(1)) {
                Ok(p) => Engine::Live(p),
                Err(Error::BackendUnavailable { reason, .. }) => {
                    Engine::Xdp(open_xdp(&cfg, vec![format!("live frames: {reason}")])?)
                }
                Err(e) => return Err(e),
            },
        };
        Ok(Generator {
            engine,
            progress: cfg.progress.clone(),
            cfg,
            cancel: CancelHandle::new(),
        })
    }

    /// Whether this kernel runs XDP programs over live frames for this process (the `live`
    /// backend's precondition beyond the target interface): `BackendUnavailable` saying
    /// why not. Probed once per process; nothing is sent.
    pub fn live_frames_supported() -> Result<()> {
        live_dev::kernel_runs_live_frames()
    }

    /// What was obtained.
    pub fn info(&self) -> &BackendInfo {
        match &self.engine {
            Engine::Xdp(p) => &p.info,
            Engine::Live(p) => &p.info,
            #[cfg(feature = "dpdk")]
            Engine::Dpdk(p) => &p.info,
        }
    }

    /// The most probe streams a run of `spec` can number on `queues` sending queues or
    /// live-frames runners (the `queues` asked of the builder): sizes a receiving port that
    /// must be attached before the generator exists — a live-frames generator into the
    /// receiving port's own interface needs the port's XDP program there first. At least
    /// [`Generator::streams`].
    pub fn max_streams(spec: &GenSpec, queues: u32) -> Result<u32> {
        let n = spec.flows.count()? * u64::from(queues.max(1));
        u32::try_from(n).map_err(|_| Error::InvalidOption(format!("{n} streams")))
    }

    /// The probe streams a run of `spec` numbers (sending queues or runners × flows): the
    /// table a receiving port ([`crate::rxport::RxPort`]) needs for it.
    pub fn streams(&self, spec: &GenSpec) -> Result<u32> {
        let (base, n) = match &self.engine {
            Engine::Xdp(p) => (&p.flows[0], p.queues.len()),
            Engine::Live(p) => (&p.flows[0], p.flows.len()),
            #[cfg(feature = "dpdk")]
            Engine::Dpdk(p) => (&p.flows[0], p.queues.len()),
        };
        Ok((spec.flows.expand(base)?.len() * n).max(1) as u32)
    }

    /// A handle that stops a running [`Generator::run`] (it returns what was sent so far).
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// Send until the spec's duration or count is reached, or the run is cancelled.
    pub fn run(&mut self, spec: &GenSpec) -> Result<GenReport> {
        let ctx = self.ctx();
        if let Engine::Live(port) = &mut self.engine {
            let reason = match live::run(port, spec, &ctx) {
                // Auto: a run live frames cannot make (frames over a page, ...) goes to
                // AF_XDP, with the reason.
                Err(Error::BackendUnavailable { reason, .. })
                    if self.cfg.gen_backend == GenBackend::Auto =>
                {
                    reason
                }
                r => return r,
            };
            // What the live port holds (our program on the target, ports) goes first.
            port.release();
            let p = open_xdp(&self.cfg, vec![format!("live frames: {reason}")])?;
            self.engine = Engine::Xdp(p);
        }
        match &mut self.engine {
            Engine::Xdp(port) => run_queues(port, spec, &ctx),
            #[cfg(feature = "dpdk")]
            Engine::Dpdk(port) => run_queues(port, spec, &ctx),
            Engine::Live(_) => unreachable!("live runs returned above"),
        }
    }

    fn ctx(&self) -> OpCtx {
        OpCtx {
            cancel: self.cancel.flag(),
            progress: self.progress.clone(),
            total: 0,
        }
    }
}

/// AF_XDP for a generator; `reasons` (why not live frames) go first in the report.
fn open_xdp(cfg: &ConnConfig, mut reasons: Vec<String>) -> Result<Port<XdpQueue>> {
    let mut port = xdp::open(&xdp::Request { cfg, rx_frames: 0 })?;
    reasons.append(&mut port.info.fallback_reasons);
    port.info.fallback_reasons = reasons;
    Ok(port)
}

/// A run on a device's queues (AF_XDP, DPDK): one thread per queue.
fn run_queues<D: TxQueue>(port: &mut Port<D>, spec: &GenSpec, ctx: &OpCtx) -> Result<GenReport> {
    let mtu = port.mtu;
    let mut framers = Vec::with_capacity(port.flows.len());
    for f in &port.flows {
        let flows = spec.flows.expand(f)?;
        framers.push(if spec.tcp_stateless {
            GenFramers::Tcp(flows.iter().map(|f| TcpFramer::new(f, mtu)).collect())
        } else {
            GenFramers::Udp(flows.iter().map(|f| UdpFramer::new(f, mtu)).collect())
        });
    }
    let hdr = framers[0].header_len();
    let caps = *port.queues[0].caps();
    let max_payload = UdpFramer::new(&port.flows[0], mtu).max_payload();
    let max = (UdpFramer::new(&port.flows[0], mtu).frame_len(max_payload))
        .min(caps.buf_capacity)
        .min(caps.max_frame);
    let min = hdr.max(60);
    for &(size, _) in spec.sizes.sizes() {
        if size < min || size > max {
            return Err(Error::InvalidOption(format!(
                "frame size {size} outside {min}..={max} for this path (headers {hdr} bytes, MTU {mtu})"
            )));
        }
    }
    let nq = port.queues.len() as u64;
    // Probe streams: queue q's flow k is stream q × flows + k.
    let nflows = framers[0].len();
    let start = Instant::now();
    let deadline = spec.duration.map(|d| start + d);
    let totals = Totals::default();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let work: Vec<_> = port.queues.iter_mut().zip(framers).collect();
    let results = on_threads(work, |q, (dev, fr)| {
        // With several queues, one TX thread per CPU (best effort).
        if nq > 1 {
            let _ = pin_to_cpu(q % cpus);
        }
        let q = q as u64;
        let run = GenLoop {
            sizes: spec.sizes.clone(),
            // The rate and the count split over queues: the first `count % nq` send one
            // more.
            pacer: spec
                .rate_pps
                .map(|r| Pacer::new(r / nq as f64, spec.burst, 0)),
            limit: spec.count.map(|c| c / nq + u64::from(q < c % nq)),
            deadline,
            stream_base: (q as usize * nflows) as u32,
        };
        generate(dev, fr, run, ctx, &totals)
    });
    let mut r = GenReport {
        seconds: start.elapsed().as_secs_f64(),
        ..Default::default()
    };
    let mut hists = [stats::histogram(), stats::histogram(), stats::histogram()];
    for x in results {
        let (s, h) = x?;
        r.packets += s.packets;
        r.bytes += s.bytes;
        for (all, one) in hists.iter_mut().zip(h.iter()) {
            let _ = all.add(one);
        }
    }
    r.completion = Percentiles::of(&hists[0]);
    r.inter_departure = Percentiles::of(&hists[1]);
    r.lateness = Percentiles::of(&hists[2]);
    Ok(r)
}
