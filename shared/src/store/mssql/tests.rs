use super::config::*;
use super::conn::*;
use super::errors::*;
use super::naming::*;
use super::open;
use crate::error::{DdbError, ErrorCode};
use crate::name::Name;
use crate::sql::Statement;
use crate::value::{ColumnType, Value};
use std::borrow::Cow;
use std::time::Duration;
use tiberius::{ColumnData, ToSql};

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
    let v6 = parse_url("mssql://u:p@[::1]:1500?encrypt=plaintext&trust_cert_ca=/ca.pem").unwrap();
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
