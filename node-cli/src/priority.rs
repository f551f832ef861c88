//! Lowering the node's CPU priority (`--nice`).

#[cfg(unix)]
pub(crate) fn lower_priority_to(nice: i32) {
    use rustix::process::{getpriority_process, setpriority_process};
    // Only ever lower it: a node started with `nice -n 19` stays there.
    let current = getpriority_process(None).unwrap_or(0);
    if nice <= current {
        return;
    }
    match setpriority_process(None, nice) {
        Ok(()) => tracing::info!(nice, "CPU priority lowered"),
        Err(e) => tracing::warn!(nice, error = %e, "cannot lower the CPU priority"),
    }
}

#[cfg(not(unix))]
pub(crate) fn lower_priority_to(nice: i32) {
    tracing::warn!(nice, "--nice is not supported on this platform; ignored");
}
