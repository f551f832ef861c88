//! The locked-down setup of `nats-secure.conf` (repository root), end to end: a test CA made
//! here (rcgen), a nats-server with TLS, users and permissions, and the real node binaries
//! connecting with `--nats-user/--nats-password/--nats-tls-ca`. Anonymous and unencrypted
//! clients are refused; the client user can send ops and read heartbeats, and nothing else:
//! it cannot write or read the log, create consumers, forge heartbeats, or touch the stream.

use async_nats::ConnectOptions;
use ddb::connect::NatsOptions;
use ddb::heartbeat::Mode;
use ddb_e2e::*;
use ddb_testsupport::NatsServer;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NODE_PASSWORD: &str = "node-pw-0f3c9a";
const CLIENT_PASSWORD: &str = "client-pw-77b1e2";

/// A CA, and a server certificate for 127.0.0.1 / localhost signed by it, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "ddb test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let server_key = KeyPair::generate().expect("server key");
        let mut server =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server params");
        server
            .distinguished_name
            .push(DnType::CommonName, "ddb test nats-server");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let issuer = Issuer::from_params(&ca, &ca_key);
        let server_cert = server
            .signed_by(&server_key, &issuer)
            .expect("server certificate");
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), server_cert.pem()).unwrap();
        std::fs::write(
            dir.path().join("server-key.pem"),
            server_key.serialize_pem(),
        )
        .unwrap();
        // Another CA, which signed nothing the server has.
        let other_key = KeyPair::generate().unwrap();
        let other = ca.self_signed(&other_key).unwrap();
        std::fs::write(dir.path().join("other-ca.pem"), other.pem()).unwrap();
        Pki { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
}

fn secure_conf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../nats-secure.conf")
        .canonicalize()
        .expect("nats-secure.conf at the repository root")
}

/// nats-server started with the repository's `nats-secure.conf` (listening on a random
/// loopback port with a temporary store: command-line flags win over the file).
fn secure_server(pki: &Pki) -> NatsServer {
    let conf = secure_conf();
    let cert = pki.path("server.pem");
    let key = pki.path("server-key.pem");
    NatsServer::start_with(
        &["-c", conf.to_str().unwrap()],
        &[
            ("DDB_TLS_CERT", cert.to_str().unwrap()),
            ("DDB_TLS_KEY", key.to_str().unwrap()),
            ("DDB_NODE_PASSWORD", NODE_PASSWORD),
            ("DDB_CLIENT_PASSWORD", CLIENT_PASSWORD),
        ],
    )
}

fn opts(server: &NatsServer, user: Option<(&str, &str)>, ca: Option<PathBuf>) -> NatsOptions {
    let mut o = NatsOptions::new(&[server.url()]);
    if let Some((u, p)) = user {
        o.user = Some(u.to_owned());
        o.password = Some(p.to_owned());
    }
    o.tls_ca = ca;
    o
}

/// One connection attempt, no retries: the error a refused client sees.
async fn connect_once(
    server: &NatsServer,
    user: Option<(&str, &str)>,
    ca: Option<PathBuf>,
) -> Result<async_nats::Client, String> {
    let mut o = ConnectOptions::new().connection_timeout(Duration::from_secs(3));
    if let Some((u, p)) = user {
        o = o.user_and_password(u.to_owned(), p.to_owned());
    }
    if let Some(ca) = ca {
        o = o.add_root_certificates(ca).require_tls(true);
    }
    within(20, "connect attempt", o.connect(server.url()))
        .await
        .map_err(|e| e.to_string())
}

/// A connection that records the server's errors (permission violations arrive that way).
async fn client_with_errors(
    server: &NatsServer,
    pki: &Pki,
    user: (&str, &str),
) -> (async_nats::Client, Arc<Mutex<Vec<String>>>) {
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = errors.clone();
    let client = within(
        20,
        "connect",
        ConnectOptions::new()
            .user_and_password(user.0.to_owned(), user.1.to_owned())
            .add_root_certificates(pki.path("ca.pem"))
            .require_tls(true)
            .event_callback(move |event| {
                let sink = sink.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        sink.lock().unwrap().push(e.to_string());
                    }
                }
            })
            .connect(server.url()),
    )
    .await
    .expect("connect");
    (client, errors)
}

