//! The ops the form offers: their wire names, what they do, an example, and which fields
//! each one shows and requires.

use super::Field;
use std::fmt;

/// The ops the form can build (docs/design.md "Wire format", schema ops included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OpKind {
    #[default]
    CreateDb,
    CreateTable,
    Insert,
    Update,
    Delete,
    Search,
    AddColumn,
    CreateIndex,
    DropIndex,
    DropTable,
    DropDb,
    Checksum,
    /// Writes of one database applied together, all or none.
    Transaction,
}

impl OpKind {
    /// In picker order: the everyday ops first, then schema changes, the drops, CHECKSUM, and
    /// TRANSACTION, which runs several of the writes together.
    pub const ALL: [OpKind; 13] = [
        OpKind::CreateDb,
        OpKind::CreateTable,
        OpKind::Insert,
        OpKind::Update,
        OpKind::Delete,
        OpKind::Search,
        OpKind::AddColumn,
        OpKind::CreateIndex,
        OpKind::DropIndex,
        OpKind::DropTable,
        OpKind::DropDb,
        OpKind::Checksum,
        OpKind::Transaction,
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
            OpKind::AddColumn => "ADD_COLUMN",
            OpKind::CreateIndex => "CREATE_INDEX",
            OpKind::DropIndex => "DROP_INDEX",
            OpKind::DropTable => "DROP_TABLE",
            OpKind::DropDb => "DROP_DB",
            OpKind::Checksum => "CHECKSUM",
            OpKind::Transaction => "TRANSACTION",
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
            OpKind::Search => {
                "Read rows from the node you target (its local copy); with a limit, page through them."
            }
            OpKind::AddColumn => {
                "Add nullable columns to a table; they come after its existing columns."
            }
            OpKind::CreateIndex => {
                "Create an index on columns of a table; a unique one refuses repeated values."
            }
            OpKind::DropIndex => "Drop an index (index names are unique within the database).",
            OpKind::DropTable => "Drop a table with its rows and its indexes.",
            OpKind::DropDb => "Drop a database and everything in it.",
            OpKind::Checksum => "Per-table checksums and row counts, to compare nodes.",
            OpKind::Transaction => {
                "Several writes of one database, in order, all or none: if one fails, none is applied."
            }
        }
    }

    /// A complete request, shown in the op button's tooltip; the form loads it as is.
    pub fn example(self) -> &'static str {
        match self {
            OpKind::CreateDb => r#"{"op":"CREATE_DB","db":"mydb"}"#,
            OpKind::CreateTable => {
                r#"{"op":"CREATE_TABLE","db":"mydb","table":"users","data":{"id":"int","name":"string"},"primary_key":"id"}"#
            }
            OpKind::Insert => {
                r#"{"op":"INSERT","db":"mydb","table":"users","data":{"id":1,"name":"Alice"}}"#
            }
            OpKind::Update => {
                r#"{"op":"UPDATE","db":"mydb","table":"users","data":{"name":"Alicia"},"condition":{"id":1}}"#
            }
            OpKind::Delete => r#"{"op":"DELETE","db":"mydb","table":"users","condition":{"id":1}}"#,
            OpKind::Search => {
                r#"{"op":"SEARCH","db":"mydb","table":"users","condition":{"age":{"$gt":30}},"order_by":"name","limit":10}"#
            }
            OpKind::AddColumn => {
                r#"{"op":"ADD_COLUMN","db":"mydb","table":"users","data":{"age":"int","email":{"type":"string"}}}"#
            }
            OpKind::CreateIndex => {
                r#"{"op":"CREATE_INDEX","db":"mydb","table":"users","index":"by_name","columns":["name"],"unique":false}"#
            }
            OpKind::DropIndex => {
                r#"{"op":"DROP_INDEX","db":"mydb","table":"users","index":"by_name"}"#
            }
            OpKind::DropTable => r#"{"op":"DROP_TABLE","db":"mydb","table":"users"}"#,
            OpKind::DropDb => r#"{"op":"DROP_DB","db":"mydb"}"#,
            OpKind::Checksum => r#"{"op":"CHECKSUM","db":"mydb"}"#,
            OpKind::Transaction => {
                r#"{"op":"TRANSACTION","db":"mydb","ops":[{"op":"INSERT","table":"users","data":{"id":2,"name":"Bob"}},{"op":"UPDATE","table":"users","data":{"name":"Alicia"},"condition":{"id":1,"name":"Alice"},"expect":{"affected":1}}],"op_id":"add-bob-rename-alice"}"#
            }
        }
    }

    /// The fields this op shows, in order.
    pub fn fields(self) -> &'static [Field] {
        use Field::*;
        match self {
            OpKind::CreateDb | OpKind::DropDb => &[Db, OpId],
            OpKind::CreateTable => &[Db, Table, Columns, PrimaryKey, OpId],
            OpKind::Insert => &[Db, Table, Data, OpId],
            OpKind::Update => &[Db, Table, Data, Condition, Expect, OpId],
            OpKind::Delete => &[Db, Table, Condition, Expect, OpId],
            OpKind::Search => &[
                Db,
                Table,
                Condition,
                SearchColumns,
                OrderBy,
                Limit,
                After,
                MinSeq,
            ],
            OpKind::AddColumn => &[Db, Table, NewColumns, OpId],
            OpKind::CreateIndex => &[Db, Table, Index, IndexColumns, Unique, OpId],
            OpKind::DropIndex => &[Db, Table, Index, OpId],
            OpKind::DropTable => &[Db, Table, OpId],
            OpKind::Checksum => &[Db, Table, MinSeq],
            OpKind::Transaction => &[Db, Ops, OpId],
        }
    }

    /// Whether `field` must be filled in for this op.
    pub fn requires(self, field: Field) -> bool {
        match field {
            Field::Db => true,
            Field::Table => !matches!(self, OpKind::Checksum | OpKind::Transaction),
            Field::Columns => self == OpKind::CreateTable,
            Field::NewColumns => self == OpKind::AddColumn,
            Field::Data => matches!(self, OpKind::Insert | OpKind::Update),
            Field::Condition => matches!(self, OpKind::Update | OpKind::Delete),
            Field::Index => matches!(self, OpKind::CreateIndex | OpKind::DropIndex),
            Field::IndexColumns => self == OpKind::CreateIndex,
            Field::Ops => self == OpKind::Transaction,
            Field::PrimaryKey
            | Field::SearchColumns
            | Field::OrderBy
            | Field::Limit
            | Field::After
            | Field::MinSeq
            | Field::Unique
            | Field::Expect
            | Field::OpId => false,
        }
    }

    /// The field holding this op's columns editor, when it has one.
    pub fn columns_field(self) -> Option<Field> {
        match self {
            OpKind::CreateTable => Some(Field::Columns),
            OpKind::AddColumn => Some(Field::NewColumns),
            _ => None,
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
