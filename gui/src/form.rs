//! The operation form: which fields each op has, what the user typed, field validation and
//! the request JSON built from it. Everything here is plain data and functions, tested
//! without a window; `view` only lays the fields out.

use ddb::op::{parse_request_json, Limits};
use ddb::Name;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::fmt;

/// The ops the form can build (DESIGN "Wire format").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OpKind {
    #[default]
    CreateDb,
    CreateTable,
    Insert,
    Update,
    Delete,
    Search,
    DropDb,
    Checksum,
}

impl OpKind {
    pub const ALL: [OpKind; 8] = [
        OpKind::CreateDb,
        OpKind::CreateTable,
        OpKind::Insert,
        OpKind::Update,
        OpKind::Delete,
        OpKind::Search,
        OpKind::DropDb,
        OpKind::Checksum,
    ];

    /// The wire name (`"op"` field).
    pub fn name(self) -> &'static str {
        match self {
            OpKind::CreateDb => "CREATE_DB",
            OpKind::CreateTable => "CREATE_TABLE",
            OpKind::Insert => "INSERT",
            OpKind::Update => "UPDATE",
            OpKind::Delete => "DELETE",
            OpKind::Search => "SEARCH",
            OpKind::DropDb => "DROP_DB",
            OpKind::Checksum => "CHECKSUM",
        }
    }

    pub fn from_name(raw: &str) -> Option<OpKind> {
        OpKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(raw))
    }

    /// Writes go through the log; only a writer takes them.
    pub fn is_write(self) -> bool {
        !matches!(self, OpKind::Search | OpKind::Checksum)
    }

    /// One line on what the op does, shown under the picker.
    pub fn summary(self) -> &'static str {
        match self {
            OpKind::CreateDb => "Create a database.",
            OpKind::CreateTable => {
                "Create a table: columns with their types, and an optional primary key."
            }
            OpKind::Insert => "Insert one row (an object) or several (a list of objects).",
            OpKind::Update => "Set columns on every row matching the condition.",
            OpKind::Delete => "Delete every row matching the condition.",
            OpKind::Search => "Read rows from the node you target (its local copy).",
            OpKind::DropDb => "Drop a database and everything in it.",
            OpKind::Checksum => "Per-table checksums and row counts, to compare nodes.",
        }
    }

    /// The fields this op shows, in order.
    pub fn fields(self) -> &'static [Field] {
        use Field::*;
        match self {
            OpKind::CreateDb | OpKind::DropDb => &[Db, OpId],
            OpKind::CreateTable => &[Db, Table, Columns, PrimaryKey, OpId],
            OpKind::Insert => &[Db, Table, Data, OpId],
            OpKind::Update => &[Db, Table, Data, Condition, OpId],
            OpKind::Delete => &[Db, Table, Condition, OpId],
            OpKind::Search => &[Db, Table, Condition, SearchColumns, OrderBy, Limit, MinSeq],
            OpKind::Checksum => &[Db, Table, MinSeq],
        }
    }

    /// Whether `field` must be filled in for this op.
    pub fn requires(self, field: Field) -> bool {
        match field {
            Field::Db => true,
            Field::Table => self != OpKind::Checksum,
            Field::Columns => self == OpKind::CreateTable,
            Field::Data => matches!(self, OpKind::Insert | OpKind::Update),
            Field::Condition => matches!(self, OpKind::Update | OpKind::Delete),
            Field::PrimaryKey
            | Field::SearchColumns
            | Field::OrderBy
            | Field::Limit
            | Field::MinSeq
            | Field::OpId => false,
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One input of the form. The same value is kept across ops, so that db and table (and
/// everything else) are remembered when the op changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Db,
    Table,
    /// CREATE_TABLE's column spec (`data` on the wire), as JSON text.
    Columns,
    PrimaryKey,
    Data,
    Condition,
    SearchColumns,
    OrderBy,
    Limit,
    MinSeq,
    OpId,
}

impl Field {
    pub const ALL: [Field; 11] = [
        Field::Db,
        Field::Table,
        Field::Columns,
        Field::PrimaryKey,
        Field::Data,
        Field::Condition,
        Field::SearchColumns,
        Field::OrderBy,
        Field::Limit,
        Field::MinSeq,
        Field::OpId,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Field::Db => "Database",
            Field::Table => "Table",
            Field::Columns => "Columns",
            Field::PrimaryKey => "Primary key",
            Field::Data => "Data",
            Field::Condition => "Condition",
            Field::SearchColumns => "Return columns",
            Field::OrderBy => "Order by",
            Field::Limit => "Limit",
            Field::MinSeq => "Min seq",
            Field::OpId => "Op id",
        }
    }

    /// Shown inside the empty input.
    pub fn placeholder(self) -> &'static str {
        match self {
            Field::Db => "mydb",
            Field::Table => "users",
            Field::Columns => r#"{"id":"int","name":"string"}"#,
            Field::PrimaryKey => "id   (or: id, name)",
            Field::Data => r#"{"id":1,"name":"Alice"}"#,
            Field::Condition => r#"{"id":1}"#,
            Field::SearchColumns => "id, name   (empty: every column)",
            Field::OrderBy => "-age, name   (- for descending)",
            Field::Limit => "10",
            Field::MinSeq => "42   (wait until the node applied seq 42)",
            Field::OpId => "optional idempotency key, e.g. add-alice-1",
        }
    }

    /// The placeholder for this op: says what an empty field means where that differs.
    pub fn placeholder_for(self, op: OpKind) -> &'static str {
        match (self, op) {
            (Field::Table, OpKind::Checksum) => "users   (empty: every table)",
            (Field::Condition, OpKind::Search) => r#"{"id":1}   (empty: every row)"#,
            (Field::Condition, _) => r#"{"id":1}   ({} for every row)"#,
            _ => self.placeholder(),
        }
    }

    /// The tooltip: what goes in, with an example.
    pub fn help(self) -> &'static str {
        match self {
            Field::Db => "Database name: letters, digits and _, not starting with a digit.\nExample: mydb",
            Field::Table => "Table name, same rules as database names.\nExample: users\n(CHECKSUM: leave empty for every table)",
            Field::Columns => "Column name → type (int, float, string, bool), in order.\nExample: {\"id\":\"int\",\"name\":\"string\"}\nNOT NULL: {\"email\":{\"type\":\"string\",\"not_null\":true}}",
            Field::PrimaryKey => "Optional primary key: a column name or several, comma-separated.\nExample: id",
            Field::Data => "INSERT: a row object or a list of them; UPDATE: the columns to set.\nExample: {\"id\":1,\"name\":\"Alice\"}\nMany rows: [{\"id\":2,\"name\":\"Bob\"},{\"id\":3,\"name\":\"Eve\"}]",
            Field::Condition => "Which rows: equality on every key, or operators\n$eq $ne $gt $gte $lt $lte $in $like $null.\nExample: {\"id\":1}  or  {\"age\":{\"$gt\":30}}\n{} is every row (UPDATE and DELETE need it written out).",
            Field::SearchColumns => "Columns to return, in this order; empty returns every column.\nExample: id, name",
            Field::OrderBy => "Sort by these columns; prefix - for descending.\nExample: -age, name",
            Field::Limit => "Return at most this many rows.\nExample: 10",
            Field::MinSeq => "Read-your-writes: the node waits until it has applied the log up to this seq.\nExample: 42 (the seq a write replied with)",
            Field::OpId => "Idempotency key for a write: sending it again is acknowledged, not applied twice.\nExample: add-alice-1",
        }
    }

    /// Whether the field holds JSON (and is shown with a monospace font).
    pub fn is_json(self) -> bool {
        matches!(self, Field::Columns | Field::Data | Field::Condition)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Column types of CREATE_TABLE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ColType {
    #[default]
    Int,
    Float,
    String,
    Bool,
}

impl ColType {
    pub const ALL: [ColType; 4] = [ColType::Int, ColType::Float, ColType::String, ColType::Bool];

    pub fn as_str(self) -> &'static str {
        match self {
            ColType::Int => "int",
            ColType::Float => "float",
            ColType::String => "string",
            ColType::Bool => "bool",
        }
    }

    pub fn parse(raw: &str) -> Option<ColType> {
        ColType::ALL.into_iter().find(|t| t.as_str() == raw)
    }
}

