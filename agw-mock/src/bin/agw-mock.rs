//! `agw-mock`: the mock provider as its own process, for end-to-end tests and load benches.
//!
//! Prints `agw-mock listening on http://IP:PORT` once bound, then serves until SIGINT or
//! SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use agw_mock::{MockOptions, MockProvider};

const USAGE: &str = "\
usage: agw-mock [--listen IP:PORT] [--max-recorded N]

A mock Anthropic/OpenAI provider for tests (see the agw-mock crate).

options:
  --listen IP:PORT     address to listen on (default 127.0.0.1:0, a free port)
  --max-recorded N     most requests kept for GET /__mock/requests (default 10000; 0 keeps none)
  -h, --help           print this help

Prints `agw-mock listening on http://IP:PORT` once bound; stops on SIGINT or SIGTERM.";

struct Args {
    listen: SocketAddr,
    options: MockOptions,
}

enum Parsed {
    Run(Args),
    Help,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Parsed, String> {
    let mut parsed = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        options: MockOptions::default(),
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--listen" => {
                let addr = value("--listen")?;
                parsed.listen = addr
                    .parse()
                    .map_err(|e| format!("--listen {addr:?}: {e}"))?;
            }
            "--max-recorded" => {
                let n = value("--max-recorded")?;
                parsed.options.max_recorded = n
                    .parse()
                    .map_err(|e| format!("--max-recorded {n:?}: {e}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Parsed::Run(parsed))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("agw-mock: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mock = match MockProvider::start_with(args.listen, args.options).await {
        Ok(mock) => mock,
        Err(error) => {
            eprintln!("agw-mock: cannot listen on {}: {error}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    // Scripts wait for this line; a closed stdout is no reason to stop serving.
    let _ = writeln!(stdout, "agw-mock listening on {}", mock.base_url());
    let _ = stdout.flush();
    drop(stdout);
    if let Err(error) = stop_signal().await {
        eprintln!("agw-mock: cannot listen for signals: {error}");
        return ExitCode::FAILURE;
    }
    mock.shutdown().await;
    ExitCode::SUCCESS
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}
