//! What the callgrind benches (`router_instructions`, `webhook_instructions`) share: a bench
//! executable re-runs itself in child mode under `valgrind --tool=callgrind` for N1 and N2
//! requests, and reports (instructions(N2) − instructions(N1)) / (N2 − N1), so set-up cancels out.
//! Not a bench target of its own (Cargo discovers `benches/*.rs` and `benches/*/main.rs` only).

use std::process::Command;

/// Instructions callgrind counts while this bench executable runs with `args` (its child mode).
pub fn instructions(args: &[&str]) -> u64 {
    let exe = std::env::current_exe().expect("bench executable");
    let label = args.join(" ");
    let out_file = std::env::temp_dir().join(format!(
        "sondeo-callgrind-{}-{}.out",
        std::process::id(),
        args.join("-")
    ));
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(&exe)
        .args(args)
        .output()
        .expect("valgrind (apt install valgrind)");
    let _ = std::fs::remove_file(&out_file);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        panic!("{label}: valgrind failed\n{stderr}");
    }
    stderr
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{label}: no 'Collected' line from callgrind\n{stderr}"))
}

/// The sample sizes N1 < N2 from the environment variable `var` (`N1,N2`), else `default`.
pub fn sample(var: &str, default: &str) -> (usize, usize) {
    std::env::var(var)
        .unwrap_or_else(|_| default.into())
        .split_once(',')
        .and_then(|(a, b)| {
            Some((
                a.trim().parse::<usize>().ok()?,
                b.trim().parse::<usize>().ok()?,
            ))
        })
        .filter(|(a, b)| a < b)
        .unwrap_or_else(|| panic!("{var}=N1,N2 with N1 < N2"))
}

/// Whether the target `name` is among those named in TARGETS (comma-separated; all when unset).
pub fn picked(name: &str) -> bool {
    std::env::var("TARGETS")
        .ok()
        .is_none_or(|p| p.split(',').any(|t| t.trim() == name))
}