impl fmt::Display for ColType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the CREATE_TABLE columns editor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRow {
    pub name: String,
    pub ty: ColType,
    pub primary_key: bool,
    pub not_null: bool,
}

impl ColumnRow {
    pub fn new(name: &str, ty: ColType) -> Self {
        ColumnRow {
            name: name.to_owned(),
            ty,
            primary_key: false,
            not_null: false,
        }
    }
}

/// How CREATE_TABLE's columns are entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColumnsMode {
    /// One row per column: name, type, key, not null.
    #[default]
    Editor,
    /// The wire JSON, typed by hand.
    Json,
}

/// Everything the user typed. Cloned into the history, so that an entry reloads exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub op: OpKind,
    values: BTreeMap<Field, String>,
    pub columns: Vec<ColumnRow>,
    pub columns_mode: ColumnsMode,
    /// Per-field validation errors, shown beside the field.
    pub errors: BTreeMap<Field, String>,
}

impl Default for Form {
    fn default() -> Self {
        let mut id = ColumnRow::new("id", ColType::Int);
        id.primary_key = true;
        Form {
            op: OpKind::default(),
            values: BTreeMap::new(),
            columns: vec![id, ColumnRow::new("name", ColType::String)],
            columns_mode: ColumnsMode::Editor,
            errors: BTreeMap::new(),
        }
    }
}

/// What the form can be told to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    OpSelected(OpKind),
    Edited(Field, String),
    ColumnName(usize, String),
    ColumnType(usize, ColType),
    ColumnKey(usize, bool),
    ColumnNotNull(usize, bool),
    AddColumn,
    RemoveColumn(usize),
    ColumnsMode(ColumnsMode),
}

