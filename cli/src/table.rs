//! Plain-text tables for terminals, in the style of `psql`:
//!
//! ```text
//!  id | name  | active
//! ----+-------+--------
//!   1 | Alice | true
//!   2 | Bob   | null
//! ```
//!
//! Numeric columns are right-aligned; newlines and tabs inside cells are shown escaped so that
//! one row stays one line.

use serde_json::{Map, Value as Json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        let header: Vec<String> = header.into_iter().map(Into::into).collect();
        Table {
            align: vec![Align::Left; header.len()],
            header,
            rows: Vec::new(),
        }
    }

    pub fn align(mut self, column: usize, align: Align) -> Self {
        if let Some(a) = self.align.get_mut(column) {
            *a = align;
        }
        self
    }

    /// Adds a row; missing cells are left blank, extra ones dropped.
    pub fn push<S: Into<String>>(&mut self, row: impl IntoIterator<Item = S>) {
        let mut row: Vec<String> = row.into_iter().map(|c| escape(&c.into())).collect();
        row.resize(self.header.len(), String::new());
        self.rows.push(row);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, every line ending in `\n`; trailing spaces are trimmed.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| width(&r[i]))
                    .chain(std::iter::once(width(&self.header[i])))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let line = |cells: &[String], header: bool, out: &mut String| {
            let mut s = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    s.push('|');
                }
                let pad = widths[i] - width(cell);
                s.push(' ');
                if header || self.align[i] == Align::Left {
                    s.push_str(cell);
                    s.push_str(&" ".repeat(pad));
                } else {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(cell);
                }
                s.push(' ');
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(&self.header, true, &mut out);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
        out.push_str(&rule.join("+"));
        out.push('\n');
        for r in &self.rows {
            line(r, false, &mut out);
        }
        out
    }

    /// SEARCH rows as a table: the columns in the order the rows give them (the table's
    /// column order), numbers right-aligned, `null` spelled out.
    pub fn from_rows(rows: &[Map<String, Json>]) -> Table {
        let mut columns: Vec<String> = Vec::new();
        for row in rows {
            for k in row.keys() {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
        let mut t = Table::new(columns.clone());
        for (i, c) in columns.iter().enumerate() {
            let numeric = rows
                .iter()
                .filter_map(|r| r.get(c))
                .all(|v| v.is_number() || v.is_null());
            if numeric && rows.iter().any(|r| r.get(c).is_some_and(Json::is_number)) {
                t.align[i] = Align::Right;
            }
        }
        for row in rows {
            t.push(
                columns
                    .iter()
                    .map(|c| row.get(c).map(cell).unwrap_or_default()),
            );
        }
        t
    }
}

/// A JSON value as a cell: strings without quotes, everything else as JSON.
pub fn cell(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn escape(s: &str) -> String {
    if s.contains(['\n', '\r', '\t']) {
        s.replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\r', "\\r")
            .replace('\t', "\\t")
    } else {
        s.to_owned()
    }
}

/// Display width, counting characters (good for every script without combining marks).
fn width(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(v: Json) -> Vec<Map<String, Json>> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rows_render_like_psql() {
        let t = Table::from_rows(&rows(json!([
            {"id":1,"name":"Alice","active":true},
            {"id":20,"name":"Bob","active":null},
        ])));
        assert_eq!(
            t.render(),
            concat!(
                " id | name  | active\n",
                "----+-------+--------\n",
                "  1 | Alice | true\n",
                " 20 | Bob   | null\n",
            )
        );
    }

    #[test]
    fn columns_keep_the_rows_order_and_missing_cells_stay_blank() {
        let t = Table::from_rows(&rows(json!([
            {"z":"a","a":1.5},
            {"z":"b","m":"x"},
        ])));
        assert_eq!(
            t.render(),
            concat!(
                " z | a   | m\n",
                "---+-----+---\n",
                " a | 1.5 |\n",
                " b |     | x\n",
            )
        );
    }

    #[test]
    fn newlines_are_escaped_and_unicode_is_measured_in_characters() {
        let mut t = Table::new(["k", "v"]);
        t.push(["é", "two\nlines"]);
        t.push(["ab", "x"]);
        assert_eq!(
            t.render(),
            concat!(
                " k  | v\n",
                "----+------------\n",
                " é  | two\\nlines\n",
                " ab | x\n",
            )
        );
    }

    #[test]
    fn an_empty_result_is_just_the_header() {
        let t = Table::from_rows(&[]);
        assert!(t.is_empty());
        assert_eq!(t.render(), "\n\n");
        let t = Table::new(["a"]).align(0, Align::Right);
        assert_eq!(t.render(), " a\n---\n");
    }
}
