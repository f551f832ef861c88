//! SQL Server backend (`tiberius` over tokio): one SQL Server database per ddb database, named
//! `<node>_<db>` by default so that several nodes can share one instance, and the node catalog
//! (the seq of the DROP_DB that last removed each database) in `<node>__ddbcatalog`. User
//! names may not start with `_ddb`, so the catalog never clashes with a ddb database.
//!
//! Store URLs, either form:
//!
//! - `mssql://user:password@host[:port][?key=value&...]`, user and password percent-encoded
//!   (`@` is `%40`, `:` is `%3A`, `/` is `%2F`, `?` is `%3F`, `#` is `%23`); port 1433 by default.
//!   Keys: `trust_cert=true` (accept any server certificate), `trust_cert_ca=PATH`,
//!   `encrypt=true|false|plaintext` (default `true`: everything over TLS; `false` encrypts the
//!   login only), `physical=PATTERN`, `connect_timeout=SECONDS` (default 15, 0 waits forever),
//!   `application_name=NAME`, `integrated_security=true`.
//! - `mssql:` followed by an ADO.NET connection string:
//!   `mssql:server=tcp:host,1433;user=sa;password=...;TrustServerCertificate=true`. Values may be
//!   quoted (`password="a;b"` or `'a;b'`; a doubled quote inside stands for one).
//!   Keys as in ADO.NET (`Server`/`Data Source`, `User ID`/`UID`/`User`, `Password`/`PWD`,
//!   `Encrypt`, `TrustServerCertificate`, `TrustServerCertificateCA`, `IntegratedSecurity`,
//!   `Connect Timeout`, `Application Name`) plus ddb's own `physical=PATTERN`. Keys ddb does
//!   not use (`Database`, pool settings, ...) are logged at `warn` and ignored: ddb names its
//!   databases itself. A named instance (`host\instance`) needs an explicit port, because ddb
//!   does not ask the SQL Browser service.
//!
//! `physical` sets the SQL Server name of each ddb database: `{db}` is the ddb name, `{node}`
//! the node's name; the default is `{node}_{db}`. A bare `{db}` is refused, so that ddb's
//! databases stand apart from the server's others; a pattern without `{node}` must not be
//! shared by two nodes on one server.
//!
//! Windows Authentication (`IntegratedSecurity=true`) uses Kerberos through GSSAPI and needs
//! the crate feature `mssql-integrated-auth` (libgssapi and a Kerberos ticket at run time).
//!
//! The catalog database holds three tables: `dropped` (ddb database -> seq of the DROP_DB that
//! removed it), `node` (`log_position`, where the node's log reader resumes) and `owned` (the
//! ddb databases this node created). A SQL Server database that fits the pattern but is not in
//! `owned` belongs to somebody else: ddb neither lists, opens nor drops it, and a CREATE_DB of
//! its name fails with `db_exists`.
//!
//! Transactions are the connection's own (`BEGIN TRANSACTION`). A connection dropped inside
//! one (a cancelled task) or left in doubt by an I/O error is closed rather than reused:
//! closing the TCP connection makes the server roll the transaction back.
//!
//! Files: `config` (the store URL), `naming` (SQL Server names of ddb databases), `backend`
//! (the store, its catalog and connection caches), `conn` (one connection: statements,
//! transactions, parameters and values) and `errors` (SQL Server errors as ddb errors).

mod backend;
mod config;
mod conn;
mod errors;
mod naming;
#[cfg(test)]
mod tests;

pub use backend::MssqlBackend;
pub use config::{parse_url, Encrypt, MssqlAuth, MssqlConfig, DEFAULT_PHYSICAL, DEFAULT_PORT};
pub use conn::MssqlConn;
pub use naming::CATALOG_SUFFIX;

use super::engine::SqlStore;
use crate::error::DdbError;
use naming::Naming;
use std::sync::{Arc, Mutex};
use tiberius::Client;
use tokio::net::TcpStream;
use tokio::sync::Mutex as AsyncMutex;
use tokio_util::compat::Compat;

type TdsClient = Client<Compat<TcpStream>>;
/// A cached connection; `None` once discarded, and the next user connects afresh.
type Slot = Arc<AsyncMutex<Option<TdsClient>>>;

/// Opens a SQL Server store for node `node`: connects, creates the node catalog if missing.
pub async fn open(
    url: &str,
    node: &str,
    options: &super::StoreOptions,
) -> Result<impl super::Store, DdbError> {
    let config = parse_url(url)?;
    if !config.ignored.is_empty() {
        tracing::warn!(keys = ?config.ignored, "mssql connection string keys that ddb does not use were ignored");
    }
    let naming = Naming::new(&config.physical, node)?;
    let backend = MssqlBackend {
        config,
        naming,
        admin: Arc::default(),
        writers: Mutex::default(),
        readers: Mutex::default(),
    };
    backend.init_catalog().await?;
    tracing::info!(
        host = %backend.config.host,
        port = backend.config.port,
        catalog = %backend.naming.catalog,
        physical = %backend.config.physical,
        "SQL Server store open"
    );
    Ok(SqlStore::new(backend, options))
}