impl Form {
    pub fn value(&self, field: Field) -> &str {
        self.values.get(&field).map_or("", String::as_str)
    }

    pub fn set(&mut self, field: Field, value: impl Into<String>) {
        let value = value.into();
        if value.is_empty() {
            self.values.remove(&field);
        } else {
            self.values.insert(field, value);
        }
    }

    pub fn error(&self, field: Field) -> Option<&str> {
        self.errors.get(&field).map(String::as_str)
    }

    /// The fields visible for the current op; CREATE_TABLE's primary key is part of the
    /// columns editor unless the columns are typed as JSON.
    pub fn visible_fields(&self) -> Vec<Field> {
        self.op
            .fields()
            .iter()
            .copied()
            .filter(|f| *f != Field::PrimaryKey || self.columns_mode == ColumnsMode::Json)
            .collect()
    }

    pub fn update(&mut self, message: Message) {
        match message {
            Message::OpSelected(op) => {
                self.op = op;
                // Errors of fields the new op does not show would be confusing; the shown
                // ones are re-checked against the new op's rules.
                self.revalidate();
            }
            Message::Edited(field, value) => {
                self.set(field, value);
                self.check(field);
            }
            Message::ColumnName(i, name) => {
                if let Some(c) = self.columns.get_mut(i) {
                    c.name = name;
                }
                self.check(Field::Columns);
            }
            Message::ColumnType(i, ty) => {
                if let Some(c) = self.columns.get_mut(i) {
                    c.ty = ty;
                }
            }
            Message::ColumnKey(i, on) => {
                if let Some(c) = self.columns.get_mut(i) {
                    c.primary_key = on;
                }
            }
            Message::ColumnNotNull(i, on) => {
                if let Some(c) = self.columns.get_mut(i) {
                    c.not_null = on;
                }
            }
            Message::AddColumn => self.columns.push(ColumnRow::new("", ColType::String)),
            Message::RemoveColumn(i) => {
                if i < self.columns.len() {
                    self.columns.remove(i);
                }
                self.check(Field::Columns);
            }
            Message::ColumnsMode(mode) => self.switch_columns_mode(mode),
        }
    }

    fn switch_columns_mode(&mut self, mode: ColumnsMode) {
        if mode == self.columns_mode {
            return;
        }
        match mode {
            ColumnsMode::Json => {
                let (data, pk) = columns_to_json(&self.columns);
                self.set(Field::Columns, data.to_string());
                self.set(Field::PrimaryKey, pk.join(", "));
                self.columns_mode = ColumnsMode::Json;
                self.errors.remove(&Field::Columns);
            }
            ColumnsMode::Editor => {
                let pk = match parse_name_list(self.value(Field::PrimaryKey), "primary key column")
                {
                    Ok(pk) => pk.unwrap_or_default(),
                    Err(e) => {
                        self.errors.insert(Field::PrimaryKey, e);
                        return;
                    }
                };
                match columns_from_json(self.value(Field::Columns), &pk) {
                    Ok(rows) => {
                        self.columns = rows;
                        self.columns_mode = ColumnsMode::Editor;
                        self.errors.remove(&Field::Columns);
                        self.errors.remove(&Field::PrimaryKey);
                    }
                    Err(e) => {
                        self.errors.insert(
                            Field::Columns,
                            format!("fix the JSON before switching to the editor: {e}"),
                        );
                    }
                }
            }
        }
    }

    /// Validates one field against the current op and records (or clears) its error.
    pub fn check(&mut self, field: Field) {
        match self.field_json(field) {
            Ok(_) => {
                self.errors.remove(&field);
            }
            Err(e) => {
                self.errors.insert(field, e);
            }
        }
    }

    /// Re-checks every visible field that has something in it; empty fields are only
    /// reported on Execute.
    pub fn revalidate(&mut self) {
        self.errors.clear();
        for field in self.visible_fields() {
            let filled = if field == Field::Columns && self.columns_mode == ColumnsMode::Editor {
                true
            } else {
                !self.value(field).trim().is_empty()
            };
            if filled {
                self.check(field);
            }
        }
    }

