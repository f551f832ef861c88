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

use super::engine::{deadline_passed, Backend, RowSink, SqlConn, SqlStore};
use crate::error::{DdbError, ErrorCode};
use crate::name::Name;
use crate::sql::{Dialect, Statement};
use crate::value::{ColumnType, Value};
use async_trait::async_trait;
use futures::TryStreamExt;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tiberius::{AuthMethod, Client, ColumnData, EncryptionLevel, ToSql};
use tokio::net::TcpStream;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

/// SQL Server's port when the URL names none.
pub const DEFAULT_PORT: u16 = 1433;
/// The physical name of a ddb database when the URL sets no `physical` pattern.
pub const DEFAULT_PHYSICAL: &str = "{node}_{db}";
/// Appended to the node name to name the node catalog database.
pub const CATALOG_SUFFIX: &str = "__ddbcatalog";
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_APPLICATION_NAME: &str = "ddb";
/// SQL Server's limit on identifiers, database names included.
const MAX_IDENTIFIER_CHARS: usize = 128;
/// How often `remove` tries when another session still holds the database.
const DROP_ATTEMPTS: u32 = 3;

/// Session settings every connection starts with, whatever the server or login defaults:
/// statement errors leave the transaction usable (savepoints rely on it), row counts are
/// reported, truncation is an error rather than silent, columns declared without NOT NULL are
/// nullable, and long strings come back whole.
const SESSION_SETUP: &str = "SET XACT_ABORT OFF; SET IMPLICIT_TRANSACTIONS OFF; SET NOCOUNT OFF; \
     SET ANSI_WARNINGS ON; SET ANSI_NULLS ON; SET ANSI_PADDING ON; SET ANSI_NULL_DFLT_ON ON; \
     SET CONCAT_NULL_YIELDS_NULL ON; SET QUOTED_IDENTIFIER ON; SET TEXTSIZE 2147483647";

type TdsClient = Client<Compat<TcpStream>>;
/// A cached connection; `None` once discarded, and the next user connects afresh.
type Slot = Arc<AsyncMutex<Option<TdsClient>>>;

// ------------------------------------------------------------------------------- configuration

/// Where and how to reach SQL Server, as [`parse_url`] reads it from a `--store` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MssqlConfig {
    pub host: String,
    pub port: u16,
    /// A named instance (`host\instance`); the port is still required.
    pub instance: Option<String>,
    pub auth: MssqlAuth,
    pub encrypt: Encrypt,
    /// Accept the server's certificate without validating it (self-signed test servers).
    pub trust_cert: bool,
    /// Validate the server's certificate against this CA file as well as the system's roots.
    pub trust_cert_ca: Option<String>,
    /// Physical database name pattern with `{db}` and optionally `{node}`.
    pub physical: String,
    /// `None` waits as long as the OS does.
    pub connect_timeout: Option<Duration>,
    pub application_name: String,
    /// ADO.NET keys that were given but that ddb does not use, for a warning at startup.
    pub ignored: Vec<String>,
}

#[derive(Clone, PartialEq, Eq)]
pub enum MssqlAuth {
    /// A SQL Server login.
    SqlServer { user: String, password: String },
    /// Windows Authentication (Kerberos through GSSAPI); needs `mssql-integrated-auth`.
    Integrated,
}

impl std::fmt::Debug for MssqlAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MssqlAuth::SqlServer { user, .. } => f
                .debug_struct("SqlServer")
                .field("user", user)
                .field("password", &"<hidden>")
                .finish(),
            MssqlAuth::Integrated => f.write_str("Integrated"),
        }
    }
}

/// How much of the connection goes over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encrypt {
    /// Everything, and fail if the server cannot (the default).
    Required,
    /// The login packet only (ADO.NET `Encrypt=false`).
    LoginOnly,
    /// Nothing, not even the password (`encrypt=plaintext`, ADO.NET `DANGER_PLAINTEXT`).
    Plaintext,
}

impl MssqlConfig {
    /// The tiberius configuration for a connection to `database` (the login's default
    /// database when `None`).
    pub fn tiberius(&self, database: Option<&str>) -> Result<tiberius::Config, DdbError> {
        let mut c = tiberius::Config::new();
        c.host(&self.host);
        c.port(self.port);
        if let Some(instance) = &self.instance {
            c.instance_name(instance);
        }
        if let Some(db) = database {
            c.database(db);
        }
        c.application_name(&self.application_name);
        c.encryption(match self.encrypt {
            Encrypt::Required => EncryptionLevel::Required,
            Encrypt::LoginOnly => EncryptionLevel::Off,
            Encrypt::Plaintext => EncryptionLevel::NotSupported,
        });
        // parse_url refuses both at once (tiberius would panic).
        if self.trust_cert {
            c.trust_cert();
        } else if let Some(ca) = &self.trust_cert_ca {
            c.trust_cert_ca(ca);
        }
        c.authentication(match &self.auth {
            MssqlAuth::SqlServer { user, password } => AuthMethod::sql_server(user, password),
            MssqlAuth::Integrated => integrated_auth()?,
        });
        Ok(c)
    }
}

#[cfg(all(unix, feature = "mssql-integrated-auth"))]
fn integrated_auth() -> Result<AuthMethod, DdbError> {
    Ok(AuthMethod::Integrated)
}

#[cfg(all(not(unix), feature = "mssql-integrated-auth"))]
fn integrated_auth() -> Result<AuthMethod, DdbError> {
    Err(DdbError::bad_request(
        "integrated security (Windows Authentication) is built for Unix (Kerberos through GSSAPI) only; use a SQL Server login on this platform",
    ))
}

#[cfg(not(feature = "mssql-integrated-auth"))]
fn integrated_auth() -> Result<AuthMethod, DdbError> {
    Err(DdbError::bad_request(
        "integrated security (Windows Authentication) is not in this build: build ddb with `--features mssql-integrated-auth` (needs libgssapi and a Kerberos ticket), or use a SQL Server login",
    ))
}

/// Parses a `--store` URL of either form (see the module docs). Pure: no I/O. Error messages
/// never repeat the password.
pub fn parse_url(url: &str) -> Result<MssqlConfig, DdbError> {
    let config = if let Some(rest) = url.strip_prefix("mssql://") {
        parse_uri_form(rest)?
    } else if let Some(ado) = url.strip_prefix("mssql:") {
        parse_ado_form(ado)?
    } else {
        return Err(DdbError::bad_request(
            "a SQL Server store URL starts with mssql:// (mssql://user:password@host:1433) or mssql: and an ADO.NET connection string",
        ));
    };
    if config.trust_cert && config.trust_cert_ca.is_some() {
        return Err(DdbError::bad_request(
            "trust_cert and trust_cert_ca exclude each other: trust any certificate, or validate against a CA",
        ));
    }
    if config.auth == MssqlAuth::Integrated {
        integrated_auth()?;
    }
    validate_pattern(&config.physical)?;
    Ok(config)
}

fn defaults(host: String, port: u16, instance: Option<String>, auth: MssqlAuth) -> MssqlConfig {
    MssqlConfig {
        host,
        port,
        instance,
        auth,
        encrypt: Encrypt::Required,
        trust_cert: false,
        trust_cert_ca: None,
        physical: DEFAULT_PHYSICAL.to_owned(),
        connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
        application_name: DEFAULT_APPLICATION_NAME.to_owned(),
        ignored: Vec::new(),
    }
}

fn parse_uri_form(rest: &str) -> Result<MssqlConfig, DdbError> {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if tail.contains('#') {
        return Err(DdbError::bad_request(
            "mssql URL: '#' starts a fragment; percent-encode it (%23) inside a password",
        ));
    }
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    if !path.is_empty() && path != "/" {
        return Err(DdbError::bad_request(
            "mssql URL: no path is taken (ddb names its databases itself, see physical=); percent-encode '/' (%2F) inside a password",
        ));
    }
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let (host, port) = split_host_port(hostport)?;

    let mut integrated = false;
    let mut opts = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            DdbError::bad_request(format!(
                "mssql URL parameter {:?} needs a value (key=value)",
                percent_decode(pair).unwrap_or_default()
            ))
        })?;
        let key = percent_decode(k)?;
        let value = percent_decode(v)?;
        if key == "integrated_security" {
            integrated = parse_bool(&key, &value)?;
        } else {
            opts.push((key, value));
        }
    }

    let auth = match (userinfo, integrated) {
        (Some(_), true) => {
            return Err(DdbError::bad_request(
                "mssql URL: integrated_security=true takes no user:password@",
            ))
        }
        (None, true) => MssqlAuth::Integrated,
        (None, false) => {
            return Err(DdbError::bad_request(
                "mssql URL needs a login: mssql://user:password@host:1433 (or integrated_security=true)",
            ))
        }
        (Some(info), false) => {
            let (user, password) = info.split_once(':').unwrap_or((info, ""));
            let user = percent_decode(user)?;
            if user.is_empty() {
                return Err(DdbError::bad_request("mssql URL: the user name is empty"));
            }
            MssqlAuth::SqlServer {
                user,
                password: percent_decode(password)?,
            }
        }
    };
    let mut config = defaults(host, port.unwrap_or(DEFAULT_PORT), None, auth);
    for (key, value) in opts {
        match key.as_str() {
            "trust_cert" => config.trust_cert = parse_bool(&key, &value)?,
            "trust_cert_ca" => config.trust_cert_ca = Some(value),
            "encrypt" => config.encrypt = parse_encrypt(&value)?,
            "physical" => config.physical = value,
            "connect_timeout" => config.connect_timeout = parse_timeout(&key, &value)?,
            "application_name" => config.application_name = value,
            other => {
                return Err(DdbError::bad_request(format!(
                    "unknown mssql URL parameter {other:?}; use trust_cert, trust_cert_ca, encrypt, physical, connect_timeout, application_name or integrated_security"
                )))
            }
        }
    }
    Ok(config)
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), DdbError> {
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or_else(|| {
            DdbError::bad_request("mssql URL: an IPv6 address needs its closing ']'")
        })?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None => {
                    return Err(DdbError::bad_request(
                        "mssql URL: expected ':port' after the IPv6 address",
                    ))
                }
            },
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(DdbError::bad_request("mssql URL: the host is empty"));
    }
    let port = port.map(parse_port).transpose()?;
    Ok((host.to_owned(), port))
}

