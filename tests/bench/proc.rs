//! CPU time and resident memory of processes, read from /proc, for the benchmarks.

/// Clock ticks per second of /proc's CPU times.
const TICKS: f64 = 100.0;

/// CPU seconds of a process, from /proc: its own (user + system), and with `children` also that
/// of its children that ended (`cutime` + `cstime`).
pub fn cpu_times(pid: u32, children: bool) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime, stime, cutime, cstime are fields 14–17 of the line, 12–15 after the name.
    let own = tick(11) + tick(12);
    let ended = if children { tick(13) + tick(14) } else { 0.0 };
    (own + ended) / TICKS
}

pub fn cpu_of(pid: u32) -> f64 {
    cpu_times(pid, false)
}

/// CPU seconds of PostgreSQL: every live `postgres` process, and those that ended (a backend
/// whose connection closed, an autovacuum worker), counted in their parent's children's times.
pub fn postgres_cpu() -> f64 {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(|pid| cpu_times(pid, true))
        .sum()
}

/// Resident memory of a process, MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