    /// The wire value of one field for the current op: `Ok(None)` when it is left out.
    pub fn field_json(&self, field: Field) -> Result<Option<Json>, String> {
        let op = self.op;
        let raw = self.value(field).trim();
        if field == Field::Columns && self.columns_mode == ColumnsMode::Editor {
            return columns_editor_json(&self.columns).map(Some);
        }
        if raw.is_empty() {
            if op.requires(field) {
                return Err(match field {
                    Field::Condition => {
                        format!("{op} needs a condition; write {{}} to affect every row")
                    }
                    _ => format!("{} is required for {op}", field.label()),
                });
            }
            return Ok(None);
        }
        match field {
            Field::Db => Name::parse_db(raw)
                .map(|n| Some(Json::String(n.to_string())))
                .map_err(|e| e.message),
            Field::Table => Name::parse(raw, "table")
                .map(|n| Some(Json::String(n.to_string())))
                .map_err(|e| e.message),
            Field::Columns => {
                let json = parse_json(raw)?;
                match &json {
                    Json::Object(m) if m.is_empty() => {
                        Err("a table needs at least one column".into())
                    }
                    Json::Object(_) => {
                        columns_from_json(raw, &[])?;
                        Ok(Some(json))
                    }
                    other => Err(format!(
                        "expected an object of column name to type, got {}",
                        kind(other)
                    )),
                }
            }
            Field::PrimaryKey => {
                parse_name_list(raw, "primary key column").map(|l| l.map(names_json))
            }
            Field::Data => {
                let json = parse_json(raw)?;
                match (&json, op) {
                    (Json::Object(m), _) if m.is_empty() => Err("data sets no column".into()),
                    (Json::Object(_), _) => Ok(Some(json)),
                    (Json::Array(items), OpKind::Insert) => {
                        if items.is_empty() {
                            return Err("the list of rows is empty".into());
                        }
                        match items.iter().position(|i| !i.is_object()) {
                            Some(i) => Err(format!("row {i} is not an object")),
                            None => Ok(Some(json)),
                        }
                    }
                    (other, OpKind::Insert) => Err(format!(
                        "expected a row object or a list of them, got {}",
                        kind(other)
                    )),
                    (other, _) => Err(format!(
                        "expected an object of column to new value, got {}",
                        kind(other)
                    )),
                }
            }
            Field::Condition => {
                let json = parse_json(raw)?;
                match json {
                    Json::Object(_) => Ok(Some(json)),
                    other => Err(format!(
                        "expected an object such as {{\"id\":1}}, got {}",
                        kind(&other)
                    )),
                }
            }
            Field::SearchColumns => parse_name_list(raw, "column")
                .map(|l| l.map(|names| Json::Array(names.into_iter().map(Json::String).collect()))),
            Field::OrderBy => parse_order_by(raw).map(Some),
            Field::Limit | Field::MinSeq => raw
                .parse::<u64>()
                .map(|n| Some(Json::from(n)))
                .map_err(|_| "expected a non-negative whole number".to_owned()),
            Field::OpId => {
                if raw.len() > 128 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
                    Err("1 to 128 printable ASCII characters, no spaces".into())
                } else {
                    Ok(Some(Json::String(raw.to_owned())))
                }
            }
        }
    }

    /// Builds the request JSON for the current op, or records why not: per-field errors go
    /// beside their field, and a request the node's own parser refuses is reported whole.
    pub fn build_request(&mut self) -> Result<Json, BuildError> {
        let mut map = Map::new();
        map.insert("op".into(), Json::String(self.op.name().into()));
        self.errors.clear();
        let fields = self.op.fields();
        for &field in fields {
            let value = if field == Field::PrimaryKey && self.columns_mode == ColumnsMode::Editor {
                let (_, pk) = columns_to_json(&self.columns);
                Ok((!pk.is_empty()).then(|| names_json(pk)))
            } else {
                self.field_json(field)
            };
            match value {
                Ok(Some(v)) => {
                    map.insert(wire_key(field).into(), v);
                }
                Ok(None) => {}
                Err(e) => {
                    self.errors.insert(field, e);
                }
            }
        }
        if !self.errors.is_empty() {
            return Err(BuildError::Fields(self.errors.clone()));
        }
        let json = Json::Object(map);
        parse_request_json(json.clone(), &Limits::default())
            .map_err(|e| BuildError::Request(format!("{}: {}", e.code, e.message)))?;
        Ok(json)
    }

    /// The request as it would be sent now, for the preview; `None` while a field is wrong.
    pub fn preview(&self) -> Option<Json> {
        self.clone().build_request().ok()
    }

    /// Fills a form from a request JSON (the wire format), e.g. a line of a `--script`
    /// file. Fields the form does not know are refused.
    pub fn from_request(json: &Json) -> Result<Form, String> {
        let Json::Object(map) = json else {
            return Err("a request must be a JSON object".into());
        };
        let op = map
            .get("op")
            .and_then(Json::as_str)
            .and_then(OpKind::from_name)
            .ok_or("missing or unknown \"op\"")?;
        let mut form = Form {
            op,
            ..Form::default()
        };
        for (key, value) in map {
            let field = match key.as_str() {
                "op" => continue,
                "data" if op == OpKind::CreateTable => Field::Columns,
                "data" => Field::Data,
                other => Field::ALL
                    .into_iter()
                    .find(|f| wire_key(*f) == other)
                    .ok_or_else(|| format!("unknown field {other:?}"))?,
            };
            let text = match (field, value) {
                (Field::PrimaryKey | Field::SearchColumns | Field::OrderBy, Json::Array(items)) => {
                    items
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                }
                (_, Json::String(s)) if !field.is_json() => s.clone(),
                (_, v) => v.to_string(),
            };
            form.set(field, text);
        }
        if op == OpKind::CreateTable {
            form.columns_mode = ColumnsMode::Json;
            let pk = parse_name_list(form.value(Field::PrimaryKey), "primary key column")
                .ok()
                .flatten()
                .unwrap_or_default();
            if let Ok(rows) = columns_from_json(form.value(Field::Columns), &pk) {
                form.columns = rows;
                form.columns_mode = ColumnsMode::Editor;
            }
        }
        form.revalidate();
        Ok(form)
    }

    /// A short description for the history: `INSERT mydb.users`.
    pub fn title(&self) -> String {
        let db = self.value(Field::Db).trim();
        let table = self.value(Field::Table).trim();
        match (
            db.is_empty(),
            table.is_empty() || !self.op.fields().contains(&Field::Table),
        ) {
            (true, _) => self.op.name().to_owned(),
            (false, true) => format!("{} {db}", self.op.name()),
            (false, false) => format!("{} {db}.{table}", self.op.name()),
        }
    }
}

