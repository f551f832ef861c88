//! Lowering the node's CPU priority (`--nice`), all but the thread that answers readers.

/// Lowers the calling thread, and so every thread it starts afterwards, to `nice`; first
/// starts the thread that serves `<prefix>.reads`, which keeps the priority the node started
/// with. Returns that thread, or `None` when nothing was lowered.
pub(crate) fn lower_all_but_reads(nice: i32, node: &str) -> Option<ReadsThread> {
    if !would_lower(nice) {
        return None;
    }
    let reads = match ReadsThread::start(node) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the reads thread; reads run at the lowered priority");
            None
        }
    };
    lower_to(nice);
    reads
}

/// A thread with a runtime of its own, for the node's `reads_runtime`.
pub(crate) struct ReadsThread {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReadsThread {
    fn start(node: &str) -> std::io::Result<ReadsThread> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("ddb-reads-{node}"))
            .spawn(move || {
                let _ = rt.block_on(stopped);
            })?;
        Ok(ReadsThread {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub(crate) fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }
}

impl Drop for ReadsThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(unix)]
fn would_lower(nice: i32) -> bool {
    // Only ever lower it: a node started with `nice -n 19` stays there.
    nice > rustix::process::getpriority_process(None).unwrap_or(0)
}

#[cfg(unix)]
fn lower_to(nice: i32) {
    // On Linux this sets the calling thread's priority; threads started later inherit it.
    match rustix::process::setpriority_process(None, nice) {
        Ok(()) => tracing::info!(nice, "CPU priority lowered (reads keep the started one)"),
        Err(e) => tracing::warn!(nice, error = %e, "cannot lower the CPU priority"),
    }
}

#[cfg(not(unix))]
fn would_lower(nice: i32) -> bool {
    if nice != 0 {
        tracing::warn!(nice, "--nice is not supported on this platform; ignored");
    }
    false
}

#[cfg(not(unix))]
fn lower_to(_nice: i32) {}
