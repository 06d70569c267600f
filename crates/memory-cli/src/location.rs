//! Where a store is: a URL or a path, opened as the backend it names.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use memory_core::StorageBackend;
use memory_storage_redb::RedbStorage;
use memory_storage_turso::{TursoConfig, TursoStorage};

/// A store's location, as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A redb file: `redb:PATH`, or a path ending in `.redb`.
    Redb(PathBuf),
    /// A local libSQL file: `file:PATH`, or any other path.
    LibsqlFile(PathBuf),
    /// A sqld/Turso database: `libsql://`, `http(s)://` or `ws(s)://` (the token from
    /// `TURSO_AUTH_TOKEN`).
    Remote(String),
}

impl Location {
    /// Reads `text` as a location.
    ///
    /// ```
    /// use memory_cli::location::Location;
    ///
    /// assert!(matches!(Location::parse("memory.redb"), Location::Redb(_)));
    /// assert!(matches!(Location::parse("redb:store"), Location::Redb(_)));
    /// assert!(matches!(Location::parse("file:memory.db"), Location::LibsqlFile(_)));
    /// assert!(matches!(Location::parse("memory.db"), Location::LibsqlFile(_)));
    /// assert!(matches!(Location::parse("libsql://db.turso.io"), Location::Remote(_)));
    /// ```
    pub fn parse(text: &str) -> Location {
        const REMOTE: [&str; 5] = ["libsql://", "http://", "https://", "ws://", "wss://"];
        if REMOTE.iter().any(|scheme| text.starts_with(scheme)) {
            return Location::Remote(text.to_string());
        }
        if let Some(path) = text.strip_prefix("redb:") {
            return Location::Redb(path.into());
        }
        if let Some(path) = text.strip_prefix("file:") {
            return Location::LibsqlFile(path.into());
        }
        let path = PathBuf::from(text);
        if path.extension().is_some_and(|e| e == "redb") {
            Location::Redb(path)
        } else {
            Location::LibsqlFile(path)
        }
    }

    /// `given`, else `TURSO_DATABASE_URL` (a remote database), else an error saying what
    /// to pass.
    pub fn given_or_env(given: Option<&str>) -> anyhow::Result<Location> {
        match given {
            Some(text) => Ok(Location::parse(text)),
            None => match std::env::var("TURSO_DATABASE_URL") {
                Ok(url) if !url.trim().is_empty() => Ok(Location::Remote(url.trim().into())),
                _ => {
                    anyhow::bail!("no store: pass --store PATH_OR_URL (or set TURSO_DATABASE_URL)")
                }
            },
        }
    }

    /// Opens the store (never cached: every command reads the store itself).
    pub async fn open(&self) -> anyhow::Result<Arc<dyn StorageBackend>> {
        Ok(self.open_store().await?.backend())
    }

    /// Opens the store as the backend it is, for what only that backend reports.
    pub async fn open_store(&self) -> anyhow::Result<Opened> {
        Ok(match self {
            Location::Redb(path) => Opened::Redb(Arc::new(
                RedbStorage::open(path).with_context(|| format!("opening {}", path.display()))?,
            )),
            Location::LibsqlFile(path) => Opened::Libsql(Arc::new(
                TursoStorage::open(TursoConfig::local(path))
                    .await
                    .with_context(|| format!("opening {}", path.display()))?,
            )),
            Location::Remote(url) => {
                let token = std::env::var("TURSO_AUTH_TOKEN").ok();
                let config = TursoConfig::from_vars(Some(url), token.as_deref())?;
                // The URL is shown, the token never is.
                Opened::Libsql(Arc::new(
                    TursoStorage::open(config)
                        .await
                        .with_context(|| format!("opening {url}"))?,
                ))
            }
        })
    }

    /// The file behind a local store, for its size.
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            Location::Redb(path) | Location::LibsqlFile(path) => Some(path),
            Location::Remote(_) => None,
        }
    }
}

/// An open store, as its backend.
#[derive(Clone)]
pub enum Opened {
    /// A redb file.
    Redb(Arc<RedbStorage>),
    /// A libSQL file or server.
    Libsql(Arc<TursoStorage>),
}

impl Opened {
    /// The store behind the common trait.
    pub fn backend(&self) -> Arc<dyn StorageBackend> {
        match self {
            Opened::Redb(store) => store.clone(),
            Opened::Libsql(store) => store.clone(),
        }
    }

    /// The version of the store's layout: the libSQL schema version read from the
    /// database, or the redb file format (a file of another format is refused at open).
    pub async fn layout_version(&self) -> anyhow::Result<i64> {
        Ok(match self {
            Opened::Redb(_) => i64::try_from(memory_storage_redb::FORMAT_VERSION)?,
            Opened::Libsql(store) => store.schema_version().await?,
        })
    }
}