/// Why the form could not build a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// Errors beside these fields.
    Fields(BTreeMap<Field, String>),
    /// The whole request, as the node's parser sees it.
    Request(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Fields(errors) => {
                let list: Vec<String> = errors
                    .iter()
                    .map(|(field, e)| format!("{}: {e}", field.label()))
                    .collect();
                write!(f, "fix the highlighted fields ({})", list.join("; "))
            }
            BuildError::Request(e) => f.write_str(e),
        }
    }
}

/// The JSON key a field is sent under.
pub fn wire_key(field: Field) -> &'static str {
    match field {
        Field::Db => "db",
        Field::Table => "table",
        Field::Columns | Field::Data => "data",
        Field::PrimaryKey => "primary_key",
        Field::Condition => "condition",
        Field::SearchColumns => "columns",
        Field::OrderBy => "order_by",
        Field::Limit => "limit",
        Field::MinSeq => "min_seq",
        Field::OpId => "op_id",
    }
}

/// Parses JSON text with an error a person can act on.
pub fn parse_json(raw: &str) -> Result<Json, String> {
    serde_json::from_str(raw).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Eof => "incomplete JSON",
            _ => "invalid JSON",
        };
        let full = e.to_string();
        let detail = full.split(" at line ").next().unwrap_or_default();
        format!("{what}: {detail} (column {})", e.column())
    })
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

fn names_json(names: Vec<String>) -> Json {
    if names.len() == 1 {
        Json::String(names.into_iter().next().unwrap_or_default())
    } else {
        Json::Array(names.into_iter().map(Json::String).collect())
    }
}

/// `id, name` or `["id","name"]` → checked names; empty → `None`.
pub fn parse_name_list(raw: &str, what: &str) -> Result<Option<Vec<String>>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let items: Vec<String> = if raw.starts_with('[') || raw.starts_with('"') {
        match parse_json(raw)? {
            Json::String(s) => vec![s],
            Json::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Json::String(s) => Ok(s),
                    other => Err(format!("expected names, got {}", kind(&other))),
                })
                .collect::<Result<_, _>>()?,
            other => return Err(format!("expected a list of names, got {}", kind(&other))),
        }
    } else {
        raw.split(',').map(|s| s.trim().to_owned()).collect()
    };
    for name in &items {
        Name::parse(name, what).map_err(|e| e.message)?;
    }
    Ok(Some(items))
}

/// `-age, name` → `["-age","name"]` (one name stays a string).
pub fn parse_order_by(raw: &str) -> Result<Json, String> {
    let raw = raw.trim();
    let items: Vec<String> = if raw.starts_with('[') || raw.starts_with('"') {
        match parse_json(raw)? {
            Json::String(s) => vec![s],
            Json::Array(items) => items
                .into_iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or("expected column names"))
                .collect::<Result<_, _>>()?,
            other => return Err(format!("expected column names, got {}", kind(&other))),
        }
    } else {
        raw.split(',').map(|s| s.trim().to_owned()).collect()
    };
    for item in &items {
        let name = item.strip_prefix('-').unwrap_or(item);
        Name::parse(name, "column").map_err(|e| e.message)?;
    }
    Ok(names_json(items))
}

/// The editor's rows as CREATE_TABLE `data` and `primary_key`, without checks.
pub fn columns_to_json(rows: &[ColumnRow]) -> (Json, Vec<String>) {
    let mut data = Map::new();
    let mut pk = Vec::new();
    for row in rows {
        let name = row.name.trim();
        if name.is_empty() {
            continue;
        }
        let spec = if row.not_null {
            serde_json::json!({"type": row.ty.as_str(), "not_null": true})
        } else {
            Json::String(row.ty.as_str().into())
        };
        data.insert(name.to_owned(), spec);
        if row.primary_key {
            pk.push(name.to_owned());
        }
    }
    (Json::Object(data), pk)
}

/// Checks the editor's rows and returns CREATE_TABLE's `data`.
pub fn columns_editor_json(rows: &[ColumnRow]) -> Result<Json, String> {
    let mut seen: Vec<String> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let name = row.name.trim();
        if name.is_empty() {
            return Err(format!("column {} has no name", i + 1));
        }
        Name::parse(name, "column").map_err(|e| e.message)?;
        if seen.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            return Err(format!("column {name} is declared twice"));
        }
        seen.push(name.to_owned());
    }
    if seen.is_empty() {
        return Err("a table needs at least one column".into());
    }
    Ok(columns_to_json(rows).0)
}

