//! `--script FILE`: requests the GUI loads into its form and executes at startup, one after
//! the other, exactly as if typed (used by `scripts/gui-screenshot.sh` and for demos).
//!
//! One request per line, optionally preceded by `@TARGET` (`@writer`, the default, or a node
//! name such as `@slave1`). Blank lines and lines starting with `#` are skipped. The string
//! `"$seq"` anywhere in a request is replaced by the seq of the last successful write, for
//! read-your-writes (`"min_seq":"$seq"`). A step waits until its target is heard alive.

use ddb::client::Target;
use serde_json::Value as Json;

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub line: usize,
    pub target: Target,
    pub request: Json,
}

pub fn parse(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (target, json) = match line.strip_prefix('@') {
            Some(rest) => {
                let (name, json) = rest
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| format!("line {}: a request must follow the target", i + 1))?;
                let target = if name.eq_ignore_ascii_case("writer") {
                    Target::Writer
                } else {
                    Target::Node(name.to_owned())
                };
                (target, json.trim())
            }
            None => (Target::Writer, line),
        };
        let request: Json = serde_json::from_str(json)
            .map_err(|e| format!("line {}: not valid JSON: {e}", i + 1))?;
        steps.push(Step {
            line: i + 1,
            target,
            request,
        });
    }
    Ok(steps)
}

/// Replaces every `"$seq"` string with `seq`.
pub fn substitute(json: &Json, seq: u64) -> Json {
    match json {
        Json::String(s) if s == "$seq" => Json::from(seq),
        Json::Array(items) => Json::Array(items.iter().map(|v| substitute(v, seq)).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, seq)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_targets_comments_and_seq() {
        let steps = parse(
            "# seed workflow\n\n{\"op\":\"CREATE_DB\",\"db\":\"mydb\"}\n@slave1  {\"op\":\"SEARCH\",\"db\":\"mydb\",\"table\":\"users\",\"min_seq\":\"$seq\"}\n@Writer {\"op\":\"DROP_DB\",\"db\":\"mydb\"}\n",
        )
        .unwrap();
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[0].target, Target::Writer);
        assert_eq!(steps[0].line, 3);
        assert_eq!(steps[1].target, Target::Node("slave1".into()));
        assert_eq!(steps[2].target, Target::Writer);
        assert_eq!(substitute(&steps[1].request, 7)["min_seq"], json!(7));
        assert_eq!(substitute(&json!([["$seq"]]), 2), json!([[2]]));
        assert!(parse("@slave1").unwrap_err().contains("line 1"));
        assert!(parse("\n{nope").unwrap_err().contains("line 2"));
    }
}
