//! CPU time and peak memory of a process, read from Linux `/proc`.

use anyhow::{anyhow, Context, Result};

/// Clock ticks per second (`getconf CLK_TCK`): the unit of `utime`/`stime` in `/proc/*/stat`.
/// 100 is the value on every common Linux build; it is assumed only if `getconf` is missing.
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// User plus system CPU seconds used so far by every thread of `pid` (`"self"` for this
/// process).
pub fn cpu_seconds(pid: &str, ticks: f64) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = text
        .rfind(')')
        .and_then(|at| text.get(at + 1..))
        .ok_or_else(|| anyhow!("{path}: unexpected format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let tick_field = |n: usize| -> Result<f64> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v as f64)
            .ok_or_else(|| anyhow!("{path}: field {n} missing"))
    };
    Ok((tick_field(14)? + tick_field(15)?) / ticks)
}

/// Busy CPU seconds of the whole machine so far, all cores together (the `cpu` line of
/// `/proc/stat` without idle and iowait).
pub fn machine_busy_seconds(ticks: f64) -> Result<f64> {
    let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| anyhow!("/proc/stat: no cpu line"))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = values
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| *v)
        .sum();
    Ok(busy as f64 / ticks)
}

/// Peak resident set size (`VmHWM`) of `pid`, in MiB.
pub fn peak_rss_mib(pid: &str) -> Result<f64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .ok_or_else(|| anyhow!("{path}: no VmHWM line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let ticks = clock_ticks();
        assert!(ticks > 0.0);
        // Burn a little CPU so the figure is not trivially zero on a coarse clock.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_seconds("self", ticks).unwrap() >= 0.0);
        assert!(peak_rss_mib("self").unwrap() > 0.0);
        assert!(machine_busy_seconds(ticks).unwrap() > 0.0);
    }
}