/// CREATE_TABLE JSON (`{"id":"int",...}`) → editor rows.
pub fn columns_from_json(raw: &str, primary_key: &[String]) -> Result<Vec<ColumnRow>, String> {
    let Json::Object(map) = parse_json(raw)? else {
        return Err("expected an object of column name to type".into());
    };
    map.iter()
        .map(|(name, spec)| {
            Name::parse(name, "column").map_err(|e| e.message)?;
            let (ty, not_null) = match spec {
                Json::String(t) => (t.as_str(), false),
                Json::Object(o) => (
                    o.get("type").and_then(Json::as_str).unwrap_or_default(),
                    o.get("not_null").and_then(Json::as_bool).unwrap_or(false),
                ),
                _ => ("", false),
            };
            let ty = ColType::parse(ty).ok_or_else(|| {
                format!("column {name}: the type must be int, float, string or bool")
            })?;
            Ok(ColumnRow {
                name: name.clone(),
                ty,
                primary_key: primary_key.iter().any(|k| k == name),
                not_null,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form(op: OpKind, fields: &[(Field, &str)]) -> Form {
        let mut f = Form::default();
        f.update(Message::OpSelected(op));
        for (field, v) in fields {
            f.update(Message::Edited(*field, (*v).to_owned()));
        }
        f
    }

    #[test]
    fn seed_workflow_builds_the_seed_requests() {
        let mut f = form(OpKind::CreateDb, &[(Field::Db, "mydb")]);
        assert_eq!(
            f.build_request().unwrap(),
            json!({"op":"CREATE_DB","db":"mydb"})
        );

        f.update(Message::OpSelected(OpKind::CreateTable));
        f.update(Message::Edited(Field::Table, "users".into()));
        assert_eq!(
            f.build_request().unwrap(),
            json!({"op":"CREATE_TABLE","db":"mydb","table":"users","data":{"id":"int","name":"string"},"primary_key":"id"})
        );

        f.update(Message::OpSelected(OpKind::Insert));
        f.update(Message::Edited(
            Field::Data,
            r#"{"id":1,"name":"Alice"}"#.into(),
        ));
        assert_eq!(
            f.build_request().unwrap(),
            json!({"op":"INSERT","db":"mydb","table":"users","data":{"id":1,"name":"Alice"}})
        );

        f.update(Message::OpSelected(OpKind::Search));
        f.update(Message::Edited(Field::Condition, r#"{"id":1}"#.into()));
        assert_eq!(
            f.build_request().unwrap(),
            json!({"op":"SEARCH","db":"mydb","table":"users","condition":{"id":1}})
        );
    }

    #[test]
    fn every_op_lists_db_first_and_only_its_own_fields() {
        for op in OpKind::ALL {
            assert_eq!(op.fields()[0], Field::Db, "{op}");
            assert_eq!(OpKind::from_name(op.name()), Some(op));
            assert_eq!(OpKind::from_name(&op.name().to_lowercase()), Some(op));
        }
        assert!(!OpKind::Search.fields().contains(&Field::Data));
        assert!(OpKind::Search.fields().contains(&Field::MinSeq));
        assert!(!OpKind::Insert.fields().contains(&Field::MinSeq));
        assert!(OpKind::Update.fields().contains(&Field::Condition));
        assert!(!OpKind::CreateDb.fields().contains(&Field::Table));
        assert!(
            OpKind::Insert.is_write() && !OpKind::Search.is_write() && !OpKind::Checksum.is_write()
        );
    }

    #[test]
    fn every_field_has_a_tooltip_with_an_example() {
        for field in Field::ALL {
            assert!(field.help().contains("Example"), "{field:?}");
            assert!(!field.placeholder().is_empty());
        }
    }

    #[test]
    fn invalid_json_is_reported_beside_its_field() {
        let mut f = form(
            OpKind::Insert,
            &[(Field::Db, "mydb"), (Field::Table, "users")],
        );
        f.update(Message::Edited(
            Field::Data,
            r#"{"id":1,"name":"Alice""#.into(),
        ));
        let err = f.error(Field::Data).expect("error beside data");
        assert!(err.contains("JSON"), "{err}");
        assert!(
            matches!(f.build_request(), Err(BuildError::Fields(e)) if e.contains_key(&Field::Data))
        );
        f.update(Message::Edited(Field::Data, r#"{"id":1}"#.into()));
        assert_eq!(f.error(Field::Data), None);
    }

    #[test]
    fn wrong_shapes_are_reported() {
        let mut f = form(
            OpKind::Update,
            &[(Field::Db, "mydb"), (Field::Table, "users")],
        );
        f.update(Message::Edited(Field::Data, "[1]".into()));
        assert!(f.error(Field::Data).unwrap().contains("object"));
        f.update(Message::Edited(Field::Condition, "3".into()));
        assert!(f.error(Field::Condition).unwrap().contains("object"));
        f.update(Message::OpSelected(OpKind::Insert));
        f.update(Message::Edited(Field::Data, "[{\"id\":1}, 2]".into()));
        assert_eq!(f.error(Field::Data), Some("row 1 is not an object"));
        f.update(Message::Edited(Field::Data, "[]".into()));
        assert!(f.error(Field::Data).is_some());
        f.update(Message::Edited(
            Field::Data,
            "[{\"id\":2},{\"id\":3}]".into(),
        ));
        assert_eq!(f.error(Field::Data), None);
    }

    #[test]
    fn bad_names_and_numbers_are_reported() {
        let mut f = form(
            OpKind::Search,
            &[(Field::Db, "1db"), (Field::Table, "users")],
        );
        assert!(f
            .error(Field::Db)
            .unwrap()
            .contains("invalid database name"));
        f.update(Message::Edited(Field::Limit, "-3".into()));
        assert!(f.error(Field::Limit).is_some());
        f.update(Message::Edited(Field::OrderBy, "-age, na me".into()));
        assert!(f.error(Field::OrderBy).is_some());
        f.update(Message::Edited(Field::OpId, "has space".into()));
        // Op id is not a SEARCH field, but the value is still checked when edited.
        assert!(f.error(Field::OpId).is_some());
    }

    #[test]
    fn missing_required_fields_are_reported_on_build() {
        let mut f = form(
            OpKind::Delete,
            &[(Field::Db, "mydb"), (Field::Table, "users")],
        );
        match f.build_request() {
            Err(BuildError::Fields(e)) => assert!(e[&Field::Condition].contains("{}")),
            other => panic!("{other:?}"),
        }
        f.update(Message::Edited(Field::Condition, "{}".into()));
        assert_eq!(
            f.build_request().unwrap(),
            json!({"op":"DELETE","db":"mydb","table":"users","condition":{}})
        );
        let mut empty = Form::default();
        assert!(
            matches!(empty.build_request(), Err(BuildError::Fields(e)) if e.contains_key(&Field::Db))
        );
    }

    #[test]
    fn search_extras_are_sent_in_wire_form() {
        let mut f = form(
            OpKind::Search,
            &[
                (Field::Db, "mydb"),
                (Field::Table, "users"),
                (Field::SearchColumns, "id, name"),
                (Field::OrderBy, "-id"),
                (Field::Limit, "5"),
                (Field::MinSeq, "7"),
            ],
        );
        assert_eq!(
            f.build_request().unwrap(),
            json!({"op":"SEARCH","db":"mydb","table":"users","columns":["id","name"],"order_by":"-id","limit":5,"min_seq":7})
        );
        f.update(Message::Edited(Field::SearchColumns, r#"["id"]"#.into()));
        f.update(Message::Edited(Field::OrderBy, "name, -id".into()));
        let r = f.build_request().unwrap();
        assert_eq!(r["columns"], json!(["id"]));
        assert_eq!(r["order_by"], json!(["name", "-id"]));
    }

    #[test]
    fn checksum_table_is_optional() {
        let mut f = form(OpKind::Checksum, &[(Field::Db, "mydb")]);
        assert_eq!(
            f.build_request().unwrap(),
            json!({"op":"CHECKSUM","db":"mydb"})
        );
        f.update(Message::Edited(Field::Table, "users".into()));
        assert_eq!(
            f.build_request().unwrap(),
            json!({"op":"CHECKSUM","db":"mydb","table":"users"})
        );
    }

    #[test]
    fn op_id_goes_with_writes_only() {
        let mut f = form(
            OpKind::Insert,
            &[
                (Field::Db, "mydb"),
                (Field::Table, "t"),
                (Field::Data, "{\"id\":1}"),
                (Field::OpId, "k1"),
            ],
        );
        assert_eq!(f.build_request().unwrap()["op_id"], json!("k1"));
        f.update(Message::OpSelected(OpKind::Search));
        assert!(f.build_request().unwrap().get("op_id").is_none());
    }

    #[test]
    fn columns_editor_builds_types_keys_and_not_null() {
        let mut f = form(
            OpKind::CreateTable,
            &[(Field::Db, "mydb"), (Field::Table, "people")],
        );
        f.update(Message::AddColumn);
        f.update(Message::ColumnName(2, "age".into()));
        f.update(Message::ColumnType(2, ColType::Float));
        f.update(Message::ColumnNotNull(2, true));
        f.update(Message::ColumnKey(0, false));
        f.update(Message::ColumnKey(1, true));
        assert_eq!(
            f.build_request().unwrap(),
            json!({"op":"CREATE_TABLE","db":"mydb","table":"people","data":{"id":"int","name":"string","age":{"type":"float","not_null":true}},"primary_key":"name"})
        );
        f.update(Message::RemoveColumn(2));
        f.update(Message::RemoveColumn(9));
        f.update(Message::ColumnKey(0, true));
        assert_eq!(
            f.build_request().unwrap()["primary_key"],
            json!(["id", "name"])
        );
        f.update(Message::ColumnName(1, "ID".into()));
        assert!(f.error(Field::Columns).unwrap().contains("twice"));
        f.update(Message::ColumnName(1, "".into()));
        assert!(f.error(Field::Columns).unwrap().contains("no name"));
    }

    #[test]
    fn columns_switch_between_editor_and_json() {
        let mut f = form(
            OpKind::CreateTable,
            &[(Field::Db, "mydb"), (Field::Table, "users")],
        );
        assert!(!f.visible_fields().contains(&Field::PrimaryKey));
        f.update(Message::ColumnsMode(ColumnsMode::Json));
        assert_eq!(f.columns_mode, ColumnsMode::Json);
        assert_eq!(f.value(Field::Columns), r#"{"id":"int","name":"string"}"#);
        assert_eq!(f.value(Field::PrimaryKey), "id");
        assert!(f.visible_fields().contains(&Field::PrimaryKey));
        f.update(Message::Edited(
            Field::Columns,
            r#"{"k":"string","v":{"type":"int","not_null":true}}"#.into(),
        ));
        f.update(Message::Edited(Field::PrimaryKey, "k".into()));
        let built = f.build_request().unwrap();
        assert_eq!(built["primary_key"], json!("k"));
        f.update(Message::ColumnsMode(ColumnsMode::Editor));
        assert_eq!(f.columns_mode, ColumnsMode::Editor);
        assert_eq!(
            f.columns,
            vec![
                ColumnRow {
                    name: "k".into(),
                    ty: ColType::String,
                    primary_key: true,
                    not_null: false
                },
                ColumnRow {
                    name: "v".into(),
                    ty: ColType::Int,
                    primary_key: false,
                    not_null: true
                },
            ]
        );
        assert_eq!(f.build_request().unwrap(), built);
        // Broken JSON keeps the JSON mode and says why.
        f.update(Message::ColumnsMode(ColumnsMode::Json));
        f.update(Message::Edited(Field::Columns, r#"{"k":"text"}"#.into()));
        assert!(f
            .error(Field::Columns)
            .unwrap()
            .contains("int, float, string or bool"));
        f.update(Message::ColumnsMode(ColumnsMode::Editor));
        assert_eq!(f.columns_mode, ColumnsMode::Json);
        assert!(f.error(Field::Columns).unwrap().contains("fix the JSON"));
        f.update(Message::Edited(Field::PrimaryKey, "a b".into()));
        f.update(Message::ColumnsMode(ColumnsMode::Editor));
        assert_eq!(f.columns_mode, ColumnsMode::Json);
        assert!(f.error(Field::PrimaryKey).is_some());
    }

    #[test]
    fn the_nodes_parser_has_the_last_word() {
        // Valid field by field, refused as a whole: an unknown operator in the condition.
        let mut f = form(
            OpKind::Search,
            &[
                (Field::Db, "mydb"),
                (Field::Table, "users"),
                (Field::Condition, r#"{"age":{"$between":[1,2]}}"#),
            ],
        );
        assert_eq!(f.error(Field::Condition), None);
        match f.build_request() {
            Err(BuildError::Request(e)) => assert!(e.starts_with("bad_request"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(f.preview().is_none());
    }

    #[test]
    fn forms_load_from_requests() {
        for req in [
            json!({"op":"CREATE_DB","db":"mydb"}),
            json!({"op":"CREATE_TABLE","db":"mydb","table":"users","data":{"id":"int","name":"string"},"primary_key":["id"]}),
            json!({"op":"INSERT","db":"mydb","table":"users","data":[{"id":2,"name":"Bob"},{"id":3,"name":"Eve"}],"op_id":"x1"}),
            json!({"op":"UPDATE","db":"mydb","table":"users","data":{"name":"Alicia"},"condition":{"id":1}}),
            json!({"op":"SEARCH","db":"mydb","table":"users","condition":{"id":1},"columns":["id","name"],"order_by":["-id"],"limit":3,"min_seq":9}),
            json!({"op":"CHECKSUM","db":"mydb"}),
        ] {
            let mut f = Form::from_request(&req).unwrap();
            let mut expected = req.clone();
            if req["op"] == "CREATE_TABLE" {
                expected["primary_key"] = json!("id");
            }
            if req["op"] == "SEARCH" {
                expected["order_by"] = json!("-id");
            }
            assert_eq!(f.build_request().unwrap(), expected);
        }
        assert!(Form::from_request(&json!({"op":"NOPE"})).is_err());
        assert!(Form::from_request(&json!({"op":"SEARCH","bogus":1})).is_err());
        assert!(Form::from_request(&json!([1])).is_err());
    }

    #[test]
    fn titles_name_the_target_table() {
        let f = form(
            OpKind::Insert,
            &[(Field::Db, "mydb"), (Field::Table, "users")],
        );
        assert_eq!(f.title(), "INSERT mydb.users");
        let f = form(
            OpKind::CreateDb,
            &[(Field::Db, "mydb"), (Field::Table, "users")],
        );
        assert_eq!(f.title(), "CREATE_DB mydb");
        assert_eq!(Form::default().title(), "CREATE_DB");
    }
}
