//! Reading a Prometheus text page (a node's `/metrics`) in tests and the benchmark.

use std::collections::BTreeMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` on `addr` (a node's small metrics endpoint): the status line and the body.
pub async fn http_get(addr: &str, path: &str) -> std::io::Result<(String, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    let (head, body) = out.split_once("\r\n\r\n").ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{addr} sent no HTTP response"),
        )
    })?;
    Ok((
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    ))
}

/// The page's sample lines, `name{labels}` → value (comments and blank lines skipped).
pub fn samples(page: &str) -> BTreeMap<String, f64> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// The values of the series `name` (the whole name, with or without labels) that carry every
/// one of `labels` (each `key="value"`).
pub fn series<'a>(
    samples: &'a BTreeMap<String, f64>,
    name: &'a str,
    labels: &'a [&'a str],
) -> impl Iterator<Item = f64> + 'a {
    samples
        .iter()
        .filter(move |(k, _)| {
            k.strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))
                && labels.iter().all(|l| k.contains(l))
        })
        .map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_skip_comments_and_keep_labels() {
        let page = "# HELP x a thing\n# TYPE x counter\nx{node=\"m\",op=\"INSERT\"} 3\n\ny 1.5\n";
        let s = samples(page);
        assert_eq!(s.get("x{node=\"m\",op=\"INSERT\"}"), Some(&3.0));
        assert_eq!(s.get("y"), Some(&1.5));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn series_match_the_whole_name_and_every_label() {
        let s = samples("x{a=\"1\"} 1\nx{a=\"2\"} 2\nx_count 5\nxy 7\n");
        assert_eq!(series(&s, "x", &[]).sum::<f64>(), 3.0);
        assert_eq!(series(&s, "x", &["a=\"2\""]).collect::<Vec<_>>(), [2.0]);
        assert_eq!(series(&s, "x_count", &[]).collect::<Vec<_>>(), [5.0]);
    }
}
