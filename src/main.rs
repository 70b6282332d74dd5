//! The `mailgate` command.

use clap::{Parser, Subcommand};
use mailgate::config::Config;
use mailgate::net::Server;
use mailgate::services::Services;
use mailgate::store::Store;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "mailgate",
    version,
    about = "A self-hosted IMAP/SMTP mail server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: IMAP, SMTP, submission and the admin HTTP API.
    Serve {
        /// The configuration file (see config/mailgate.toml); without it every default holds.
        #[arg(long, env = "MAILGATE_CONFIG")]
        config: Option<PathBuf>,
        /// The data directory; overrides `data_dir` of the configuration.
        #[arg(long, env = "MAILGATE_DATA")]
        data: Option<PathBuf>,
    },
    /// The server's stored state, handled with the server stopped.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Manage organizations through the admin HTTP API of a running server (log in once with
    /// `mailgate admin login <login>`; MAILGATE_ORG picks the organization).
    Admin {
        #[command(subcommand)]
        command: mailgate::cli::Admin,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copies this installation's sled store into an empty PostgreSQL database (every id,
    /// UIDVALIDITY, UID and MODSEQ kept), then compares the two by counts, a digest of every
    /// message record, and every message's bytes read back. Then set `[store] postgres_url`.
    Copy {
        #[arg(long, env = "MAILGATE_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, env = "MAILGATE_DATA")]
        data: Option<PathBuf>,
        /// postgres://user@host:port/database
        #[arg(long)]
        to: String,
    },
}

fn main() -> ExitCode {
    release_large_blocks();
    tracing_subscriber::fmt()
        .with_env_filter(log_filter(std::env::var("RUST_LOG").ok().as_deref()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, data } => serve(config, data),
        Command::Admin { command } => admin(command),
        Command::Store {
            command: StoreCommand::Copy { config, data, to },
        } => store_copy(config, data, &to),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mailgate: {message}");
            ExitCode::from(2)
        }
    }
}

fn admin(command: mailgate::cli::Admin) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(mailgate::cli::run(command))
}

fn load_config(config_path: Option<PathBuf>, data: Option<PathBuf>) -> Result<Config, String> {
    let mut config = match &config_path {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(data) = data {
        config.data_dir = data;
    }
    Ok(config)
}

fn store_copy(config: Option<PathBuf>, data: Option<PathBuf>, to: &str) -> Result<(), String> {
    let config = load_config(config, data)?;
    if config.store.postgres_url.is_some() {
        return Err(
            "the configuration already names PostgreSQL ([store] postgres_url): \
                    copy from the sled store, with that setting unset"
                .into(),
        );
    }
    let report = mailgate::store::copy::copy_to_postgres(&config.data_dir, &config.store, to)
        .map_err(|e| format!("the copy failed: {e}"))?;
    println!("{report}");
    println!("copied and checked; now set [store] postgres_url = {to:?}");
    Ok(())
}

fn serve(config_path: Option<PathBuf>, data: Option<PathBuf>) -> Result<(), String> {
    let config = load_config(config_path, data)?;
    let store = Store::open_with(&config.data_dir, &config.store).map_err(|e| e.to_string())?;
    if let Some(first) =
        mailgate::bootstrap::bootstrap(&store, &config.bootstrap).map_err(|e| e.to_string())?
    {
        println!("{}", first.banner());
    }
    let services = Arc::new(Services::new(config, store).map_err(|e| e.to_string())?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let server = Server::bind(services.clone())
            .await
            .map_err(|e| e.to_string())?;
        for (kind, address) in server.addresses() {
            println!("mailgate: {kind} listening on {address}");
        }
        println!("mailgate: data in {}", services.store.dir().display());
        server.run(shutdown_signal()).await;
        println!("mailgate: stopped");
        Ok(())
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `RUST_LOG`, or `info`; rustls's own lines only from errors up unless `RUST_LOG` names it:
/// its warnings are about what a remote client sent (an IP address as SNI, one WARN line per
/// handshake), and would let anyone fill the log.
/// glibc raises its mmap threshold as large blocks are freed, after which argon2's 19 MiB
/// blocks and large messages come from its heaps, which keep them: a fixed threshold hands
/// every block over 256 KiB back to the kernel when freed, so memory falls after a burst.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_large_blocks() {
    // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_large_blocks() {}

fn log_filter(env: Option<&str>) -> tracing_subscriber::EnvFilter {
    let text = env.filter(|t| !t.trim().is_empty()).unwrap_or("info");
    let mut filter = tracing_subscriber::EnvFilter::try_new(text)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if !text.contains("rustls")
        && let Ok(directive) = "rustls=error".parse()
    {
        filter = filter.add_directive(directive);
    }
    // Never below warn, whatever RUST_LOG says: async-imap traces every line it sends, the
    // import's LOGIN with the source password among them.
    match "async_imap=warn".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}
