//! The `--store` URL: both forms (`mssql://...` and `mssql:` + ADO.NET), parsed into an
//! [`MssqlConfig`], and the tiberius configuration made from it.

use super::naming::validate_pattern;
use crate::error::DdbError;
use std::time::Duration;
use tiberius::{AuthMethod, EncryptionLevel};

/// SQL Server's port when the URL names none.
pub const DEFAULT_PORT: u16 = 1433;
/// The physical name of a ddb database when the URL sets no `physical` pattern.
pub const DEFAULT_PHYSICAL: &str = "{node}_{db}";
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_APPLICATION_NAME: &str = "ddb";

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
