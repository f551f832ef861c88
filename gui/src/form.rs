//! The operation form: which fields each op has, what the user typed, field validation and
//! the request JSON built from it. Everything here is plain data and functions, tested
//! without a window; `view` only lays the fields out.
//!
//! - `ops`: the ops, their fields and examples;
//! - `fields`: each input's label and help, and its text → wire value;
//! - `columns`: the columns editors of CREATE_TABLE and ADD_COLUMN;
//! - `request`: the whole request, built or loaded back;
//! - `tx`: TRANSACTION's ops, each a form of its own.

mod columns;
mod fields;
mod ops;
mod request;
mod tx;

pub use columns::{
    columns_editor_json, columns_from_json, columns_to_json, ColType, ColumnRow, ColumnsEditor,
    ColumnsMode,
};
pub use fields::{parse_json, parse_name_list, parse_order_by, wire_key, Field};
pub use ops::OpKind;
pub use request::BuildError;
pub use tx::{TxMessage, TX_KINDS};

use columns::rows_for_editor;
use std::collections::BTreeMap;

/// Everything the user typed. Cloned into the history, so that an entry reloads exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub op: OpKind,
    values: BTreeMap<Field, String>,
    /// CREATE_TABLE's columns.
    pub columns: ColumnsEditor,
    /// ADD_COLUMN's columns, apart from CREATE_TABLE's: the table's own columns would be
    /// refused as new ones.
    pub new_columns: ColumnsEditor,
    /// CREATE_INDEX's unique checkbox.
    pub unique: bool,
    /// Per-field validation errors, shown beside the field.
    pub errors: BTreeMap<Field, String>,
    /// TRANSACTION's ops, in order; each is a form of its own (its db and op id unused).
    pub tx: Vec<Form>,
    /// The op of `tx` whose fields are shown (the others show as one line each).
    pub tx_selected: usize,
    /// On an op inside a TRANSACTION: why the node's parser refuses it, shown under it.
    pub op_error: Option<String>,
}

impl Default for Form {
    fn default() -> Self {
        let mut id = ColumnRow::new("id", ColType::Int);
        id.primary_key = true;
        Form {
            op: OpKind::default(),
            values: BTreeMap::new(),
            columns: ColumnsEditor::new(vec![id, ColumnRow::new("name", ColType::String)]),
            new_columns: ColumnsEditor::new(vec![ColumnRow::new("", ColType::String)]),
            unique: false,
            errors: BTreeMap::new(),
            tx: Vec::new(),
            tx_selected: 0,
            op_error: None,
        }
    }
}

/// What the form can be told to do. The column messages act on the current op's editor,
/// the only one on screen.
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
    Unique(bool),
    /// TRANSACTION's ops editor.
    Tx(TxMessage),
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

    /// The editor behind a columns field (ADD_COLUMN's for `NewColumns`, else CREATE_TABLE's).
    pub fn editor(&self, field: Field) -> &ColumnsEditor {
        match field {
            Field::NewColumns => &self.new_columns,
            _ => &self.columns,
        }
    }

    fn editor_mut(&mut self, field: Field) -> &mut ColumnsEditor {
        match field {
            Field::NewColumns => &mut self.new_columns,
            _ => &mut self.columns,
        }
    }

    /// The fields visible for the current op; CREATE_TABLE's primary key is part of the
    /// columns editor unless the columns are typed as JSON.
    pub fn visible_fields(&self) -> Vec<Field> {
        self.op
            .fields()
            .iter()
            .copied()
            .filter(|f| *f != Field::PrimaryKey || self.columns.mode == ColumnsMode::Json)
            .collect()
    }

    pub fn update(&mut self, message: Message) {
        match message {
            Message::OpSelected(op) => {
                self.op = op;
                if op == OpKind::Transaction && self.tx.is_empty() {
                    let first = self.new_tx_op();
                    self.tx.push(first);
                }
                // Errors of fields the new op does not show would be confusing; the shown
                // ones are re-checked against the new op's rules.
                self.revalidate();
            }
            Message::Edited(field, value) => {
                self.set(field, value);
                self.check(field);
            }
            Message::Unique(on) => self.unique = on,
            Message::Tx(m) => self.update_tx(m),
            Message::ColumnsMode(mode) => {
                if let Some(field) = self.op.columns_field() {
                    self.switch_columns_mode(field, mode);
                }
            }
            other => {
                if let Some(field) = self.op.columns_field() {
                    self.edit_columns(field, other);
                }
            }
        }
    }

    fn edit_columns(&mut self, field: Field, message: Message) {
        let rows = &mut self.editor_mut(field).rows;
        let recheck = match message {
            Message::ColumnName(i, name) => {
                if let Some(c) = rows.get_mut(i) {
                    c.name = name;
                }
                true
            }
            Message::ColumnType(i, ty) => {
                if let Some(c) = rows.get_mut(i) {
                    c.ty = ty;
                }
                false
            }
            Message::ColumnKey(i, on) => {
                if let Some(c) = rows.get_mut(i) {
                    c.primary_key = on;
                }
                false
            }
            Message::ColumnNotNull(i, on) => {
                if let Some(c) = rows.get_mut(i) {
                    c.not_null = on;
                }
                // ADD_COLUMN refuses not null: the error must show at once.
                true
            }
            Message::AddColumn => {
                rows.push(ColumnRow::new("", ColType::String));
                false
            }
            Message::RemoveColumn(i) => {
                if i < rows.len() {
                    rows.remove(i);
                }
                true
            }
            _ => false,
        };
        if recheck {
            self.check(field);
        }
    }

    fn switch_columns_mode(&mut self, field: Field, mode: ColumnsMode) {
        if mode == self.editor(field).mode {
            return;
        }
        match mode {
            ColumnsMode::Json => {
                let (data, pk) = columns_to_json(&self.editor(field).rows);
                // A blank editor leaves a blank field (its placeholder), not `{}`.
                let text = if data.as_object().is_some_and(|m| m.is_empty()) {
                    String::new()
                } else {
                    data.to_string()
                };
                self.set(field, text);
                if field == Field::Columns {
                    self.set(Field::PrimaryKey, pk.join(", "));
                }
                self.editor_mut(field).mode = ColumnsMode::Json;
                self.errors.remove(&field);
            }
            ColumnsMode::Editor => {
                let pk = if field == Field::Columns {
                    match parse_name_list(self.value(Field::PrimaryKey), "primary key column") {
                        Ok(pk) => pk.unwrap_or_default(),
                        Err(e) => {
                            self.errors.insert(Field::PrimaryKey, e);
                            return;
                        }
                    }
                } else {
                    Vec::new()
                };
                let raw = self.value(field).trim();
                let rows = if raw.is_empty() {
                    Ok(vec![ColumnRow::new("", ColType::String)])
                } else {
                    rows_for_editor(field, raw, &pk)
                };
                match rows {
                    Ok(rows) => {
                        *self.editor_mut(field) = ColumnsEditor::new(rows);
                        self.errors.remove(&field);
                        self.errors.remove(&Field::PrimaryKey);
                    }
                    Err(e) => {
                        self.errors.insert(
                            field,
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
            let filled = if field == Field::Ops {
                // Like an empty field, an op not filled in yet is reported on Execute only.
                false
            } else if field.is_columns() && self.editor(field).mode == ColumnsMode::Editor {
                self.editor(field).is_filled()
            } else {
                !self.value(field).trim().is_empty()
            };
            if filled {
                self.check(field);
            }
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tx_tests;
