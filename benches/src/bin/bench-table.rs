//! Renders benchmark results as markdown: criterion's estimates (one row per model and phase,
//! one column per backend) and the side-by-side comparison logs that `benches/report.sh`
//! saved, between the `<!-- bench-table:begin -->` and `<!-- bench-table:end -->` markers of
//! the output file (the text around them is kept).
//!
//! ```text
//! cargo run -p aigc-benches --bin bench-table -- --criterion TARGET/criterion \
//!     [--results benches/results] [--date YYYY-MM-DD] [--max-age-hours H] [--out docs/performance.md]
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

const BEGIN: &str = "<!-- bench-table:begin -->";
const END: &str = "<!-- bench-table:end -->";
const BACKENDS: [&str; 4] = ["flex", "ndarray", "wgpu", "cuda"];

/// One benchmark: criterion's median time and, when it declared one, elements per iteration.
struct Bench {
    group: String,
    function: String,
    median_ns: f64,
    elements: Option<f64>,
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every `*/new/benchmark.json` under `dir` with its `estimates.json`, leaving out results
/// written more than `max_age` ago (criterion keeps every benchmark ever run in the target
/// directory; a table should hold one run's).
fn collect(
    dir: &Path,
    max_age: Option<std::time::Duration>,
    out: &mut Vec<Bench>,
) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let meta = path.join("new/benchmark.json");
        if meta.is_file() {
            let age = std::fs::metadata(path.join("new/estimates.json"))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok());
            if let (Some(max), Some(age)) = (max_age, age)
                && age > max
            {
                continue;
            }
            let m = read_json(&meta)?;
            let e = read_json(&path.join("new/estimates.json"))?;
            let median_ns = e["median"]["point_estimate"]
                .as_f64()
                .ok_or_else(|| format!("{}: no median", path.display()))?;
            out.push(Bench {
                group: m["group_id"].as_str().unwrap_or_default().to_string(),
                function: m["function_id"].as_str().unwrap_or_default().to_string(),
                median_ns,
                elements: m["throughput"]["Elements"].as_f64(),
            });
        } else if path.file_name().is_some_and(|n| n != "report") {
            collect(&path, max_age, out)?;
        }
    }
    Ok(())
}

fn time(ns: f64) -> String {
    match ns {
        x if x >= 1e9 => format!("{:.2} s", x / 1e9),
        x if x >= 1e6 => format!("{:.1} ms", x / 1e6),
        x if x >= 1e3 => format!("{:.1} µs", x / 1e3),
        x => format!("{x:.0} ns"),
    }
}

fn cell(b: &Bench) -> String {
    match b.elements {
        // A throughput in tokens (or elements) per second says more than the time.
        Some(n) if n > 0.0 => {
            let per_s = n / (b.median_ns / 1e9);
            let rate = match per_s {
                x if x >= 1e9 => format!("{:.1} G", x / 1e9),
                x if x >= 1e6 => format!("{:.1} M", x / 1e6),
                x if x >= 1e4 => format!("{:.1} k", x / 1e3),
                x => format!("{x:.1} "),
            };
            format!("{} ({rate}/s)", time(b.median_ns))
        }
        _ => time(b.median_ns),
    }
}

fn render(benches: &[Bench], results: Option<&Path>, date: &str) -> Result<String, String> {
    let mut md = String::new();
    let _ = writeln!(md, "Measured on {date} (`benches/report.sh`).\n");
    if let Some(machine) = results.and_then(|d| std::fs::read_to_string(d.join("machine.txt")).ok())
    {
        for line in machine.lines() {
            let _ = writeln!(md, "- {line}");
        }
        md.push('\n');
    }
    // Model benchmarks: groups named `model/backend`.
    let mut rows: BTreeMap<(String, String), BTreeMap<&str, String>> = BTreeMap::new();
    let mut kernels = Vec::new();
    for b in benches {
        match b.group.rsplit_once('/') {
            Some((model, backend)) if BACKENDS.contains(&backend) => {
                let backend = BACKENDS.iter().find(|&&x| x == backend).copied().unwrap_or("?");
                rows.entry((model.to_string(), b.function.clone()))
                    .or_default()
                    .insert(backend, cell(b));
            }
            _ => kernels.push(b),
        }
    }
    let used: Vec<&str> =
        BACKENDS.iter().copied().filter(|be| rows.values().any(|r| r.contains_key(be))).collect();
    if !rows.is_empty() {
        let _ = writeln!(md, "### Models (median time per iteration; per second where counted)\n");
        let _ = writeln!(md, "| model | phase | {} |", used.join(" | "));
        let _ = writeln!(md, "|---|---|{}", "---|".repeat(used.len()));
        for ((model, phase), by) in &rows {
            let cells: Vec<&str> =
                used.iter().map(|be| by.get(be).map_or("—", String::as_str)).collect();
            let _ = writeln!(md, "| {model} | {phase} | {} |", cells.join(" | "));
        }
        md.push('\n');
    }
    if !kernels.is_empty() {
        kernels.sort_by(|a, b| (&a.group, &a.function).cmp(&(&b.group, &b.function)));
        let _ = writeln!(md, "### Kernels\n");
        let _ = writeln!(md, "| group | benchmark | median |");
        let _ = writeln!(md, "|---|---|---|");
        for b in kernels {
            let _ = writeln!(md, "| {} | {} | {} |", b.group, b.function, cell(b));
        }
        md.push('\n');
    }
    if let Some(dir) = results {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "txt")
                    && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("compare"))
            })
            .collect();
        logs.sort();
        if !logs.is_empty() {
            let _ = writeln!(md, "### Side by side with the reference engines\n");
        }
        for log in logs {
            let text =
                std::fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
            let name = log.file_stem().unwrap_or_default().to_string_lossy();
            let _ = writeln!(md, "`benches/{name}.sh`:\n\n```text\n{}\n```\n", text.trim_end());
        }
    }
    Ok(md)
}

fn run() -> Result<(), String> {
    let (mut criterion, mut results, mut out, mut date) = (None, None, None, None);
    let mut max_age = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--criterion" => criterion = Some(PathBuf::from(value()?)),
            "--results" => results = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--date" => date = Some(value()?),
            "--max-age-hours" => {
                let v = value()?;
                let h: f64 = v.parse().map_err(|_| format!("--max-age-hours: `{v}`"))?;
                max_age = Some(std::time::Duration::from_secs_f64(h * 3600.0));
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let criterion = criterion.ok_or("--criterion DIR is required")?;
    let mut benches = Vec::new();
    collect(&criterion, max_age, &mut benches)?;
    if benches.is_empty() {
        return Err(format!("no benchmark results under {}", criterion.display()));
    }
    let date = date.unwrap_or_else(|| "an undated run".into());
    let table = render(&benches, results.as_deref(), &date)?;
    match out {
        None => print!("{table}"),
        Some(path) => {
            let old = std::fs::read_to_string(&path).unwrap_or_default();
            let new = match (old.find(BEGIN), old.find(END)) {
                (Some(b), Some(e)) if b < e => {
                    format!("{}{BEGIN}\n{table}{}", &old[..b], &old[e..])
                }
                _ => format!("{old}\n{BEGIN}\n{table}{END}\n"),
            };
            std::fs::write(&path, new).map_err(|e| format!("{}: {e}", path.display()))?;
            println!("wrote {} ({} benchmarks)", path.display(), benches.len());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!(
                "usage: bench-table --criterion DIR [--results DIR] [--date YYYY-MM-DD] \
                 [--max-age-hours H] [--out FILE.md]"
            );
            ExitCode::FAILURE
        }
    }
}
