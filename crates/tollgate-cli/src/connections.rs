//! `tollgate connections`: the named secrets connections use, encrypted
//! in the config's store under its `secrets:` keys (docs/secrets.md).
//! A value is read from stdin, never from the command line (which shell
//! history and `ps` show); nothing here prints one.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use clap::Subcommand;
use tollgate::store::Store;
use tollgate::vault::{Keyring, Vault, KEY_LEN, MAX_SECRET_BYTES};

use crate::cli::{open_store, out, StoreArgs};

#[derive(Subcommand)]
pub(crate) enum ConnectionsCommand {
    /// Encrypt a secret read from stdin under secrets.primary and store it
    /// as NAME (replacing one of that name); running gateways pick it up
    /// within storage.key_refresh.
    SetSecret {
        /// 1-128 letters, digits, -, _ or .
        name: String,
        /// Config whose secrets: keys and storage.url are used.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// List stored secrets: names, key ids and dates (never values).
    ListSecrets {
        #[command(flatten)]
        store: StoreArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete a stored secret.
    DeleteSecret {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Re-encrypt every stored secret that is not under secrets.primary
    /// (after a key rotation: the old key moved to secrets.previous).
    RotateSecrets {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print a new random key (base64 of 32 bytes) for secrets.primary.
    GenerateKey,
}

pub(crate) async fn run(command: ConnectionsCommand) -> Result<ExitCode, String> {
    match command {
        ConnectionsCommand::SetSecret { name, config } => {
            tollgate::vault::check_name(&name).map_err(|e| e.to_string())?;
            let (keyring, store) = open(&config).await?;
            let value = read_value()?;
            let vault = Vault::new(keyring);
            vault
                .put(&store, &name, &value)
                .await
                .map_err(|e| e.to_string())?;
            store.close().await;
            let _ = writeln!(std::io::stderr(), "stored secret {name:?}");
            Ok(ExitCode::SUCCESS)
        }
        ConnectionsCommand::ListSecrets { store, json } => {
            let rows = open_store(&store)
                .await?
                .list_secrets()
                .await
                .map_err(|e| e.to_string())?;
            if json {
                let list: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({"name": r.name, "key_id": r.key_id,
                            "created_ms": r.created_ms, "updated_ms": r.updated_ms})
                    })
                    .collect();
                out(&serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?)?;
            } else {
                out(&format!(
                    "{:<32} {:<16} {:<21} UPDATED",
                    "NAME", "KEY", "CREATED"
                ))?;
                for r in rows {
                    out(&format!(
                        "{:<32} {:<16} {:<21} {}",
                        r.name,
                        r.key_id,
                        tollgate::auth::rfc3339(r.created_ms),
                        tollgate::auth::rfc3339(r.updated_ms)
                    ))?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ConnectionsCommand::DeleteSecret { name, store } => {
            let done = open_store(&store)
                .await?
                .delete_secret(&name)
                .await
                .map_err(|e| e.to_string())?;
            if !done {
                return Err(format!("no secret named {name:?}"));
            }
            out(&format!("deleted {name}"))?;
            Ok(ExitCode::SUCCESS)
        }
        ConnectionsCommand::RotateSecrets { config } => {
            let (keyring, store) = open(&config).await?;
            let n = tollgate::vault::rotate(&keyring, &store)
                .await
                .map_err(|e| e.to_string())?;
            store.close().await;
            out(&format!(
                "re-encrypted {n} secret(s) under key {:?}",
                keyring.primary_id().unwrap_or_default()
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        ConnectionsCommand::GenerateKey => {
            let key: [u8; KEY_LEN] = tollgate::vault::generate_key();
            out(&base64::engine::general_purpose::STANDARD.encode(key))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn open(config: &Path) -> Result<(Keyring, Store), String> {
    let cfg =
        tollgate::config::load_file(config).map_err(|e| format!("{}: {e}", config.display()))?;
    let keyring = Keyring::load(&cfg.secrets).map_err(|e| e.to_string())?;
    if keyring.primary_id().is_none() {
        return Err(format!(
            "{}: no secrets.primary key is configured (docs/secrets.md)",
            config.display()
        ));
    }
    let store = Store::open(&cfg.storage.url)
        .await
        .map_err(|e| e.to_string())?;
    Ok((keyring, store))
}

/// The value on stdin, without one trailing line end (what `echo` and a
/// here-string add).
fn read_value() -> Result<String, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let _ = writeln!(
            std::io::stderr(),
            "type the secret, then Enter and Ctrl-D (it is not echoed to the log)"
        );
    }
    let mut buf = Vec::new();
    stdin
        .lock()
        .take(MAX_SECRET_BYTES as u64 + 3)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read stdin: {}", e.kind()))?;
    let mut value = String::from_utf8(buf).map_err(|_| "the secret must be UTF-8 text")?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        return Err("pass the secret on stdin".into());
    }
    Ok(value)
}