fn parse_port(raw: &str) -> Result<u16, DdbError> {
    match raw.trim().parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(DdbError::bad_request(format!(
            "SQL Server port {:?} is not a port number (1 to 65535)",
            crate::name::truncate_for_message(raw)
        ))),
    }
}

fn parse_ado_form(ado: &str) -> Result<MssqlConfig, DdbError> {
    let mut server = None;
    let mut user = None;
    let mut password = None;
    let mut integrated = false;
    let mut rest = Vec::new();
    for (key, value) in ado_pairs(ado)? {
        match key.as_str() {
            "server" | "data source" | "address" | "addr" | "network address" => {
                server = Some(value)
            }
            "uid" | "user" | "username" | "user id" => user = Some(value),
            "password" | "pwd" => password = Some(value),
            "integratedsecurity" | "integrated security" | "trusted_connection" => {
                integrated = value.eq_ignore_ascii_case("sspi") || parse_bool(&key, &value)?
            }
            _ => rest.push((key, value)),
        }
    }
    let (host, port, instance) = parse_server(server.as_deref().unwrap_or("localhost"))?;
    let auth = if integrated {
        MssqlAuth::Integrated
    } else {
        match user {
            Some(user) if !user.is_empty() => MssqlAuth::SqlServer {
                user,
                password: password.unwrap_or_default(),
            },
            _ => {
                return Err(DdbError::bad_request(
                    "the connection string needs a login: user=...;password=... (or IntegratedSecurity=true)",
                ))
            }
        }
    };
    let mut config = defaults(host, port, instance, auth);
    for (key, value) in rest {
        match key.as_str() {
            "trustservercertificate" | "trust server certificate" => {
                config.trust_cert = parse_bool(&key, &value)?
            }
            "trustservercertificateca" => config.trust_cert_ca = Some(value),
            "encrypt" => config.encrypt = parse_encrypt(&value)?,
            "physical" => config.physical = value,
            "connect timeout" | "connection timeout" | "connecttimeout" | "timeout" => {
                config.connect_timeout = parse_timeout(&key, &value)?
            }
            "application name" | "applicationname" | "app" => config.application_name = value,
            _ => config.ignored.push(key),
        }
    }
    Ok(config)
}

/// Splits an ADO.NET connection string into `(lower-case key, value)` pairs, in order.
fn ado_pairs(s: &str) -> Result<Vec<(String, String)>, DdbError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ';' || c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        loop {
            match chars.next() {
                None | Some(';') => {
                    return Err(DdbError::bad_request(format!(
                        "connection string: {:?} needs a value (key=value;...)",
                        crate::name::truncate_for_message(key.trim())
                    )))
                }
                // `==` stands for a '=' inside a key.
                Some('=') if chars.next_if_eq(&'=').is_some() => key.push('='),
                Some('=') => break,
                Some(c) => key.push(c),
            }
        }
        let key = key
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        if key.is_empty() {
            return Err(DdbError::bad_request(
                "connection string: a key is empty (key=value;...)",
            ));
        }
        while chars.next_if(|c| *c != ';' && c.is_whitespace()).is_some() {}
        let close = match chars.peek() {
            Some('"') => Some('"'),
            Some('\'') => Some('\''),
            // No ODBC-style {braces}: physical patterns start with '{' ({node}_{db}).
            _ => None,
        };
        let value = match close {
            Some(close) => {
                chars.next();
                let mut v = String::new();
                loop {
                    match chars.next() {
                        None => {
                            return Err(DdbError::bad_request(format!(
                                "connection string: the value of {key:?} lacks its closing {close}"
                            )))
                        }
                        // A doubled closing character stands for itself.
                        Some(c) if c == close && chars.next_if_eq(&close).is_some() => v.push(c),
                        Some(c) if c == close => break,
                        Some(c) => v.push(c),
                    }
                }
                while chars.next_if(|c| *c != ';' && c.is_whitespace()).is_some() {}
                match chars.next() {
                    None | Some(';') => {}
                    Some(_) => {
                        return Err(DdbError::bad_request(format!(
                            "connection string: text after the quoted value of {key:?}; separate pairs with ';'"
                        )))
                    }
                }
                v
            }
            None => {
                let mut v = String::new();
                while let Some(c) = chars.next_if(|c| *c != ';') {
                    v.push(c);
                }
                chars.next();
                v.trim_end().to_owned()
            }
        };
        out.push((key, value));
    }
}

/// `[tcp:]host[\instance][,port]`, as ADO.NET's `Server` takes it.
fn parse_server(raw: &str) -> Result<(String, u16, Option<String>), DdbError> {
    let mut s = raw.trim();
    if let Some((proto, rest)) = s.split_once(':') {
        match proto.to_ascii_lowercase().as_str() {
            "tcp" => s = rest,
            "np" | "lpc" | "admin" => {
                return Err(DdbError::bad_request(format!(
                    "server={proto}:... is not supported: ddb reaches SQL Server over TCP (server=tcp:host,1433)"
                )))
            }
            _ => {}
        }
    }
    let (hostpart, port) = match s.rsplit_once(',') {
        Some((h, p)) => (h.trim(), Some(parse_port(p)?)),
        None => (s, None),
    };
    let (host, instance) = match hostpart.split_once('\\') {
        Some((h, i)) if !i.trim().is_empty() => (h.trim(), Some(i.trim().to_owned())),
        Some((h, _)) => (h.trim(), None),
        None => (hostpart, None),
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let host = if host.is_empty() || host == "." || host.eq_ignore_ascii_case("(local)") {
        "localhost"
    } else {
        host
    };
    let port = match (port, &instance) {
        (Some(p), _) => p,
        (None, None) => DEFAULT_PORT,
        (None, Some(instance)) => {
            return Err(DdbError::bad_request(format!(
                "server=...\\{instance} needs its port (server=tcp:host\\{instance},PORT): ddb does not ask the SQL Browser service"
            )))
        }
    };
    Ok((host.to_owned(), port, instance))
}

fn parse_bool(key: &str, raw: &str) -> Result<bool, DdbError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(DdbError::bad_request(format!(
            "{key} must be true or false, got {:?}",
            crate::name::truncate_for_message(raw)
        ))),
    }
}

fn parse_encrypt(raw: &str) -> Result<Encrypt, DdbError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "mandatory" | "required" => Ok(Encrypt::Required),
        "false" | "no" | "optional" => Ok(Encrypt::LoginOnly),
        "plaintext" | "danger_plaintext" => Ok(Encrypt::Plaintext),
        _ => Err(DdbError::bad_request(format!(
            "encrypt must be true, false or plaintext, got {:?}",
            crate::name::truncate_for_message(raw)
        ))),
    }
}

fn parse_timeout(key: &str, raw: &str) -> Result<Option<Duration>, DdbError> {
    match raw.trim().parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(secs) => Ok(Some(Duration::from_secs(secs))),
        Err(_) => Err(DdbError::bad_request(format!(
            "{key} must be a number of seconds, got {:?}",
            crate::name::truncate_for_message(raw)
        ))),
    }
}

fn percent_decode(raw: &str) -> Result<String, DdbError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    DdbError::bad_request(
                        "mssql URL: '%' must start an escape such as %40; write a literal % as %25",
                    )
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| DdbError::bad_request("mssql URL: a percent-encoded part is not UTF-8"))
}

fn validate_pattern(pattern: &str) -> Result<(), DdbError> {
    let bad = |why: &str| {
        DdbError::bad_request(format!(
            "physical pattern {:?} {why}",
            crate::name::truncate_for_message(pattern)
        ))
    };
    if pattern.matches("{db}").count() != 1 {
        return Err(bad("must contain {db} exactly once (e.g. {node}_{db})"));
    }
    let rest = pattern.replace("{db}", "").replace("{node}", "");
    if rest.contains(['{', '}']) {
        return Err(bad("may use only the placeholders {node} and {db}"));
    }
    if pattern == "{db}" {
        return Err(bad(
            "must put a prefix or suffix beside {db} (e.g. {node}_{db}) so that ddb's databases stand apart from the server's others",
        ));
    }
    if pattern.chars().any(char::is_control) {
        return Err(bad("contains control characters"));
    }
    Ok(())
}

