//! Peak resident memory of this process, for benchmarks (Linux; elsewhere unknown).

/// Peak resident memory of this process in MiB since the last [`reset_peak_memory`] (Linux).
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Starts a new peak-memory measurement (Linux; elsewhere the peak covers the whole process).
pub fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
