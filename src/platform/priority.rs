//! Thread priority: work that only feeds the training loop yields the cores to it.

/// Lowers the calling thread's scheduling priority (Linux: nice 19; elsewhere nothing).
///
/// The training loop splits each batch across every core and waits for the slowest part. A
/// decoder thread at the same priority takes a core from one part, and the others wait for it
/// (a 2-core run sat at 160 % CPU). At the lowest priority the decoder runs in the gaps the
/// loop leaves, and on a free core when the loop waits for a batch.
pub fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    // SAFETY: `gettid` has no preconditions, and `setpriority` on the caller's own thread id
    // changes only its nice value; a refusal (an error return) leaves it as it was.
    unsafe {
        let thread = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, 19);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn a_lowered_thread_runs_at_nice_19_and_others_keep_theirs() {
        let before = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        let lowered = std::thread::spawn(|| {
            super::lower_this_thread();
            unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
        })
        .join()
        .unwrap();
        assert_eq!(lowered, 19);
        let after = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        assert_eq!(before, after);
    }
}