/// Maps ddb database names to SQL Server database names and back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Naming {
    prefix: String,
    suffix: String,
    catalog: String,
}

impl Naming {
    fn new(pattern: &str, node: &str) -> Result<Naming, DdbError> {
        validate_pattern(pattern)?;
        if node.is_empty() || node.chars().any(char::is_control) {
            return Err(DdbError::bad_request(
                "the node name must be non-empty and printable to name its SQL Server databases",
            ));
        }
        let catalog = format!("{node}{CATALOG_SUFFIX}");
        if catalog.chars().count() > MAX_IDENTIFIER_CHARS {
            return Err(DdbError::bad_request(format!(
                "node name {:?} is too long for SQL Server database names",
                crate::name::truncate_for_message(node)
            )));
        }
        // Split first, then expand: a node name containing "{db}" stays literal.
        let (pre, post) = pattern.split_once("{db}").unwrap_or((pattern, ""));
        Ok(Naming {
            prefix: pre.replace("{node}", node),
            suffix: post.replace("{node}", node),
            catalog,
        })
    }

    fn physical(&self, db: &Name) -> Result<String, DdbError> {
        let name = format!("{}{db}{}", self.prefix, self.suffix);
        if name.chars().count() > MAX_IDENTIFIER_CHARS {
            return Err(DdbError::bad_request(format!(
                "database {db}: its SQL Server name would pass {MAX_IDENTIFIER_CHARS} characters; shorten the name or the physical pattern"
            )));
        }
        Ok(name)
    }

    /// The ddb database a SQL Server database holds, if it is one of this node's. SQL Server
    /// compares database names without case by default, so the fixed parts do too; ddb's own
    /// part is always lower case.
    fn db_of(&self, physical: &str) -> Option<Name> {
        if physical.eq_ignore_ascii_case(&self.catalog) {
            return None;
        }
        let fixed = self.prefix.len() + self.suffix.len();
        if physical.len() <= fixed {
            return None;
        }
        let (head, rest) = split_at_checked(physical, self.prefix.len())?;
        let (stem, tail) = split_at_checked(rest, rest.len() - self.suffix.len())?;
        if !head.eq_ignore_ascii_case(&self.prefix) || !tail.eq_ignore_ascii_case(&self.suffix) {
            return None;
        }
        let name = Name::parse_db(stem).ok()?;
        (name.as_str() == stem).then_some(name)
    }
}

fn split_at_checked(s: &str, at: usize) -> Option<(&str, &str)> {
    s.is_char_boundary(at).then(|| s.split_at(at))
}

/// `[name]`, for identifiers (database names) that are not ddb names.
fn quote_ident(name: &str) -> String {
    format!("[{}]", name.replace(']', "]]"))
}

/// `N'text'`, for a database name inside a batch that cannot take parameters.
fn nstring(text: &str) -> String {
    format!("N'{}'", text.replace('\'', "''"))
}

// ------------------------------------------------------------------------------- the store

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

pub struct MssqlBackend {
    config: MssqlConfig,
    naming: Naming,
    /// The catalog connection; also runs CREATE/DROP DATABASE and lists databases.
    admin: Slot,
    writers: Mutex<HashMap<Name, Slot>>,
    readers: Mutex<HashMap<Name, Slot>>,
}

impl MssqlBackend {
    async fn connect(&self, database: Option<&str>) -> Result<TdsClient, DdbError> {
        let config = self.config.tiberius(database)?;
        let attempt = connect_following_redirects(config);
        let mut client = match self.config.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, attempt).await.map_err(|_| {
                DdbError::unavailable(format!(
                    "timed out after {}s connecting to SQL Server at {}:{}",
                    limit.as_secs(),
                    self.config.host,
                    self.config.port
                ))
            })??,
            None => attempt.await?,
        };
        tracing::debug!(host = %self.config.host, port = self.config.port, database = ?database, "SQL Server connection open");
        log_sql(SESSION_SETUP);
        drain(client.simple_query(SESSION_SETUP).await)
            .await
            .map_err(mssql_err)?;
        Ok(client)
    }

    /// Creates the catalog database and its table if missing, and keeps the connection.
    async fn init_catalog(&self) -> Result<(), DdbError> {
        let mut conn = MssqlConn::new(self.admin.clone().lock_owned().await);
        *conn.slot = Some(self.connect(None).await?);
        let cat = &self.naming.catalog;
        match conn
            .batch(&format!(
                "IF DB_ID({}) IS NULL CREATE DATABASE {}",
                nstring(cat),
                quote_ident(cat)
            ))
            .await
        {
            // Another process made it between the check and the CREATE.
            Err(e) if e.code == ErrorCode::DbExists => {}
            other => other?,
        }
        conn.batch(&format!("USE {}", quote_ident(cat))).await?;
        conn.batch(
            "IF OBJECT_ID(N'dropped', N'U') IS NULL \
             CREATE TABLE dropped (db NVARCHAR(128) COLLATE Latin1_General_100_BIN2 PRIMARY KEY, seq BIGINT NOT NULL); \
             IF OBJECT_ID(N'node', N'U') IS NULL \
             CREATE TABLE node (k NVARCHAR(128) COLLATE Latin1_General_100_BIN2 PRIMARY KEY, v BIGINT NOT NULL); \
             IF OBJECT_ID(N'owned', N'U') IS NULL \
             CREATE TABLE owned (db NVARCHAR(128) COLLATE Latin1_General_100_BIN2 PRIMARY KEY)",
        )
        .await
    }

    /// The catalog connection, reconnecting if it was discarded.
    async fn admin(&self) -> Result<MssqlConn, DdbError> {
        let mut guard = self.admin.clone().lock_owned().await;
        if guard.is_none() {
            *guard = Some(self.connect(Some(&self.naming.catalog)).await?);
        }
        Ok(MssqlConn::new(guard))
    }

    /// Whether `db`'s physical database exists and is this node's.
    async fn exists(&self, db: &Name, physical: &str) -> Result<bool, DdbError> {
        let st = Statement {
            sql: "SELECT COUNT_BIG(*) FROM sys.databases WHERE name = @P1 \
                  AND EXISTS (SELECT 1 FROM owned WHERE db = @P2)"
                .to_owned(),
            params: vec![Value::Str(physical.to_owned()), Value::Str(db.to_string())],
        };
        let rows = self.admin().await?.query(&st, &[ColumnType::Int]).await?;
        Ok(count(&rows) > 0)
    }

    async fn owned(&self, admin: &mut MssqlConn) -> Result<HashSet<String>, DdbError> {
        let st = Statement {
            sql: "SELECT db FROM owned".to_owned(),
            params: vec![],
        };
        let rows = admin.query(&st, &[ColumnType::String]).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| match r.into_iter().next() {
                Some(Value::Str(db)) => Some(db),
                _ => None,
            })
            .collect())
    }

    async fn cached(
        &self,
        pool: &Mutex<HashMap<Name, Slot>>,
        db: &Name,
    ) -> Result<Option<MssqlConn>, DdbError> {
        let physical = self.naming.physical(db)?;
        let existing = pool.lock().map_err(poisoned)?.get(db).cloned();
        let handle = match existing {
            Some(h) => h,
            None => {
                if !self.exists(db, &physical).await? {
                    return Ok(None);
                }
                let h = Slot::default();
                pool.lock()
                    .map_err(poisoned)?
                    .entry(db.clone())
                    .or_insert(h)
                    .clone()
            }
        };
        let mut guard = handle.clone().lock_owned().await;
        if guard.is_none() {
            match self.connect(Some(&physical)).await {
                Ok(client) => *guard = Some(client),
                // Dropped since it was cached (error 4060: cannot open database).
                Err(e) if e.code == ErrorCode::DbNotFound => {
                    drop(guard);
                    let mut map = pool.lock().map_err(poisoned)?;
                    if map.get(db).is_some_and(|h| Arc::ptr_eq(h, &handle)) {
                        map.remove(db);
                    }
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Some(MssqlConn::new(guard)))
    }
}

const OWN: &str =
    "IF NOT EXISTS (SELECT 1 FROM owned WHERE db = @P1) INSERT INTO owned (db) VALUES (@P1)";
const DISOWN: &str = "DELETE FROM owned WHERE db = @P1";

fn owned_statement(sql: &str, db: &Name) -> Statement {
    Statement {
        sql: sql.to_owned(),
        params: vec![Value::Str(db.to_string())],
    }
}

fn count(rows: &[Vec<Value>]) -> i64 {
    match rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => *n,
        _ => 0,
    }
}

