//! The schema ops that change a table after CREATE_TABLE: CREATE_INDEX, DROP_INDEX,
//! DROP_TABLE and ADD_COLUMN. What can be checked without the table is checked here; the rest
//! (does the column exist, is the name taken) is checked by the store against its schema.

use super::schema::{parse_add_column_data, parse_index_columns};
use super::{Fields, IndexDef, WriteOp};
use crate::error::DdbError;
use crate::value::json_kind;
use serde_json::Value as Json;

pub(super) fn parse(op: &str, f: &mut Fields) -> Result<WriteOp, DdbError> {
    let db = f.name("db")?;
    let table = f.name("table")?;
    Ok(match op {
        "CREATE_INDEX" => {
            let name = f.name("index")?;
            let columns = parse_index_columns(&f.require("columns")?)?;
            let unique = match f.take("unique") {
                None | Some(Json::Null) => false,
                Some(Json::Bool(b)) => b,
                Some(other) => {
                    return Err(DdbError::bad_request(format!(
                        "unique must be true or false, got {}",
                        json_kind(&other)
                    )))
                }
            };
            WriteOp::CreateIndex {
                db,
                table,
                index: IndexDef {
                    name,
                    columns,
                    unique,
                },
            }
        }
        "DROP_INDEX" => WriteOp::DropIndex {
            db,
            table,
            index: f.name("index")?,
        },
        "DROP_TABLE" => WriteOp::DropTable { db, table },
        "ADD_COLUMN" => WriteOp::AddColumn {
            db,
            table,
            columns: parse_add_column_data(&f.require("data")?)?,
        },
        other => unreachable!("{other} is not a schema op"),
    })
}
