//! What the CLI's integration tests share: running the real `ddb` binary.

use ddb_e2e::within;
use std::process::Stdio;

/// Runs the `ddb` binary; returns (exit code, stdout, stderr).
pub async fn ddb(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    ddb_env(args, stdin, &[]).await
}

pub async fn ddb_env(
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ddb"));
    cmd.args(args)
        .env_remove("DDB_NATS")
        .env_remove("DDB_PREFIX")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("start ddb");
    if let Some(text) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let out = within(60, &format!("ddb {args:?}"), child.wait_with_output())
        .await
        .expect("ddb ran");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
