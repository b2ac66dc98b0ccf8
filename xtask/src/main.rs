//! Project automation for Argus, run as `cargo xtask <command>`.
//!
//! - `cargo xtask ci`: exactly what CI runs: fmt check, clippy with warnings
//!   denied, the whole test suite, and the docs with warnings denied.
//! - `cargo xtask bench [--quick]`: the benchmarks (see BENCHMARKS.md);
//!   `cargo xtask bench nats [--quick]`: the NATS relay's alone.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <ci | bench [nats] [--quick]>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(step) => {
            eprintln!("xtask: `{step}` failed");
            ExitCode::FAILURE
        }
    }
}

/// Runs `cargo <args>` with extra environment, failing with the command line.
fn cargo(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let line = format!("cargo {}", args.join(" "));
    eprintln!("xtask: {line}");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("{line} ({e})"))?;
    if status.success() { Ok(()) } else { Err(line) }
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"], &[])?;
    cargo(
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    cargo(&["test", "--workspace"], &[])?;
    cargo(
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )
}

/// The criterion micro-benchmarks of the core, then the end-to-end run on
/// loopback, then the NATS relay's run (it starts its own `nats-server`),
/// whose tables go to stdout (BENCHMARKS.md holds a copy). With `nats`, the
/// NATS relay's run alone.
fn bench(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let bin = |name: &'static str| {
        let mut run = vec![
            "run",
            "--release",
            "--quiet",
            "--package",
            "argus-benches",
            "--bin",
            name,
        ];
        if quick {
            run.extend(["--", "--quick"]);
        }
        run
    };
    if args.iter().any(|a| a == "nats") {
        return cargo(&bin("argus-nats-bench"), &[]);
    }
    let mut criterion = vec!["bench", "--package", "argus-benches", "--bench", "core"];
    if quick {
        criterion.extend(["--", "--quick"]);
    }
    cargo(&criterion, &[])?;
    cargo(&bin("argus-e2e"), &[])?;
    cargo(&bin("argus-nats-bench"), &[])
}
