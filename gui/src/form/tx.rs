//! TRANSACTION's editor: a list of inner ops, each a [`Form`] of its own (so that every
//! op's fields, columns editors and checks are the ones its standalone form has), minus the
//! database and the op id, which are the transaction's. One op at a time is selected and
//! shows its fields; the others show as one line each.

use super::columns::columns_to_json;
use super::fields::wire_key;
use super::{ColumnsMode, Field, Form, Message, OpKind};
use ddb::op::{parse_request_json, Limits};
use serde_json::{Map, Value as Json};

/// The ops a TRANSACTION may hold, in picker order.
pub const TX_KINDS: [OpKind; 8] = [
    OpKind::Insert,
    OpKind::Update,
    OpKind::Delete,
    OpKind::CreateTable,
    OpKind::CreateIndex,
    OpKind::DropIndex,
    OpKind::DropTable,
    OpKind::AddColumn,
];

/// What TRANSACTION's editor can be told to do.
#[derive(Debug, Clone, PartialEq)]
pub enum TxMessage {
    /// Appends an op like the last one (its kind and table), and selects it.
    Add,
    /// Shows the fields of op `i`.
    Select(usize),
    Remove(usize),
    MoveUp(usize),
    MoveDown(usize),
    /// A message for op `i`'s own fields: its kind, values and columns.
    Op(usize, Box<Message>),
}

impl TxMessage {
    /// `message` for op `index`.
    pub fn op(index: usize, message: Message) -> TxMessage {
        TxMessage::Op(index, Box::new(message))
    }
}

impl OpKind {
    /// Whether a TRANSACTION may hold this op.
    pub fn in_transaction(self) -> bool {
        TX_KINDS.contains(&self)
    }
}

impl Form {
    /// A new inner op: one more like the last (same kind and table), or an INSERT into the
    /// form's table for the first.
    pub(super) fn new_tx_op(&self) -> Form {
        let (op, table) = match self.tx.last() {
            Some(last) => (last.op, last.value(Field::Table)),
            None => (OpKind::Insert, self.value(Field::Table)),
        };
        let mut form = Form {
            op,
            ..Form::default()
        };
        form.set(Field::Table, table.trim());
        form
    }

    /// The fields an inner op shows: its own, less the database and the op id (the
    /// transaction's).
    pub fn inner_fields(&self) -> Vec<Field> {
        self.visible_fields()
            .into_iter()
            .filter(|f| !matches!(f, Field::Db | Field::OpId))
            .collect()
    }

    pub(super) fn update_tx(&mut self, message: TxMessage) {
        let len = self.tx.len();
        match message {
            TxMessage::Add => {
                let op = self.new_tx_op();
                self.tx.push(op);
                self.tx_selected = len;
            }
            TxMessage::Select(i) if i < len => self.tx_selected = i,
            TxMessage::Remove(i) if i < len => {
                self.tx.remove(i);
                // The selection stays on its op, or moves to the next (the last) one.
                if self.tx_selected > i || self.tx_selected >= self.tx.len() {
                    self.tx_selected = self.tx_selected.saturating_sub(1);
                }
            }
            TxMessage::MoveUp(i) if i > 0 && i < len => self.swap_ops(i - 1),
            TxMessage::MoveDown(i) if i + 1 < len => self.swap_ops(i),
            TxMessage::Op(i, message) => {
                let Some(op) = self.tx.get_mut(i) else {
                    return;
                };
                match *message {
                    Message::OpSelected(kind) if !kind.in_transaction() => return,
                    Message::Tx(_) => return,
                    message => {
                        // What the node's parser said was about the op as it was.
                        op.op_error = None;
                        op.update(message);
                    }
                }
            }
            _ => return,
        }
        // The error under the list (set on Execute) follows what the ops show: it goes
        // once none of them shows an error, and a blank op added since is not one.
        if self.errors.contains_key(&Field::Ops) {
            match self.ops_shown_error() {
                Some(e) => self.errors.insert(Field::Ops, e),
                None => self.errors.remove(&Field::Ops),
            };
        }
    }

    /// Swaps ops `i` and `i + 1`; the selection follows its op.
    fn swap_ops(&mut self, i: usize) {
        self.tx.swap(i, i + 1);
        if self.tx_selected == i {
            self.tx_selected = i + 1;
        } else if self.tx_selected == i + 1 {
            self.tx_selected = i;
        }
    }

