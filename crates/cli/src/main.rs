//! The `bindery` command. `main` parses the command line and hands each subcommand to its
//! module; errors are printed once, as one line, with the exit status the subcommand chose.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The edge allocates and frees a store, its tables and the request's buffers on every
/// request; mimalloc's thread-local free lists cost less per request than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod edge;
mod service;
mod spec;
mod up;
mod webhook_secret;
mod worker;

/// Bindery: a link to a code repository becomes a running Jupyter server.
#[derive(Debug, Parser)]
#[command(name = "bindery", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what Bindery derives from a link, without any network access.
    Spec(spec::SpecArgs),
    /// Run the edge app in a spin.toml on this machine, as Spin would.
    Edge(edge::EdgeArgs),
    /// Run the worker: the internal API, launches on JupyterHub, event streams.
    Worker(worker::WorkerArgs),
    /// Run all of Bindery on this machine: the edge and the worker in one process.
    Up(up::UpArgs),
    /// Print the push webhook secret of one repository, derived from the configured one.
    WebhookSecret(webhook_secret::WebhookSecretArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Spec(args) => spec::run(&args),
        Command::Edge(args) => edge::run(&args),
        Command::Worker(args) => worker::run(&args),
        Command::Up(args) => up::run(&args),
        Command::WebhookSecret(args) => webhook_secret::run(&args),
    };
    match result {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("bindery: {err:#}");
            ExitCode::from(2)
        }
    }
}
