//! SQL Server names of ddb databases (the `physical` pattern) and of the node catalog, and
//! quoting for names that cannot be parameters.

use crate::error::DdbError;
use crate::name::Name;

/// Appended to the node name to name the node catalog database.
pub const CATALOG_SUFFIX: &str = "__ddbcatalog";
/// SQL Server's limit on identifiers, database names included.
const MAX_IDENTIFIER_CHARS: usize = 128;

pub(super) fn validate_pattern(pattern: &str) -> Result<(), DdbError> {
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
pub(super) struct Naming {
    prefix: String,
    suffix: String,
    pub(super) catalog: String,
}

impl Naming {
    pub(super) fn new(pattern: &str, node: &str) -> Result<Naming, DdbError> {
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

    pub(super) fn physical(&self, db: &Name) -> Result<String, DdbError> {
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
    pub(super) fn db_of(&self, physical: &str) -> Option<Name> {
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
pub(super) fn quote_ident(name: &str) -> String {
    format!("[{}]", name.replace(']', "]]"))
}

/// `N'text'`, for a database name inside a batch that cannot take parameters.
pub(super) fn nstring(text: &str) -> String {
    format!("N'{}'", text.replace('\'', "''"))
}