async fn saw_error(errors: &Arc<Mutex<Vec<String>>>, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if errors.lock().unwrap().iter().any(|e| e.contains(needle)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn anonymous_unencrypted_and_wrong_credentials_are_refused() {
    let pki = Pki::new();
    let server = secure_server(&pki);
    let ca = || Some(pki.path("ca.pem"));
    let cases: Vec<(&str, Result<async_nats::Client, String>)> = vec![
        ("anonymous, TLS", connect_once(&server, None, ca()).await),
        (
            "wrong password",
            connect_once(&server, Some(("client", "guess")), ca()).await,
        ),
        (
            "unknown user",
            connect_once(&server, Some(("admin", CLIENT_PASSWORD)), ca()).await,
        ),
        (
            "node password for the client user",
            connect_once(&server, Some(("client", NODE_PASSWORD)), ca()).await,
        ),
        (
            "right password, server certificate not trusted (no CA given)",
            connect_once(&server, Some(("client", CLIENT_PASSWORD)), None).await,
        ),
        (
            "right password, a CA that did not sign the server's certificate",
            connect_once(
                &server,
                Some(("client", CLIENT_PASSWORD)),
                Some(pki.path("other-ca.pem")),
            )
            .await,
        ),
    ];
    for (what, result) in cases {
        match result {
            Ok(_) => panic!("{what}: connected"),
            Err(e) => eprintln!("[security] refused: {what}: {e}"),
        }
    }
    // A plaintext client speaking the protocol by hand is refused before it can say anything.
    let port = server.port();
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        out.extend_from_slice(&buf[..n]);
        let _ = s.write_all(b"CONNECT {\"verbose\":false}\r\nPUB ddb.log.x 2\r\nhi\r\nPING\r\n");
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.contains("\"tls_required\":true"), "{answer}");
    assert!(
        !answer.contains("PONG"),
        "a plaintext client got through: {answer}"
    );
    eprintln!("[security] refused: plaintext client (server INFO requires TLS; no PONG)");
    // The two real users get in.
    for user in [("client", CLIENT_PASSWORD), ("node", NODE_PASSWORD)] {
        connect_once(&server, Some(user), ca())
            .await
            .unwrap_or_else(|e| panic!("{} cannot connect: {e}", user.0));
    }
    eprintln!("[security] accepted: client and node users over TLS with the test CA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_run_with_tls_and_credentials_and_clients_cannot_touch_the_log() {
    let pki = Pki::new();
    let server = secure_server(&pki);
    let ca = pki.path("ca.pem");
    let mut client_opts = opts(&server, Some(("client", CLIENT_PASSWORD)), Some(ca.clone()));
    // As README.md (section Security) tells clients to connect.
    client_opts.urls = vec![format!("tls://127.0.0.1:{}", server.port())];
    let node_opts = opts(&server, Some(("node", NODE_PASSWORD)), Some(ca.clone()));
    let ca_arg = ca.to_str().unwrap().to_owned();
    // The test's own client is the `client` user: heartbeats reach it (wait_mode below).
    let mut c = Cluster::empty_with(
        server,
        Vec::new(),
        client_opts,
        &[
            "--nats-user",
            "node",
            "--nats-password",
            NODE_PASSWORD,
            "--nats-tls-ca",
            &ca_arg,
        ],
    )
    .await;
    c.start_node("master", true);
    c.start_node("slave1", false);
    c.wait_mode("master", Mode::Master).await;
    c.wait_mode("slave1", Mode::Replica).await;
    eprintln!("[security] master and slave1 connected over TLS as user node; the client user hears their heartbeats");

    // Ops through the intake and a node's subject work for the client user.
    create_table(&c, "sec").await;
    let acked = insert_many(&c, &writer(), "sec", 0, 200, 8).await;
    assert_eq!(acked.len(), 200);
    let seq = acked.values().filter_map(|r| r.seq).max().unwrap();
    let sums = c.assert_converged(&["master", "slave1"], "sec", seq).await;
    eprintln!("[security] client user: 200 INSERTs acknowledged through ddb.ops, read on slave1, checksums equal {sums}");

    // An operator's view of the log, as the node user.
    let admin = node_opts.connect().await.expect("node user");
    let mut admin_js = async_nats::jetstream::new(admin.clone());
    admin_js.set_timeout(Duration::from_secs(2));
    let last_seq = |js: async_nats::jetstream::Context| async move {
        within(10, "stream info", async {
            let mut s = js.get_stream("DDB_LOG").await.expect("stream");
            s.info().await.expect("info").state.last_sequence
        })
        .await
    };
    let log_before = last_seq(admin_js.clone()).await;

    let (cl, errors) = client_with_errors(&c.nats, &pki, ("client", CLIENT_PASSWORD)).await;
    // Everything a node sees in its inboxes (log deliveries, JetStream API replies) stays in
    // the nodes' account: a client listening on every inbox sees none of it.
    let mut inbox = within(10, "sub", cl.subscribe("_INBOX.>"))
        .await
        .expect("inbox sub");
    // Reading the log with a plain subscription: refused.
    let mut log_sub = within(10, "sub", cl.subscribe("ddb.log.>"))
        .await
        .expect("sub");
    within(10, "flush", cl.flush()).await.unwrap();
    assert!(
        saw_error(
            &errors,
            "Permissions Violation for Subscription to \"ddb.log.>\""
        )
        .await,
        "{:?}",
        errors.lock().unwrap()
    );
    // Writing the log: core publish, and a JetStream publish that waits for an ack.
    within(
        10,
        "pub",
        cl.publish(
            "ddb.log.sec",
            br#"{"writer":"evil","ops":[{"op":"DROP_DB","db":"sec"}]}"#
                .to_vec()
                .into(),
        ),
    )
    .await
    .unwrap();
    within(10, "flush", cl.flush()).await.unwrap();
    assert!(
        saw_error(
            &errors,
            "Permissions Violation for Publish to \"ddb.log.sec\""
        )
        .await
    );
    let mut cl_js = async_nats::jetstream::new(cl.clone());
    cl_js.set_timeout(Duration::from_secs(2));
    let r = within(30, "js publish", async {
        cl_js
            .publish(
                "ddb.log.sec",
                br#"{"writer":"evil","ops":[]}"#.to_vec().into(),
            )
            .await?
            .await
    })
    .await;
    assert!(r.is_err(), "a client appended to the log: {r:?}");
    eprintln!(
        "[security] client user: publish to ddb.log.sec refused ({})",
        r.unwrap_err()
    );
    // The JetStream API: stream info, consumer creation, message gets, delete, purge.
    let r = within(30, "get stream", cl_js.get_stream("DDB_LOG")).await;
    assert!(r.is_err(), "client read the stream");
    eprintln!(
        "[security] client user: stream info refused ({})",
        r.err().unwrap()
    );
    for (subject, body) in [
        (
            "$JS.API.CONSUMER.CREATE.DDB_LOG",
            r#"{"stream_name":"DDB_LOG","config":{"ack_policy":"none","deliver_policy":"all"}}"#,
        ),
        (
            "$JS.API.CONSUMER.DURABLE.CREATE.DDB_LOG.spy",
            r#"{"stream_name":"DDB_LOG","config":{"durable_name":"spy","ack_policy":"none"}}"#,
        ),
        ("$JS.API.STREAM.MSG.GET.DDB_LOG", r#"{"seq":1}"#),
        ("$JS.API.DIRECT.GET.DDB_LOG", r#"{"seq":1}"#),
        (
            "$JS.API.CONSUMER.MSG.NEXT.DDB_LOG.ddb_master",
            r#"{"batch":10}"#,
        ),
        ("$JS.API.STREAM.PURGE.DDB_LOG", "{}"),
        ("$JS.API.STREAM.DELETE.DDB_LOG", ""),
    ] {
        let r = within(
            30,
            subject,
            tokio::time::timeout(
                Duration::from_secs(1),
                cl.request(subject, body.as_bytes().to_vec().into()),
            ),
        )
        .await;
        match r {
            Ok(Ok(m)) => panic!(
                "{subject} answered the client: {:?}",
                String::from_utf8_lossy(&m.payload)
            ),
            Ok(Err(e)) => eprintln!("[security] client user: {subject} refused ({e})"),
            Err(_) => eprintln!("[security] client user: {subject} refused (no reply)"),
        }
        assert!(
            saw_error(
                &errors,
                &format!("Permissions Violation for Publish to \"{subject}\"")
            )
            .await,
            "{subject}: {:?}",
            errors.lock().unwrap()
        );
    }
    // Forged heartbeats (a fake live master would keep slaves from failing over): refused.
    within(
        10,
        "pub",
        cl.publish("ddb.hb.master", b"{}".to_vec().into()),
    )
    .await
    .unwrap();
    within(
        10,
        "pub",
        cl.publish("ddb.hb.slave1", b"{}".to_vec().into()),
    )
    .await
    .unwrap();
    within(10, "flush", cl.flush()).await.unwrap();
    assert!(
        saw_error(
            &errors,
            "Permissions Violation for Publish to \"ddb.hb.master\""
        )
        .await
    );
    // Other subjects nobody gave it.
    for subject in [
        "ddb.anything",
        "_INBOX.steal",
        "$SYS.REQ.SERVER.PING",
        "ddb.node.master.x",
    ] {
        within(10, "pub", cl.publish(subject, b"x".to_vec().into()))
            .await
            .unwrap();
        within(10, "flush", cl.flush()).await.unwrap();
        assert!(
            saw_error(
                &errors,
                &format!("Permissions Violation for Publish to \"{subject}\"")
            )
            .await,
            "{subject}"
        );
    }

    // Meanwhile writes flow, delivered to every node through its consumer.
    let more = insert_many(&c, &writer(), "sec", 1000, 50, 8).await;
    assert_eq!(more.len(), 50);
    let seq = more.values().filter_map(|r| r.seq).max().unwrap();
    let sums = c.assert_converged(&["master", "slave1"], "sec", seq).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut leaked = 0;
    let mut seen = 0;
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(100), inbox.next()).await {
        seen += 1;
        if String::from_utf8_lossy(&m.payload).contains("\"writer\"") {
            leaked += 1;
        }
    }
    assert_eq!(
        leaked, 0,
        "log entries reached a client's _INBOX.> subscription"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), log_sub.next())
            .await
            .ok()
            .flatten()
            .is_none(),
        "a client received log entries"
    );
    eprintln!("[security] client user: subscribed to _INBOX.> while 50 writes replicated: {seen} messages, none of them log entries; ddb.log.> delivered nothing");

    // Even a node cannot erase the log.
    let r = within(30, "delete stream", admin_js.delete_stream("DDB_LOG")).await;
    assert!(r.is_err(), "the node user deleted the stream");
    let r = within(30, "purge", async {
        admin_js
            .get_stream("DDB_LOG")
            .await
            .expect("stream")
            .purge()
            .await
    })
    .await;
    assert!(r.is_err(), "the node user purged the stream");
    eprintln!("[security] node user: stream delete and purge refused");

    // The log holds exactly what the nodes wrote, and both nodes agree.
    let log_after = last_seq(admin_js.clone()).await;
    assert_eq!(
        log_after, seq,
        "the log's last entry is the last acknowledged write"
    );
    assert!(log_after > log_before);
    assert_eq!(ids_on(&c, "slave1", "sec", seq).await.len(), 250);
    eprintln!("[security] log went from {log_before} to {log_after} through acknowledged writes only; checksums {sums}");
    for n in ["master", "slave1"] {
        assert!(c.is_running(n));
    }
}
