//! `softphoned`: the daemon binary. Reads the config, starts the run loop,
//! tells systemd it is ready, and stops cleanly on SIGTERM or Ctrl-C.

use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use softphoned::config::{LogConfig, LogFormat};
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser)]
#[command(version, about = "SIP/RTP softphone daemon for contact-center agents")]
struct Args {
    /// TOML configuration file; defaults serve when absent.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Write the man page and shell completions into DIR and exit (for packaging).
    #[arg(long, hide = true, value_name = "DIR")]
    generate_docs: Option<PathBuf>,
}

// Two runtime workers whatever the cores: the runtime carries SIP and the
// control socket, media, recording and history have threads of their own,
// and the load budget (1000 calls) is set for 2 cores. Each worker beyond
// two costs an idle daemon about 50 kB (its stack, its malloc arena): some
// 300 kB on an 8-core laptop.
#[tokio::main(worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(dir) = &args.generate_docs {
        return Ok(softphoned::cli_docs::generate(Args::command(), dir)?);
    }
    // Before the log exists, since [log] says how to write it; a bad
    // config is said on stderr by the error main returns.
    let config = softphoned::config::Config::load(args.config.as_deref())?;
    init_log(&config.log);
    // The default soft limit (1024) is what anyone opening TCP connections
    // to the SIP port exhausts first: take what the hard limit allows.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open files limit"),
    }
    // Taken before the start, which can last seconds (a sound card, DNS):
    // a SIGHUP meanwhile would otherwise end the process, by default.
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let daemon = softphoned::daemon::start(config).await.context("softphoned could not start")?;
    // Outside systemd there is no NOTIFY_SOCKET and this does nothing.
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
    loop {
        tokio::select! {
            _ = terminate.recv() => break tracing::info!("SIGTERM: stopping"),
            _ = tokio::signal::ctrl_c() => break tracing::info!("interrupted: stopping"),
            // The run loop logs what changed or why nothing did.
            _ = hangup.recv() => reload(&daemon).await,
        }
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    daemon.stop().await;
    Ok(())
}

/// SIGHUP: read the config again, telling systemd while it is done
/// (RELOADING=1 ... READY=1, which `systemctl reload` waits for on
/// `Type=notify-reload` units, systemd 253 and later).
async fn reload(daemon: &softphoned::daemon::RunningDaemon) {
    let mut reloading = vec![sd_notify::NotifyState::Reloading];
    reloading.extend(sd_notify::NotifyState::monotonic_usec_now());
    let _ = sd_notify::notify(false, &reloading);
    if let Err(e) = daemon.reload().await {
        tracing::warn!(error = %e, "SIGHUP: the config was not reloaded");
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
}

/// Logs go to stderr (journald under systemd), as text or JSON lines.
fn init_log(log: &LogConfig) {
    let builder = tracing_subscriber::fmt().with_env_filter(log.filter()).with_writer(std::io::stderr);
    match log.format {
        LogFormat::Text => builder.init(),
        // Fields beside the message, not nested under "fields": a collector indexes `call` at once.
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
