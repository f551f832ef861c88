//! Reading a Prometheus text page (a node's `/metrics`) in tests and the benchmark.

use std::collections::BTreeMap;

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
}
