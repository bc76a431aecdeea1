//! The kernel-socket fallback: `sendfile(2)` (TCP, corked with the pre/post buffers) and
//! batched `sendmmsg(2)` (UDP, refusing datagrams that do not fit the path MTU). The kernel
//! frames the packets itself, so there is no device under this transport.
//!
//! Sockets are non-blocking; waits are `poll(2)` slices of 100 ms so cancellation (Ctrl-C) and
//! dead peers are noticed, and `TCP_USER_TIMEOUT` bounds how long unacknowledged data may wait.

mod tcp;
mod udp;

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use self::tcp::KernelTcp;
use self::udp::KernelUdp;
use crate::engine::{OpCtx, Transport};
use crate::error::{Error, Result};
use crate::options::{ConnConfig, Proto};
use crate::report::BackendInfo;
use crate::sys::{netdev, socket};

/// How long one wait for a writable socket lasts before cancellation is checked again.
const POLL_SLICE: Duration = Duration::from_millis(100);

/// Open a kernel socket for `cfg`.
pub(crate) fn open(cfg: &ConnConfig, reasons: Vec<String>) -> Result<Box<dyn Transport>> {
    if let Some(name) = &cfg.iface {
        if netdev::if_nametoindex(name).is_none() {
            return Err(Error::InterfaceNotFound { name: name.clone() });
        }
    }
    let ty = match cfg.proto {
        Proto::Tcp => Type::STREAM,
        Proto::Udp => Type::DGRAM,
    };
    let proto = match cfg.proto {
        Proto::Tcp => Protocol::TCP,
        Proto::Udp => Protocol::UDP,
    };
    let sock = Socket::new(Domain::for_address(cfg.peer), ty, Some(proto))
        .map_err(|e| Error::io("creating socket", e))?;
    if let Some(name) = &cfg.iface {
        sock.bind_device(Some(name.as_bytes())).map_err(|e| {
            if e.kind() == io::ErrorKind::PermissionDenied {
                Error::NoPermission {
                    what: format!("SO_BINDTODEVICE {name} needs CAP_NET_RAW"),
                }
            } else {
                Error::io(format!("binding to interface {name}"), e)
            }
        })?;
    }
    if let Some(b) = cfg.bind {
        sock.bind(&b.into())
            .map_err(|e| Error::io(format!("binding {b}"), e))?;
    }
    let mut info = BackendInfo {
        backend: "kernel",
        iface: cfg.iface.clone(),
        fallback_reasons: reasons,
        ..BackendInfo::default()
    };
    let peer: SockAddr = cfg.peer.into();
    let connect_err = |e: io::Error| match e.raw_os_error() {
        Some(libc::ENETDOWN | libc::ENODEV | libc::ENXIO) => Error::InterfaceDown {
            name: cfg.iface.clone().unwrap_or_else(|| cfg.peer.to_string()),
            source: e,
        },
        _ => Error::Connect {
            addr: cfg.peer,
            source: e,
        },
    };
    match cfg.proto {
        Proto::Tcp => {
            let _ = sock.set_tcp_user_timeout(Some(cfg.user_timeout));
            sock.connect_timeout(&peer, cfg.connect_timeout)
                .map_err(connect_err)?;
            sock.set_nonblocking(true)
                .map_err(|e| Error::io("set_nonblocking", e))?;
            info.mode = "sendfile".into();
            Ok(Box::new(KernelTcp::new(sock, cfg.clone(), info)))
        }
        Proto::Udp => {
            sock.connect(&peer).map_err(connect_err)?;
            sock.set_nonblocking(true)
                .map_err(|e| Error::io("set_nonblocking", e))?;
            info.mode = "sendmmsg".into();
            Ok(Box::new(KernelUdp::new(sock, cfg.clone(), info)?))
        }
    }
}

/// Map an OS error during a send to a typed error.
pub(super) fn send_error(cfg: &ConnConfig, e: io::Error, sent: u64) -> Error {
    match e.raw_os_error() {
        Some(
            libc::EPIPE
            | libc::ECONNRESET
            | libc::ETIMEDOUT
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH
            | libc::ECONNREFUSED
            | libc::ENOTCONN,
        ) => Error::PeerGone {
            addr: cfg.peer,
            sent,
            source: e,
        },
        Some(libc::ENETDOWN | libc::ENODEV | libc::ENXIO) => Error::InterfaceDown {
            name: cfg.iface.clone().unwrap_or_else(|| cfg.peer.to_string()),
            source: e,
        },
        _ => Error::io(format!("sending to {}", cfg.peer), e),
    }
}

/// Wait (a slice) until the socket is writable; errors and cancellation end the wait.
pub(super) fn wait_writable(sock: &Socket, cfg: &ConnConfig, ctx: &OpCtx, sent: u64) -> Result<()> {
    ctx.check_cancel(sent)?;
    let rev =
        socket::poll(sock.as_fd(), libc::POLLOUT, POLL_SLICE).map_err(|e| Error::io("poll", e))?;
    if rev & (libc::POLLERR | libc::POLLHUP) != 0 {
        if let Ok(Some(e)) = sock.take_error() {
            return Err(send_error(cfg, e, sent));
        }
    }
    Ok(())
}