    /// Whether this op (of a TRANSACTION) shows an error.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty() || self.op_error.is_some()
    }

    /// This op (of a TRANSACTION) on one line, for the list: `UPDATE acct · data {..} ·
    /// condition {..} · expect 1`, cut at `max` characters.
    pub fn op_line(&self, max: usize) -> String {
        let mut parts = vec![self.op.name().to_owned()];
        for field in self.inner_fields() {
            let text = if field.is_columns() && self.editor(field).mode == ColumnsMode::Editor {
                let (data, _) = columns_to_json(&self.editor(field).rows);
                if data.as_object().is_some_and(|m| m.is_empty()) {
                    String::new()
                } else {
                    data.to_string()
                }
            } else if field == Field::Unique {
                if self.unique { "true" } else { "" }.to_owned()
            } else {
                self.value(field).trim().to_owned()
            };
            match field {
                _ if text.is_empty() => {}
                Field::Table => parts[0] = format!("{} {text}", parts[0]),
                _ => parts.push(format!("{} {text}", wire_key(field))),
            }
        }
        let line = parts.join(" · ");
        match line.char_indices().nth(max) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => line,
        }
    }

    /// What is wrong with the ops as they are shown: none, or some with errors beside
    /// their fields or under them.
    fn ops_shown_error(&self) -> Option<String> {
        if self.tx.is_empty() {
            return Some(NO_OPS.into());
        }
        let bad: Vec<String> = self
            .tx
            .iter()
            .enumerate()
            .filter(|(_, op)| op.has_errors())
            .map(|(i, op)| format!("{i} ({})", op.op))
            .collect();
        fix_ops(&bad)
    }

    /// The `ops` list as it would be sent, without recording anything (for the field check
    /// and the preview).
    pub(super) fn ops_json(&self) -> Result<Json, String> {
        self.clone().build_ops()
    }

    /// Builds the `ops` list: each op's fields are checked as in its own form, with the
    /// errors beside them, and each whole op by the node's parser with the transaction's
    /// database (the verdict under the op). Err: which ops need fixing.
    pub(super) fn build_ops(&mut self) -> Result<Json, String> {
        if self.tx.is_empty() {
            return Err(NO_OPS.into());
        }
        let db = self.field_json(Field::Db).ok().flatten();
        let mut bad: Vec<String> = Vec::new();
        let mut first_bad = None;
        let mut ops = Vec::with_capacity(self.tx.len());
        for (i, op) in self.tx.iter_mut().enumerate() {
            op.op_error = None;
            let fields: Vec<Field> = op
                .op
                .fields()
                .iter()
                .copied()
                .filter(|f| !matches!(f, Field::Db | Field::OpId))
                .collect();
            let map = op.collect_fields(&fields);
            if !op.errors.is_empty() {
                bad.push(format!("{i} ({})", op.op));
                first_bad = first_bad.or(Some(i));
                continue;
            }
            if let Some(db) = &db {
                let mut alone = map.clone();
                alone.insert("db".into(), db.clone());
                if let Err(e) = parse_request_json(Json::Object(alone), &Limits::default()) {
                    op.op_error = Some(format!("{}: {}", e.code, e.message));
                    bad.push(format!("{i} ({})", op.op));
                    first_bad = first_bad.or(Some(i));
                    continue;
                }
            }
            ops.push(Json::Object(map));
        }
        // The first op to fix shows its fields.
        if let Some(i) = first_bad {
            self.tx_selected = i;
        }
        match fix_ops(&bad) {
            None => Ok(Json::Array(ops)),
            Some(e) => Err(e),
        }
    }

    /// When this form still builds `request` (a TRANSACTION the node refused in op
    /// `index`), puts `why` under that op and shows it.
    pub fn mark_failed_op(&mut self, request: &Json, index: usize, why: &str) {
        if self.op != OpKind::Transaction || index >= self.tx.len() {
            return;
        }
        if self.clone().build_request().ok().as_ref() == Some(request) {
            self.tx[index].op_error = Some(why.to_owned());
            self.tx_selected = index;
        }
    }

    /// Puts the node parser's verdict on a whole TRANSACTION under the op it names, and
    /// shows that op.
    pub(super) fn blame_op(&mut self, index: Option<usize>, message: &str) {
        if let Some(i) = index.filter(|i| *i < self.tx.len()) {
            self.tx[i].op_error = Some(message.to_owned());
            self.tx_selected = i;
        }
    }
}

const NO_OPS: &str = "add at least one op (+ op)";

/// `fix op 1 (UPDATE) below`, for ops described as `1 (UPDATE)`; none for none.
fn fix_ops(bad: &[String]) -> Option<String> {
    match bad {
        [] => None,
        [one] => Some(format!("fix op {one} below")),
        many => Some(format!("fix ops {} below", many.join(", "))),
    }
}

/// TRANSACTION's `ops` (the wire JSON) → inner forms. Refused rather than dropped: an op of
/// another database, an envelope field on an op, an op a transaction cannot hold.
pub(super) fn ops_from_json(value: &Json, db: &str) -> Result<Vec<Form>, String> {
    let Json::Array(items) = value else {
        return Err("ops must be a list of ops".into());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let Json::Object(map) = item else {
                return Err(format!("op {i}: an op must be a JSON object"));
            };
            let mut map: Map<String, Json> = map.clone();
            match map.remove("db") {
                None => {}
                Some(Json::String(d)) if d == db => {}
                Some(other) => {
                    return Err(format!(
                        "op {i}: db {other} is not the transaction's ({db:?}); a TRANSACTION covers one database"
                    ))
                }
            }
            if let Some(key) = ["op_id", "min_seq"].iter().find(|k| map.contains_key(**k)) {
                return Err(format!(
                    "op {i}: {key} belongs on the TRANSACTION, not on an op inside it"
                ));
            }
            let kind = map
                .get("op")
                .and_then(Json::as_str)
                .and_then(OpKind::from_name);
            if let Some(kind) = kind.filter(|k| !k.in_transaction()) {
                return Err(format!("op {i}: {kind} cannot be inside a TRANSACTION"));
            }
            Form::from_request(&Json::Object(map)).map_err(|e| format!("op {i}: {e}"))
        })
        .collect()
}
