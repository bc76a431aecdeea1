//! Ctrl-C and SIGTERM: cancel whatever operation is running and exit 130.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;

/// Where the running operation's cancel handle is kept for the signal handler.
pub(crate) type CancelSlot = Arc<Mutex<Option<xsend::CancelHandle>>>;

/// Install a Ctrl-C/SIGTERM handler that cancels whatever operation is put in the slot
/// (also one put there after the signal came).
pub(crate) fn cancel_on_signal() -> anyhow::Result<(CancelSlot, Arc<AtomicBool>)> {
    let slot: CancelSlot = Arc::new(Mutex::new(None));
    let stop = Arc::new(AtomicBool::new(false));
    let (s, st) = (slot.clone(), stop.clone());
    ctrlc::set_handler(move || {
        st.store(true, Ordering::SeqCst);
        if let Some(c) = s.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            c.cancel();
        }
    })
    .context("installing the Ctrl-C handler")?;
    Ok((slot, stop))
}

/// Put a cancel handle in the slot, cancelling at once if a signal came first.
pub(crate) fn arm(slot: &CancelSlot, stop: &AtomicBool, c: xsend::CancelHandle) {
    if stop.load(Ordering::SeqCst) {
        c.cancel();
    }
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
}