async fn connect_following_redirects(mut config: tiberius::Config) -> Result<TdsClient, DdbError> {
    // Azure SQL and availability groups may send the client to another address, once.
    for _ in 0..2 {
        let addr = config.get_addr();
        let tcp = TcpStream::connect(&addr).await.map_err(|e| {
            DdbError::unavailable(format!("cannot reach SQL Server at {addr}: {e}"))
        })?;
        let _ = tcp.set_nodelay(true);
        match Client::connect(config.clone(), tcp.compat_write()).await {
            Ok(client) => return Ok(client),
            Err(tiberius::error::Error::Routing { host, port }) => {
                tracing::debug!(%host, port, "SQL Server redirected the connection");
                config.host(host);
                config.port(port);
            }
            Err(e) => return Err(mssql_err(e)),
        }
    }
    Err(DdbError::unavailable(
        "SQL Server redirected the connection more than once",
    ))
}

#[async_trait]
impl Backend for MssqlBackend {
    type Conn = MssqlConn;

    fn dialect(&self) -> Dialect {
        Dialect::Mssql
    }

    fn kind(&self) -> &'static str {
        "mssql"
    }

    async fn writer(&self, db: &Name) -> Result<Option<MssqlConn>, DdbError> {
        self.cached(&self.writers, db).await
    }

    async fn reader(&self, db: &Name) -> Result<Option<MssqlConn>, DdbError> {
        self.cached(&self.readers, db).await
    }

    async fn create(&self, db: &Name) -> Result<MssqlConn, DdbError> {
        self.remove(db).await?;
        let physical = self.naming.physical(db)?;
        let q = quote_ident(&physical);
        {
            // CREATE DATABASE cannot run inside a transaction: it runs on the catalog
            // connection, which never opens one. The claim goes first, so that a crash right
            // after the CREATE leaves a database this node knows to clean up.
            let mut admin = self.admin().await?;
            admin.exec(&owned_statement(OWN, db)).await?;
            if let Err(e) = admin.batch(&format!("CREATE DATABASE {q}")).await {
                if e.code != ErrorCode::DbExists {
                    return Err(e);
                }
                // Not ours: remove() above leaves other people's databases alone.
                admin.exec(&owned_statement(DISOWN, db)).await?;
                return Err(DdbError::new(
                    ErrorCode::DbExists,
                    format!(
                        "SQL Server already has a database named {physical} that this node did not create; \
                         ddb leaves it alone (drop or rename it, or choose another physical pattern)"
                    ),
                ));
            }
            // Readers see the last committed state instead of waiting for the writer's locks,
            // as SQLite readers do under WAL. Nobody else is connected yet, so this is instant.
            if let Err(e) = admin
                .batch(&format!(
                    "ALTER DATABASE {q} SET READ_COMMITTED_SNAPSHOT ON"
                ))
                .await
            {
                tracing::warn!(db = %db, error = %e, "READ_COMMITTED_SNAPSHOT is off: reads will wait for writes");
            }
        }
        let client = match self.connect(Some(&physical)).await {
            Ok(c) => c,
            Err(e) => {
                let _ = self.remove(db).await;
                return Err(e);
            }
        };
        let h: Slot = Arc::new(AsyncMutex::new(Some(client)));
        self.writers
            .lock()
            .map_err(poisoned)?
            .insert(db.clone(), h.clone());
        Ok(MssqlConn::new(h.lock_owned().await))
    }

    async fn remove(&self, db: &Name) -> Result<(), DdbError> {
        self.writers.lock().map_err(poisoned)?.remove(db);
        self.readers.lock().map_err(poisoned)?.remove(db);
        let physical = self.naming.physical(db)?;
        let q = quote_ident(&physical);
        // SINGLE_USER WITH ROLLBACK IMMEDIATE ends every other session in the database (a
        // cached connection still held somewhere), which DROP DATABASE would wait for.
        let sql = format!(
            "IF DB_ID({}) IS NOT NULL BEGIN ALTER DATABASE {q} SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE {q} END",
            nstring(&physical)
        );
        let mut admin = self.admin().await?;
        if !self.owned(&mut admin).await?.contains(db.as_str()) {
            // Somebody else's database, or none: nothing of ours to remove.
            return Ok(());
        }
        let mut attempt = 1;
        loop {
            log_sql(&sql);
            admin.in_flight = true;
            let result = admin.batch_raw(&sql).await;
            match admin.finished(result) {
                // Gone between the check and the DROP is as good.
                Ok(()) => break,
                Err(e) if e.code() == Some(3701) => break,
                // In use: a session slipped in between SINGLE_USER and DROP.
                Err(e) if e.code() == Some(3702) && attempt < DROP_ATTEMPTS => {
                    tracing::debug!(db = %db, attempt, "database still in use; dropping again");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(e) => return Err(mssql_err(e)),
            }
        }
        admin.exec(&owned_statement(DISOWN, db)).await.map(|_| ())
    }

    async fn physical(&self) -> Result<Vec<Name>, DdbError> {
        let st = Statement {
            // database_id 1 to 4 are master, tempdb, model and msdb.
            sql: "SELECT name FROM sys.databases WHERE database_id > 4".to_owned(),
            params: vec![],
        };
        let mut admin = self.admin().await?;
        let owned = self.owned(&mut admin).await?;
        let rows = admin.query(&st, &[ColumnType::String]).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| match r.into_iter().next() {
                Some(Value::Str(name)) => self.naming.db_of(&name),
                _ => None,
            })
            .filter(|db| owned.contains(db.as_str()))
            .collect())
    }

    async fn tombstone(&self, db: &Name) -> Result<u64, DdbError> {
        let st = Statement {
            sql: "SELECT seq FROM dropped WHERE db = @P1".to_owned(),
            params: vec![Value::Str(db.to_string())],
        };
        let rows = self.admin().await?.query(&st, &[ColumnType::Int]).await?;
        Ok(match rows.first().and_then(|r| r.first()) {
            Some(Value::Int(seq)) => *seq as u64,
            _ => 0,
        })
    }

    async fn set_tombstone(&self, db: &Name, seq: u64) -> Result<(), DdbError> {
        // Update-then-insert, no MERGE (docs/design.md "Stores"); the catalog connection is this
        // node's only writer of the table.
        let st = Statement {
            sql: "UPDATE dropped SET seq = @P2 WHERE db = @P1; \
                  IF @@ROWCOUNT = 0 INSERT INTO dropped (db, seq) VALUES (@P1, @P2)"
                .to_owned(),
            params: vec![Value::Str(db.to_string()), Value::Int(seq as i64)],
        };
        self.admin().await?.exec(&st).await.map(|_| ())
    }

    async fn position(&self) -> Result<u64, DdbError> {
        let st = Statement {
            sql: "SELECT v FROM node WHERE k = 'log_position'".to_owned(),
            params: vec![],
        };
        let rows = self.admin().await?.query(&st, &[ColumnType::Int]).await?;
        Ok(match rows.first().and_then(|r| r.first()) {
            Some(Value::Int(v)) => *v as u64,
            _ => 0,
        })
    }

    async fn set_position(&self, seq: u64) -> Result<(), DdbError> {
        let st = Statement {
            sql: "UPDATE node SET v = @P1 WHERE k = 'log_position'; \
                  IF @@ROWCOUNT = 0 INSERT INTO node (k, v) VALUES ('log_position', @P1)"
                .to_owned(),
            params: vec![Value::Int(seq as i64)],
        };
        self.admin().await?.exec(&st).await.map(|_| ())
    }

    async fn close(&self) -> Result<(), DdbError> {
        let writers: Vec<_> = self.writers.lock().map_err(poisoned)?.drain().collect();
        let readers: Vec<_> = self.readers.lock().map_err(poisoned)?.drain().collect();
        let slots = writers
            .into_iter()
            .chain(readers)
            .map(|(_, h)| h)
            .chain([self.admin.clone()]);
        for h in slots {
            if let Some(client) = h.lock().await.take() {
                if let Err(e) = client.close().await {
                    tracing::debug!(error = %e, "closing a SQL Server connection");
                }
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------- connections

/// One cached connection, held exclusively. Dropped inside a transaction, in the middle of a
/// request (a cancelled task) or after an I/O error, it closes its TCP connection instead of
/// going back to the cache.
pub struct MssqlConn {
    slot: OwnedMutexGuard<Option<TdsClient>>,
    /// Between a `BEGIN TRANSACTION` and its successful COMMIT or ROLLBACK.
    in_txn: bool,
    /// A request was sent and its reply not read to the end (still true if the call was
    /// cancelled): the wire is in an unknown state.
    in_flight: bool,
    /// The connection is unusable (I/O error, half-read result) or its transaction was ended
    /// by the server: every later statement fails, and it is never reused.
    broken: bool,
    /// Requests still running at this instant are abandoned (see `bounded`).
    deadline: Option<Instant>,
}

impl MssqlConn {
    fn new(slot: OwnedMutexGuard<Option<TdsClient>>) -> Self {
        MssqlConn {
            slot,
            in_txn: false,
            in_flight: false,
            broken: false,
            deadline: None,
        }
    }

    fn client(&mut self) -> tiberius::Result<&mut TdsClient> {
        if self.broken {
            return Err(lost(
                "this SQL Server connection failed earlier and is being discarded",
            ));
        }
        self.slot
            .as_mut()
            .ok_or_else(|| lost("the SQL Server connection is closed"))
    }

    /// Notes the end of a request: the reply is read, and the error (if any) may have left
    /// the connection unusable.
    fn finished<T>(&mut self, r: tiberius::Result<T>) -> tiberius::Result<T> {
        self.in_flight = false;
        if let Err(e) = &r {
            if breaks_connection(e) {
                self.broken = true;
            }
        }
        r
    }

    /// Maps a request's error. Inside a transaction, also checks that the transaction survived:
    /// a few errors (a deadlock, a doomed transaction) make SQL Server roll it back, and the
    /// statements after it must not run on their own, outside any transaction.
    async fn settle<T>(&mut self, r: tiberius::Result<T>) -> Result<T, DdbError> {
        let e = match r {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if self.in_txn && !self.broken {
            tracing::debug!(sql = TRANCOUNT_SQL, params = ?Vec::<&str>::new(), "mssql statement");
            self.in_flight = true;
            let count = self.trancount_raw().await;
            match self.finished(count) {
                Ok(n) if n > 0 => {}
                _ => {
                    tracing::warn!(error = %e, "SQL Server ended the transaction after an error; discarding the connection");
                    self.broken = true;
                }
            }
        }
        Err(mssql_err(e))
    }

    async fn trancount_raw(&mut self) -> tiberius::Result<i64> {
        let row = self
            .client()?
            .simple_query(TRANCOUNT_SQL)
            .await?
            .into_row()
            .await?;
        Ok(row
            .and_then(|r| r.try_get::<i64, usize>(0).ok().flatten())
            .unwrap_or(0))
    }

    async fn batch_raw(&mut self, sql: &str) -> tiberius::Result<()> {
        drain(self.client()?.simple_query(sql).await).await
    }

    async fn exec_raw(&mut self, st: &Statement) -> tiberius::Result<u64> {
        let params = bind(st)?;
        let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
        let result = self.client()?.execute(st.sql.as_str(), &refs).await?;
        Ok(result.rows_affected().iter().sum())
    }

    async fn query_raw(
        &mut self,
        st: &Statement,
        types: &[ColumnType],
    ) -> tiberius::Result<Vec<Vec<Value>>> {
        let params = bind(st)?;
        let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
        let mut rows = self
            .client()?
            .query(st.sql.as_str(), &refs)
            .await?
            .into_row_stream();
        let mut out = Vec::new();
        while let Some(row) = rows.try_next().await? {
            out.push(row_values(row, types)?);
        }
        Ok(out)
    }

    async fn for_each_row_raw(
        &mut self,
        st: &Statement,
        types: &[ColumnType],
        sink: &mut RowSink<'_>,
    ) -> tiberius::Result<Result<(), DdbError>> {
        let params = bind(st)?;
        let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
        let mut rows = self
            .client()?
            .query(st.sql.as_str(), &refs)
            .await?
            .into_row_stream();
        while let Some(row) = rows.try_next().await? {
            match sink(&row_values(row, types)?) {
                Ok(true) => {}
                // The rest of the result is not read: this connection cannot be reused.
                stop => {
                    drop(rows);
                    self.broken = true;
                    return Ok(stop.map(|_| ()));
                }
            }
        }
        Ok(Ok(()))
    }
}

const TRANCOUNT_SQL: &str = "SELECT CAST(@@TRANCOUNT AS BIGINT)";

fn log_statement(st: &Statement) {
    tracing::debug!(sql = %st.sql, params = ?st.param_types(), "mssql statement");
    tracing::trace!(params = ?st.params, "mssql statement values");
}

fn log_sql(sql: &str) {
    tracing::debug!(sql = %sql, params = ?Vec::<&str>::new(), "mssql statement");
}

#[async_trait]
impl SqlConn for MssqlConn {
    async fn exec(&mut self, st: &Statement) -> Result<u64, DdbError> {
        log_statement(st);
        self.in_flight = true;
        let r = self.bounded_exec(st).await?;
        let r = self.finished(r);
        self.settle(r).await
    }

    async fn query(
        &mut self,
        st: &Statement,
        types: &[ColumnType],
    ) -> Result<Vec<Vec<Value>>, DdbError> {
        log_statement(st);
        self.in_flight = true;
        let r = self.bounded_query(st, types).await?;
        let r = self.finished(r);
        self.settle(r).await
    }

    async fn for_each_row(
        &mut self,
        st: &Statement,
        types: &[ColumnType],
        sink: &mut RowSink<'_>,
    ) -> Result<(), DdbError> {
        log_statement(st);
        self.in_flight = true;
        let r = self.bounded_rows(st, types, sink).await?;
        let r = self.finished(r);
        self.settle(r).await?
    }

    async fn batch(&mut self, sql: &str) -> Result<(), DdbError> {
        log_sql(sql);
        let effect = txn_effect(sql);
        if effect == Some(TxnEffect::Begin) {
            // Set before sending: a BEGIN whose reply is lost leaves the state unknown.
            self.in_txn = true;
        }
        self.in_flight = true;
        let r = self.bounded_batch(sql).await?;
        let r = self.finished(r);
        if r.is_ok() && effect == Some(TxnEffect::End) {
            self.in_txn = false;
        }
        self.settle(r).await
    }

    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    fn in_transaction(&mut self) -> bool {
        // `settle` checks @@TRANCOUNT after every failed statement inside a transaction and
        // marks the connection broken when the server ended it.
        self.in_txn && !self.broken
    }
}

impl MssqlConn {
    // One wrapper per request kind: `bounded` needs the request future while `self` is
    // borrowed for the deadline, so the request is built from a fresh borrow inside.
    async fn bounded_exec(&mut self, st: &Statement) -> Result<tiberius::Result<u64>, DdbError> {
        let deadline = self.deadline;
        let r = with_deadline(deadline, self.exec_raw(st)).await;
        self.after_deadline(r)
    }

    async fn bounded_query(
        &mut self,
        st: &Statement,
        types: &[ColumnType],
    ) -> Result<tiberius::Result<Vec<Vec<Value>>>, DdbError> {
        let deadline = self.deadline;
        let r = with_deadline(deadline, self.query_raw(st, types)).await;
        self.after_deadline(r)
    }

    async fn bounded_rows(
        &mut self,
        st: &Statement,
        types: &[ColumnType],
        sink: &mut RowSink<'_>,
    ) -> Result<tiberius::Result<Result<(), DdbError>>, DdbError> {
        let deadline = self.deadline;
        let r = with_deadline(deadline, self.for_each_row_raw(st, types, sink)).await;
        self.after_deadline(r)
    }

    async fn bounded_batch(&mut self, sql: &str) -> Result<tiberius::Result<()>, DdbError> {
        let deadline = self.deadline;
        let r = with_deadline(deadline, self.batch_raw(sql)).await;
        self.after_deadline(r)
    }

    fn after_deadline<T>(&mut self, r: Option<T>) -> Result<T, DdbError> {
        r.ok_or_else(|| {
            self.broken = true;
            deadline_passed()
        })
    }
}

/// `None` when the deadline passed first. tiberius cannot send an attention to cancel a
/// request, so one that overruns is abandoned with its connection (marked broken by the
/// caller): closing the TCP connection makes SQL Server stop it and roll back its transaction.
async fn with_deadline<T>(
    deadline: Option<Instant>,
    request: impl Future<Output = T>,
) -> Option<T> {
    match deadline {
        None => Some(request.await),
        Some(at) => tokio::time::timeout_at(at.into(), request).await.ok(),
    }
}

impl Drop for MssqlConn {
    fn drop(&mut self) {
        if self.in_txn || self.in_flight || self.broken {
            if let Some(client) = self.slot.take() {
                // Closing the TCP connection makes the server roll back; the next user of
                // this cache slot connects afresh.
                drop(client);
                tracing::debug!(
                    in_transaction = self.in_txn,
                    in_flight = self.in_flight,
                    broken = self.broken,
                    "discarded a SQL Server connection"
                );
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnEffect {
    Begin,
    End,
}

/// What a batch does to the connection's transaction: `BEGIN TRAN[SACTION]` opens it; `COMMIT`
/// and a `ROLLBACK` of the whole transaction (not `ROLLBACK TRANSACTION savepoint`) end it.
fn txn_effect(sql: &str) -> Option<TxnEffect> {
    let upper = sql.trim().trim_end_matches(';').to_ascii_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    let is_tran = |w: &&str| *w == "TRAN" || *w == "TRANSACTION";
    match words.as_slice() {
        ["BEGIN", t, ..] if is_tran(t) => Some(TxnEffect::Begin),
        ["COMMIT", ..] => Some(TxnEffect::End),
        [.., "ROLLBACK"] => Some(TxnEffect::End),
        [.., "ROLLBACK", t] if is_tran(t) => Some(TxnEffect::End),
        _ => None,
    }
}

/// Reads a query stream to its end, so that its errors surface and the connection is ready.
async fn drain(stream: tiberius::Result<tiberius::QueryStream<'_>>) -> tiberius::Result<()> {
    stream?.into_results().await.map(|_| ())
}

fn lost(message: &str) -> tiberius::error::Error {
    tiberius::error::Error::Io {
        kind: std::io::ErrorKind::NotConnected,
        message: message.to_owned(),
    }
}

/// A value bound as a parameter: BIGINT, FLOAT, NVARCHAR or BIT.
struct Param<'a>(&'a Value);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> ColumnData<'_> {
        match self.0 {
            Value::Int(i) => ColumnData::I64(Some(*i)),
            Value::Float(f) => ColumnData::F64(Some(*f)),
            Value::Str(s) => ColumnData::String(Some(Cow::Borrowed(s.as_str()))),
            Value::Bool(b) => ColumnData::Bit(Some(*b)),
            // Refused by `bind`: SQL Server has no typeless NULL parameter.
            Value::Null => ColumnData::I64(None),
        }
    }
}

fn bind(st: &Statement) -> tiberius::Result<Vec<Param<'_>>> {
    if st.params.iter().any(Value::is_null) {
        return Err(tiberius::error::Error::Conversion(
            "NULL must be written into the SQL text, not bound (sql/mod.rs does this)".into(),
        ));
    }
    Ok(st.params.iter().map(Param).collect())
}

fn row_values(row: tiberius::Row, types: &[ColumnType]) -> tiberius::Result<Vec<Value>> {
    if row.len() < types.len() {
        return Err(tiberius::error::Error::Conversion(
            format!(
                "expected {} columns, the row has {}",
                types.len(),
                row.len()
            )
            .into(),
        ));
    }
    row.into_iter()
        .zip(types)
        .map(|(data, ty)| read_value(data, *ty))
        .collect()
}

fn read_value(data: ColumnData<'static>, ty: ColumnType) -> tiberius::Result<Value> {
    Ok(match (data, ty) {
        (ColumnData::I64(Some(i)), ColumnType::Int) => Value::Int(i),
        (ColumnData::I32(Some(i)), ColumnType::Int) => Value::Int(i64::from(i)),
        (ColumnData::I16(Some(i)), ColumnType::Int) => Value::Int(i64::from(i)),
        (ColumnData::U8(Some(i)), ColumnType::Int) => Value::Int(i64::from(i)),
        (ColumnData::F64(Some(f)), ColumnType::Float) => Value::Float(f),
        (ColumnData::F32(Some(f)), ColumnType::Float) => Value::Float(f64::from(f)),
        (ColumnData::String(Some(s)), ColumnType::String) => Value::Str(s.into_owned()),
        (ColumnData::Bit(Some(b)), ColumnType::Bool) => Value::Bool(b),
        (ColumnData::I64(None), _)
        | (ColumnData::I32(None), _)
        | (ColumnData::I16(None), _)
        | (ColumnData::U8(None), _)
        | (ColumnData::F64(None), _)
        | (ColumnData::F32(None), _)
        | (ColumnData::String(None), _)
        | (ColumnData::Bit(None), _) => Value::Null,
        (other, ty) => {
            return Err(tiberius::error::Error::Conversion(
                format!(
                    "stored value of SQL type {} in a {} column",
                    data_kind(&other),
                    ty.as_str()
                )
                .into(),
            ))
        }
    })
}

/// The SQL type of a value, for messages (never the value itself, which may be huge).
fn data_kind(data: &ColumnData<'_>) -> &'static str {
    match data {
        ColumnData::U8(_) => "tinyint",
        ColumnData::I16(_) => "smallint",
        ColumnData::I32(_) => "int",
        ColumnData::I64(_) => "bigint",
        ColumnData::F32(_) => "real",
        ColumnData::F64(_) => "float",
        ColumnData::Bit(_) => "bit",
        ColumnData::String(_) => "nvarchar",
        ColumnData::Guid(_) => "uniqueidentifier",
        ColumnData::Binary(_) => "varbinary",
        ColumnData::Numeric(_) => "numeric",
        ColumnData::Xml(_) => "xml",
        _ => "date/time",
    }
}

// ------------------------------------------------------------------------------- errors

/// Whether the connection can serve another statement after `e`. Server errors below severity
/// 20 leave it ready (tiberius reads the reply to its end before reporting one); anything else
/// (I/O, TLS, a protocol error, a row we could not read half-way through a result) does not.
fn breaks_connection(e: &tiberius::error::Error) -> bool {
    !matches!(e, tiberius::error::Error::Server(t) if t.class() < 20)
}

fn mssql_err(e: tiberius::error::Error) -> DdbError {
    use tiberius::error::Error as E;
    match &e {
        E::Server(t) => server_err(t.code(), t.message()),
        E::Io { .. } | E::Tls(_) | E::Routing { .. } | E::Protocol(_) => {
            DdbError::unavailable(format!("SQL Server connection failed: {e}"))
        }
        #[cfg(all(unix, feature = "mssql-integrated-auth"))]
        E::Gssapi(_) => DdbError::unavailable(format!("SQL Server login failed: {e}")),
        _ => DdbError::internal(format!("SQL Server client error: {e}")),
    }
}

/// Classifies a server error by its number where SQL Server's numbering is standard, and by
/// its message otherwise (compatible servers number some errors differently).
fn server_err(code: u32, message: &str) -> DdbError {
    let text = format!("SQL Server error {code}: {message}");
    let by_number = match code {
        // unique index, primary key, NULL into NOT NULL, foreign key or check constraint
        // 1505: CREATE UNIQUE INDEX found a duplicate key among existing rows.
        2627 | 2601 | 1505 | 515 | 547 => Some(ErrorCode::Constraint),
        1801 => Some(ErrorCode::DbExists),
        // cannot open database (it is gone, or the login may not use it)
        4060 => Some(ErrorCode::DbNotFound),
        208 => Some(ErrorCode::TableNotFound),
        2714 => Some(ErrorCode::TableExists),
        // string truncated (key columns are NVARCHAR(450)), index entry too long
        8152 | 2628 | 1946 => Some(ErrorCode::TooLarge),
        // deadlock victim, login failed, server shutting down: worth another try
        1205 | 18456 | 6005 => Some(ErrorCode::Unavailable),
        1222 => Some(ErrorCode::Timeout),
        _ => None,
    };
    let lower = message.to_lowercase();
    let code = by_number.unwrap_or_else(|| {
        if lower.contains("duplicate key")
            || lower.contains("violation of primary key")
            || lower.contains("violation of unique key")
            || lower.contains("cannot insert the value null")
            || lower.contains("conflicted with the")
        {
            ErrorCode::Constraint
        } else if lower.contains("invalid object name") {
            ErrorCode::TableNotFound
        } else if lower.contains("there is already an object named") {
            ErrorCode::TableExists
        } else if lower.starts_with("database '") && lower.contains("already exists") {
            ErrorCode::DbExists
        } else if lower.contains("would be truncated") {
            ErrorCode::TooLarge
        } else {
            ErrorCode::Internal
        }
    });
    DdbError::new(code, text)
}

fn poisoned<T>(_: T) -> DdbError {
    DdbError::internal("store lock poisoned by an earlier panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql_login(user: &str, password: &str) -> MssqlAuth {
        MssqlAuth::SqlServer {
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    fn err(url: &str) -> DdbError {
        match parse_url(url) {
            Ok(c) => panic!("{url} parsed: {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn url_with_defaults() {
        let c = parse_url("mssql://sa:secret@db.example").unwrap();
        assert_eq!(
            c,
            MssqlConfig {
                host: "db.example".into(),
                port: 1433,
                instance: None,
                auth: sql_login("sa", "secret"),
                encrypt: Encrypt::Required,
                trust_cert: false,
                trust_cert_ca: None,
                physical: "{node}_{db}".into(),
                connect_timeout: Some(Duration::from_secs(15)),
                application_name: "ddb".into(),
                ignored: vec![],
            }
        );
        assert_eq!(
            c.tiberius(Some("n_db")).unwrap().get_addr(),
            "db.example:1433"
        );
    }

    #[test]
    fn url_with_every_parameter_and_encoded_login() {
        let c = parse_url(
            "mssql://d%C3%B6m%5Cuser:p%40ss%3Aw%2Fo%3Frd%25@10.0.0.5:1444/?trust_cert=true&encrypt=false\
             &physical=ddb_%7Bnode%7D_{db}&connect_timeout=3&application_name=ddb-test",
        )
        .unwrap();
        assert_eq!(c.host, "10.0.0.5");
        assert_eq!(c.port, 1444);
        assert_eq!(c.auth, sql_login("döm\\user", "p@ss:w/o?rd%"));
        assert!(c.trust_cert);
        assert_eq!(c.encrypt, Encrypt::LoginOnly);
        assert_eq!(c.physical, "ddb_{node}_{db}");
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(3)));
        assert_eq!(c.application_name, "ddb-test");
        assert_eq!(c.tiberius(None).unwrap().get_addr(), "10.0.0.5:1444");
    }

    #[test]
    fn url_edge_cases() {
        // An unencoded '@' in the password: the last '@' ends the login.
        assert_eq!(
            parse_url("mssql://u:a@b@h").unwrap().auth,
            sql_login("u", "a@b")
        );
        // No password at all.
        assert_eq!(parse_url("mssql://u@h").unwrap().auth, sql_login("u", ""));
        let v6 =
            parse_url("mssql://u:p@[::1]:1500?encrypt=plaintext&trust_cert_ca=/ca.pem").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 1500));
        assert_eq!(v6.encrypt, Encrypt::Plaintext);
        assert_eq!(v6.trust_cert_ca.as_deref(), Some("/ca.pem"));
        assert_eq!(parse_url("mssql://u:p@[::1]").unwrap().port, 1433);
        assert_eq!(
            parse_url("mssql://u:p@h?connect_timeout=0")
                .unwrap()
                .connect_timeout,
            None
        );
    }

    #[test]
    fn url_errors_are_bad_requests_without_the_password() {
        for url in [
            "mssql://h:1433",
            "mssql://:s3cr3t@h",
            "mssql://u:s3cr3t@:1433",
            "mssql://u:s3cr3t@h:0",
            "mssql://u:s3cr3t@h:99999",
            "mssql://u:s3cr3t@h:",
            "mssql://u:s3cr3t@h/mydb",
            "mssql://u:s3cr3t@h#frag",
            "mssql://u:s3cr3t@h?tls=1",
            "mssql://u:s3cr3t@h?trust_cert",
            "mssql://u:s3cr3t@h?trust_cert=maybe",
            "mssql://u:s3cr3t@h?encrypt=strict",
            "mssql://u:s3cr3t@h?connect_timeout=soon",
            "mssql://u:s3cr%zz3t@h",
            "mssql://u:s3cr%ff3t@h",
            "mssql://u:s3cr3t@h?trust_cert=true&trust_cert_ca=/ca.pem",
            "mssql://u:s3cr3t@[::1",
            "mssql://u:s3cr3t@[::1]x",
            "mssql://u:s3cr3t@h?integrated_security=true",
            "postgres://u:s3cr3t@h",
        ] {
            let e = err(url);
            assert_eq!(e.code, ErrorCode::BadRequest, "{url}: {e}");
            assert!(!e.message.contains("s3cr"), "{url}: {e}");
        }
    }

    #[test]
    fn physical_pattern_is_checked() {
        for pattern in [
            "x",
            "{node}",
            "{db}",
            "{db}_{db}",
            "{node}_{db}_{other}",
            "a{b}{db}",
            "%7Bdb%7D",
        ] {
            let e = err(&format!("mssql://u:p@h?physical={pattern}"));
            assert_eq!(e.code, ErrorCode::BadRequest, "{pattern}: {e}");
        }
        for pattern in ["ddb_{db}", "{db}_{node}", "{node}-{db}-x"] {
            let url = format!("mssql://u:p@h?physical={pattern}");
            assert_eq!(parse_url(&url).unwrap().physical, pattern);
        }
    }

    #[test]
    fn ado_connection_string() {
        let c = parse_url(
            "mssql:server=tcp:sql.local,1433;user=sa;password=Secret!1;TrustServerCertificate=true",
        )
        .unwrap();
        assert_eq!(c.host, "sql.local");
        assert_eq!(c.port, 1433);
        assert_eq!(c.instance, None);
        assert_eq!(c.auth, sql_login("sa", "Secret!1"));
        assert!(c.trust_cert);
        assert_eq!(c.encrypt, Encrypt::Required);
        assert_eq!(c.physical, DEFAULT_PHYSICAL);
        assert!(c.ignored.is_empty());
        // Braces are pattern text, not ODBC-style quoting.
        let c = parse_url("mssql:server=h;uid=u;pwd=p;physical={node}_x_{db}").unwrap();
        assert_eq!(c.physical, "{node}_x_{db}");
    }

    #[test]
    fn ado_quoting_keys_and_ignored_keys() {
        let c = parse_url(
            "mssql: Data Source = tcp:H\\INST , 1500 ; User  ID=sa;Password=\"a;b\"\"c\" ;\
             Encrypt=DANGER_PLAINTEXT;physical={db}_on_{node};Database=foo;\
             Application Name='it''s';Connect Timeout=5;TrustServerCertificateCA=\"/etc/ca;x.pem\";\
             MultipleActiveResultSets=false;",
        )
        .unwrap();
        assert_eq!(c.host, "H");
        assert_eq!(c.port, 1500);
        assert_eq!(c.instance.as_deref(), Some("INST"));
        assert_eq!(c.auth, sql_login("sa", "a;b\"c"));
        assert_eq!(c.encrypt, Encrypt::Plaintext);
        assert_eq!(c.physical, "{db}_on_{node}");
        assert_eq!(c.application_name, "it's");
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(5)));
        assert_eq!(c.trust_cert_ca.as_deref(), Some("/etc/ca;x.pem"));
        assert_eq!(c.ignored, ["database", "multipleactiveresultsets"]);
        assert_eq!(c.tiberius(Some("x")).unwrap().get_addr(), "H:1500");
    }

    #[test]
    fn ado_server_forms() {
        for (server, host, port) in [
            ("tcp:h,1433", "h", 1433),
            ("h", "h", 1433),
            ("h,2000", "h", 2000),
            (".", "localhost", 1433),
            ("(local),1500", "localhost", 1500),
            ("TCP:10.1.2.3", "10.1.2.3", 1433),
            ("tcp:[::1],1444", "::1", 1444),
            ("::1,1444", "::1", 1444),
        ] {
            let c = parse_url(&format!("mssql:server={server};uid=u;pwd=p")).unwrap();
            assert_eq!((c.host.as_str(), c.port), (host, port), "{server}");
        }
        // No server: the local default instance, as ADO.NET clients assume.
        let c = parse_url("mssql:uid=u;pwd=p").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("localhost", 1433));
    }

    #[test]
    fn ado_errors() {
        for ado in [
            "mssql:server=h\\inst;uid=u;pwd=s3cr3t",
            "mssql:server=np:\\\\.\\pipe\\sql;uid=u;pwd=s3cr3t",
            "mssql:server=h,x;uid=u;pwd=s3cr3t",
            "mssql:server=h;pwd=s3cr3t",
            "mssql:server=h;uid=;pwd=s3cr3t",
            "mssql:server=h;uid=u;pwd=\"s3cr3t",
            "mssql:server=h;uid=u;pwd=\"s3cr3t\"x",
            "mssql:server=h;uid=u;pwd=s3cr3t;oops",
            "mssql:server=h;uid=u;pwd=s3cr3t;=x",
            "mssql:server=h;uid=u;pwd=s3cr3t;TrustServerCertificate=perhaps",
            "mssql:server=h;uid=u;pwd=s3cr3t;encrypt=strict",
            "mssql:server=h;uid=u;pwd=s3cr3t;physical=nodb",
            "mssql:",
        ] {
            let e = err(ado);
            assert_eq!(e.code, ErrorCode::BadRequest, "{ado}: {e}");
            assert!(!e.message.contains("s3cr"), "{ado}: {e}");
        }
    }

    #[cfg(not(feature = "mssql-integrated-auth"))]
    #[test]
    fn integrated_security_needs_the_feature() {
        for url in [
            "mssql:server=tcp:h,1433;IntegratedSecurity=true",
            "mssql:server=h;Integrated Security=SSPI",
            "mssql://h:1433?integrated_security=true",
        ] {
            let e = err(url);
            assert_eq!(e.code, ErrorCode::BadRequest);
            assert!(
                e.message.contains("--features mssql-integrated-auth"),
                "{e}"
            );
        }
        // Off is fine and means a SQL login.
        let c = parse_url("mssql:server=h;IntegratedSecurity=false;uid=u;pwd=p").unwrap();
        assert_eq!(c.auth, sql_login("u", "p"));
    }

    #[cfg(all(unix, feature = "mssql-integrated-auth"))]
    #[test]
    fn integrated_security_with_the_feature() {
        let c = parse_url("mssql:server=tcp:h,1433;IntegratedSecurity=true").unwrap();
        assert_eq!(c.auth, MssqlAuth::Integrated);
        assert!(c.tiberius(None).is_ok());
        let c = parse_url("mssql://h:1433?integrated_security=true").unwrap();
        assert_eq!(c.auth, MssqlAuth::Integrated);
    }

    #[test]
    fn debug_output_hides_the_password() {
        let c = parse_url("mssql://sa:hunter2@h").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<hidden>"), "{shown}");
    }

    fn name(s: &str) -> Name {
        Name::parse_db(s).unwrap()
    }

    #[test]
    fn physical_names_default_to_node_underscore_db() {
        let n = Naming::new(DEFAULT_PHYSICAL, "slave1").unwrap();
        assert_eq!(n.physical(&name("orders")).unwrap(), "slave1_orders");
        assert_eq!(n.catalog, "slave1__ddbcatalog");
        assert_eq!(n.db_of("slave1_orders"), Some(name("orders")));
        // SQL Server database names compare without case.
        assert_eq!(n.db_of("SLAVE1_orders"), Some(name("orders")));
        for not_ours in [
            "slave1__ddbcatalog",
            "SLAVE1__DDBCATALOG",
            "slave2_orders",
            "slave1_",
            "slave1",
            "slave1_Orders",
            "slave1_select",
            "slave1_a-b",
            "master",
            "slave1_ördér",
        ] {
            assert_eq!(n.db_of(not_ours), None, "{not_ours}");
        }
    }

    #[test]
    fn physical_names_follow_the_pattern() {
        let n = Naming::new("ddb-{db}-on-{node}", "m").unwrap();
        assert_eq!(n.physical(&name("x")).unwrap(), "ddb-x-on-m");
        assert_eq!(n.db_of("ddb-x-on-m"), Some(name("x")));
        assert_eq!(n.db_of("ddb-x-on-n"), None);
        assert_eq!(n.db_of("ddb--on-m"), None);
        // A node name is literal text, even one that looks like a placeholder.
        let n = Naming::new("{node}_{db}", "a{db}b").unwrap();
        assert_eq!(n.physical(&name("x")).unwrap(), "a{db}b_x");
        assert_eq!(n.db_of("a{db}b_x"), Some(name("x")));
        // Multi-byte node names are split on character boundaries.
        let n = Naming::new("{node}_{db}", "nœud").unwrap();
        assert_eq!(n.db_of("nœud_x"), Some(name("x")));
        assert_eq!(n.db_of("nœu"), None);
        assert_eq!(n.db_of("é"), None);
    }

    #[test]
    fn physical_names_fit_sql_server() {
        assert!(Naming::new(DEFAULT_PHYSICAL, "").is_err());
        assert!(Naming::new(DEFAULT_PHYSICAL, "a\nb").is_err());
        assert!(Naming::new(DEFAULT_PHYSICAL, &"n".repeat(117)).is_err());
        let n = Naming::new(DEFAULT_PHYSICAL, &"n".repeat(116)).unwrap();
        assert_eq!(n.catalog.len(), 128);
        assert_eq!(n.physical(&name("abcdefghijk")).unwrap().len(), 128);
        assert_eq!(
            n.physical(&name("abcdefghijkl")).unwrap_err().code,
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn identifiers_and_literals_are_escaped() {
        assert_eq!(quote_ident("n_db"), "[n_db]");
        assert_eq!(quote_ident("a]b[c"), "[a]]b[c]");
        assert_eq!(nstring("n_db"), "N'n_db'");
        assert_eq!(nstring("o'k"), "N'o''k'");
    }

    #[test]
    fn transaction_tracking_follows_the_engine_sql() {
        use TxnEffect::{Begin, End};
        for (sql, want) in [
            ("BEGIN TRANSACTION", Some(Begin)),
            ("begin tran", Some(Begin)),
            ("COMMIT TRANSACTION", Some(End)),
            ("COMMIT", Some(End)),
            ("IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION", Some(End)),
            ("ROLLBACK", Some(End)),
            ("ROLLBACK TRAN;", Some(End)),
            // Savepoints do not open or close the transaction.
            ("SAVE TRANSACTION ddb_op", None),
            ("ROLLBACK TRANSACTION ddb_op", None),
            ("CREATE TABLE [t] ([id] BIGINT)", None),
            ("BEGIN", None),
        ] {
            assert_eq!(txn_effect(sql), want, "{sql}");
        }
    }

    #[test]
    fn server_errors_map_to_ddb_codes() {
        for (number, message, want) in [
            (
                2627,
                "Violation of PRIMARY KEY constraint 'PK_t'.",
                ErrorCode::Constraint,
            ),
            (
                2601,
                "Cannot insert duplicate key row",
                ErrorCode::Constraint,
            ),
            (
                515,
                "Cannot insert the value NULL into column 'id'",
                ErrorCode::Constraint,
            ),
            (
                547,
                "The INSERT statement conflicted with the CHECK constraint",
                ErrorCode::Constraint,
            ),
            (1801, "Database 'n_x' already exists.", ErrorCode::DbExists),
            (208, "Invalid object name 't'.", ErrorCode::TableNotFound),
            (
                2714,
                "There is already an object named 't' in the database.",
                ErrorCode::TableExists,
            ),
            (
                4060,
                "Cannot open database \"n_x\" requested by the login.",
                ErrorCode::DbNotFound,
            ),
            (
                2628,
                "String or binary data would be truncated",
                ErrorCode::TooLarge,
            ),
            (1205, "Transaction was deadlocked", ErrorCode::Unavailable),
            (18456, "Login failed for user 'sa'.", ErrorCode::Unavailable),
            (102, "Incorrect syntax near 'x'.", ErrorCode::Internal),
            // Other numbering, same meaning: classified by message.
            (
                50000,
                "duplicate key value violates unique constraint",
                ErrorCode::Constraint,
            ),
            (
                33557097,
                "Invalid object name 't'.",
                ErrorCode::TableNotFound,
            ),
            (
                1,
                "There is already an object named 't'",
                ErrorCode::TableExists,
            ),
            (
                1,
                "Database 'n_x' already exists. Choose a different database name.",
                ErrorCode::DbExists,
            ),
        ] {
            let e = server_err(number, message);
            assert_eq!(e.code, want, "{number} {message}");
            assert!(e.message.contains(&number.to_string()) && e.message.contains(message));
        }
    }

    #[test]
    fn client_errors_map_to_ddb_codes() {
        use tiberius::error::Error as E;
        let io = E::Io {
            kind: std::io::ErrorKind::ConnectionReset,
            message: "reset".into(),
        };
        assert!(breaks_connection(&io));
        assert_eq!(mssql_err(io).code, ErrorCode::Unavailable);
        assert_eq!(
            mssql_err(E::Tls("bad cert".into())).code,
            ErrorCode::Unavailable
        );
        assert_eq!(
            mssql_err(E::Protocol("eof".into())).code,
            ErrorCode::Unavailable
        );
        let conversion = E::Conversion("x".into());
        assert!(breaks_connection(&conversion));
        assert_eq!(mssql_err(conversion).code, ErrorCode::Internal);
    }

    #[test]
    fn values_bind_as_sql_server_types_and_read_back() {
        let st = Statement {
            sql: "x".into(),
            params: vec![
                Value::Int(-7),
                Value::Float(1.5),
                Value::Str("é'".into()),
                Value::Bool(true),
            ],
        };
        let params = bind(&st).unwrap();
        let data: Vec<ColumnData<'_>> = params.iter().map(ToSql::to_sql).collect();
        assert_eq!(
            data,
            [
                ColumnData::I64(Some(-7)),
                ColumnData::F64(Some(1.5)),
                ColumnData::String(Some(Cow::Borrowed("é'"))),
                ColumnData::Bit(Some(true)),
            ]
        );
        let with_null = Statement {
            sql: "x".into(),
            params: vec![Value::Null],
        };
        assert!(bind(&with_null).is_err());

        for (data, ty, want) in [
            (ColumnData::I64(Some(5)), ColumnType::Int, Value::Int(5)),
            (ColumnData::I32(Some(5)), ColumnType::Int, Value::Int(5)),
            (
                ColumnData::F64(Some(0.25)),
                ColumnType::Float,
                Value::Float(0.25),
            ),
            (
                ColumnData::String(Some("s".into())),
                ColumnType::String,
                Value::Str("s".into()),
            ),
            (
                ColumnData::Bit(Some(false)),
                ColumnType::Bool,
                Value::Bool(false),
            ),
            (ColumnData::I64(None), ColumnType::Int, Value::Null),
            (ColumnData::String(None), ColumnType::String, Value::Null),
            (ColumnData::Bit(None), ColumnType::Bool, Value::Null),
            (ColumnData::F64(None), ColumnType::Float, Value::Null),
        ] {
            assert_eq!(read_value(data, ty).unwrap(), want);
        }
        assert!(read_value(ColumnData::String(Some("1".into())), ColumnType::Int).is_err());
        assert!(read_value(ColumnData::I64(Some(1)), ColumnType::Bool).is_err());
    }

    /// A port nobody listens on.
    async fn closed_port() -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    }

    async fn open_err(url: &str) -> DdbError {
        match open(url, "n", &Default::default()).await {
            Ok(_) => panic!("{url} opened"),
            Err(e) => e,
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable() {
        let port = closed_port().await;
        let e = open_err(&format!("mssql://sa:s3cr3t@127.0.0.1:{port}")).await;
        assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
        assert!(
            e.message.contains(&port.to_string()) && !e.message.contains("s3cr3t"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_server_that_hangs_up_is_unavailable() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                drop(sock);
            }
        });
        let e = open_err(&format!(
            "mssql:server=tcp:127.0.0.1,{port};uid=sa;pwd=s3cr3t"
        ))
        .await;
        assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut socks = Vec::new();
            while let Ok((sock, _)) = l.accept().await {
                socks.push(sock);
            }
        });
        let started = std::time::Instant::now();
        let e = open_err(&format!("mssql://sa:p@127.0.0.1:{port}?connect_timeout=1")).await;
        assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
        assert!(e.message.contains("timed out"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
        held.abort();
    }

    #[tokio::test]
    async fn a_bad_url_fails_before_connecting() {
        let e = open_err("mssql://sa:p@h?physical={db}").await;
        assert_eq!(e.code, ErrorCode::BadRequest);
        let e = match crate::store::open("mssql:server=h", "n", &Default::default()).await {
            Ok(_) => panic!("opened"),
            Err(e) => e,
        };
        assert_eq!(e.code, ErrorCode::BadRequest, "{e}");
    }
}
