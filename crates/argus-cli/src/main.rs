//! `argus`: tail an Argus market-data feed as NDJSON, watch it live in the
//! terminal, or serve the reference feed. `argus --help` lists the commands;
//! the logic lives in the `argus_cli` library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    argus_cli::run(argus_cli::Cli::parse()).into()
}
