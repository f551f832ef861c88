//! The form without a window: fields per op, validation, request building and loading.

use super::*;
use ddb::op::{parse_request_json, Limits};
use serde_json::json;
use serde_json::Value as Json;

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
    assert_eq!(f.columns.mode, ColumnsMode::Json);
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
    assert_eq!(f.columns.mode, ColumnsMode::Editor);
    assert_eq!(
        f.columns.rows,
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
    assert_eq!(f.columns.mode, ColumnsMode::Json);
    assert!(f.error(Field::Columns).unwrap().contains("fix the JSON"));
    f.update(Message::Edited(Field::PrimaryKey, "a b".into()));
    f.update(Message::ColumnsMode(ColumnsMode::Editor));
    assert_eq!(f.columns.mode, ColumnsMode::Json);
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

#[test]
fn schema_ops_build_their_wire_requests() {
    let mut f = form(
        OpKind::CreateIndex,
        &[
            (Field::Db, "mydb"),
            (Field::Table, "users"),
            (Field::Index, "by_name"),
            (Field::IndexColumns, "name"),
        ],
    );
    assert_eq!(
        f.build_request().unwrap(),
        json!({"op":"CREATE_INDEX","db":"mydb","table":"users","index":"by_name","columns":["name"],"unique":false})
    );
    f.update(Message::Unique(true));
    f.update(Message::Edited(
        Field::IndexColumns,
        "last_name, first_name".into(),
    ));
    f.update(Message::Edited(Field::OpId, "ix-1".into()));
    assert_eq!(
        f.build_request().unwrap(),
        json!({"op":"CREATE_INDEX","db":"mydb","table":"users","index":"by_name","columns":["last_name","first_name"],"unique":true,"op_id":"ix-1"})
    );
    f.update(Message::Edited(Field::IndexColumns, r#"["email"]"#.into()));
    assert_eq!(f.build_request().unwrap()["columns"], json!(["email"]));

    // The index name is kept for DROP_INDEX; CREATE_INDEX's other fields are not sent.
    f.update(Message::OpSelected(OpKind::DropIndex));
    assert_eq!(
        f.build_request().unwrap(),
        json!({"op":"DROP_INDEX","db":"mydb","table":"users","index":"by_name","op_id":"ix-1"})
    );
    f.update(Message::OpSelected(OpKind::DropTable));
    f.update(Message::Edited(Field::OpId, String::new()));
    assert_eq!(
        f.build_request().unwrap(),
        json!({"op":"DROP_TABLE","db":"mydb","table":"users"})
    );

    f.update(Message::OpSelected(OpKind::AddColumn));
    f.update(Message::ColumnName(0, "age".into()));
    f.update(Message::ColumnType(0, ColType::Int));
    f.update(Message::AddColumn);
    f.update(Message::ColumnName(1, "email".into()));
    assert_eq!(
        f.build_request().unwrap(),
        json!({"op":"ADD_COLUMN","db":"mydb","table":"users","data":{"age":"int","email":"string"}})
    );
    // ADD_COLUMN's rows are its own: CREATE_TABLE's editor still has id and name.
    let names: Vec<&str> = f.columns.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["id", "name"]);
    f.update(Message::OpSelected(OpKind::CreateTable));
    assert_eq!(
        f.build_request().unwrap()["data"],
        json!({"id":"int","name":"string"})
    );
    assert_eq!(f.new_columns.rows.len(), 2);
}

#[test]
fn create_index_fields_are_checked() {
    let mut f = form(
        OpKind::CreateIndex,
        &[(Field::Db, "mydb"), (Field::Table, "users")],
    );
    match f.build_request() {
        Err(BuildError::Fields(e)) => {
            assert_eq!(e[&Field::Index], "Index is required for CREATE_INDEX");
            assert_eq!(
                e[&Field::IndexColumns],
                "Index columns is required for CREATE_INDEX"
            );
        }
        other => panic!("{other:?}"),
    }
    f.update(Message::Edited(Field::Index, "by name".into()));
    assert!(f
        .error(Field::Index)
        .unwrap()
        .contains("invalid index name"));
    f.update(Message::Edited(Field::IndexColumns, "name, Name".into()));
    assert_eq!(
        f.error(Field::IndexColumns),
        Some("column Name appears twice in the index")
    );
    let seventeen: Vec<String> = (0..17).map(|i| format!("c{i}")).collect();
    f.update(Message::Edited(Field::IndexColumns, seventeen.join(", ")));
    assert!(f.error(Field::IndexColumns).unwrap().contains("at most 16"));
    f.update(Message::Edited(
        Field::IndexColumns,
        seventeen[..16].join(","),
    ));
    assert_eq!(f.error(Field::IndexColumns), None);
    f.update(Message::Edited(Field::IndexColumns, "[1]".into()));
    assert!(f.error(Field::IndexColumns).is_some());
    // DROP_INDEX needs the index name too, and nothing else beyond db and table.
    let mut d = form(
        OpKind::DropIndex,
        &[(Field::Db, "mydb"), (Field::Table, "users")],
    );
    assert!(
        matches!(d.build_request(), Err(BuildError::Fields(e)) if e.keys().eq([&Field::Index]))
    );
}

#[test]
fn add_column_takes_nullable_new_columns_only() {
    let mut f = form(
        OpKind::AddColumn,
        &[(Field::Db, "mydb"), (Field::Table, "users")],
    );
    // A blank editor is not an error until Execute, and then says what is missing.
    assert_eq!(f.error(Field::NewColumns), None);
    match f.build_request() {
        Err(BuildError::Fields(e)) => {
            assert_eq!(e[&Field::NewColumns], "add at least one column")
        }
        other => panic!("{other:?}"),
    }
    f.update(Message::ColumnName(0, "age".into()));
    f.update(Message::ColumnNotNull(0, true));
    assert!(f
        .error(Field::NewColumns)
        .unwrap()
        .contains("nullable columns only"));
    f.update(Message::ColumnNotNull(0, false));
    assert_eq!(f.error(Field::NewColumns), None);

    f.update(Message::ColumnsMode(ColumnsMode::Json));
    assert_eq!(f.new_columns.mode, ColumnsMode::Json);
    assert_eq!(
        f.columns.mode,
        ColumnsMode::Editor,
        "CREATE_TABLE's is apart"
    );
    assert_eq!(f.value(Field::NewColumns), r#"{"age":"string"}"#);
    f.update(Message::Edited(
        Field::NewColumns,
        r#"{"age":"int","email":{"type":"string","not_null":true}}"#.into(),
    ));
    assert!(f
        .error(Field::NewColumns)
        .unwrap()
        .contains("column email: ADD_COLUMN adds nullable columns only"));
    // The editor has no not-null box: it cannot take that JSON.
    f.update(Message::ColumnsMode(ColumnsMode::Editor));
    assert_eq!(f.new_columns.mode, ColumnsMode::Json);
    f.update(Message::Edited(
        Field::NewColumns,
        r#"{"age":"int","email":{"type":"string"}}"#.into(),
    ));
    assert_eq!(
        f.build_request().unwrap(),
        json!({"op":"ADD_COLUMN","db":"mydb","table":"users","data":{"age":"int","email":{"type":"string"}}})
    );
    f.update(Message::Edited(Field::NewColumns, "{}".into()));
    assert_eq!(f.error(Field::NewColumns), Some("add at least one column"));
    f.update(Message::Edited(
        Field::NewColumns,
        r#"{"age":"text"}"#.into(),
    ));
    assert!(f.error(Field::NewColumns).unwrap().contains("int, float"));
    f.update(Message::Edited(
        Field::NewColumns,
        r#"{"age":"int","email":"string"}"#.into(),
    ));
    f.update(Message::ColumnsMode(ColumnsMode::Editor));
    assert_eq!(f.new_columns.mode, ColumnsMode::Editor);
    assert_eq!(
        f.new_columns.rows,
        vec![
            ColumnRow::new("age", ColType::Int),
            ColumnRow::new("email", ColType::String)
        ]
    );
}

#[test]
fn search_after_is_sent_as_the_cursor() {
    let mut f = form(
        OpKind::Search,
        &[
            (Field::Db, "mydb"),
            (Field::Table, "users"),
            (Field::Limit, "2"),
            (Field::After, "  opaque=cursor/1  "),
        ],
    );
    assert_eq!(
        f.build_request().unwrap(),
        json!({"op":"SEARCH","db":"mydb","table":"users","limit":2,"after":"opaque=cursor/1"})
    );
    f.update(Message::Edited(
        Field::After,
        "x".repeat(ddb::op::MAX_CURSOR_LEN + 1),
    ));
    assert!(f.error(Field::After).unwrap().contains("at most"));
    // Kept when another op is picked, sent only with SEARCH.
    f.update(Message::Edited(Field::After, "c1".into()));
    f.update(Message::OpSelected(OpKind::Checksum));
    assert!(f.build_request().unwrap().get("after").is_none());
}

#[test]
fn every_op_example_loads_into_the_form_and_builds_the_same_request() {
    for op in OpKind::ALL {
        let example: Json = serde_json::from_str(op.example()).unwrap();
        assert_eq!(example["op"], json!(op.name()));
        let parsed = parse_request_json(example.clone(), &Limits::default())
            .unwrap_or_else(|e| panic!("{op}: the node refuses its example: {e:?}"));
        let mut f = Form::from_request(&example).unwrap();
        assert_eq!(f.op, op);
        assert!(f.errors.is_empty(), "{op}: {:?}", f.errors);
        let built = f.build_request().unwrap();
        assert_eq!(
            parse_request_json(built, &Limits::default()).unwrap(),
            parsed,
            "{op}"
        );
    }
}

#[test]
fn wire_keys_are_unique_within_each_op() {
    // `from_request` finds a field by its key among the op's fields.
    for op in OpKind::ALL {
        let keys: Vec<&str> = op.fields().iter().map(|f| wire_key(*f)).collect();
        for (i, k) in keys.iter().enumerate() {
            assert!(!keys[..i].contains(k), "{op}: {k} twice");
        }
    }
    let every: Vec<Field> = OpKind::ALL
        .iter()
        .flat_map(|op| op.fields().iter().copied())
        .collect();
    for field in Field::ALL {
        assert!(every.contains(&field), "{field:?} is shown by no op");
    }
}

#[test]
fn schema_requests_load_back_into_the_form() {
    for req in [
        json!({"op":"CREATE_INDEX","db":"mydb","table":"users","index":"by_email","columns":["email","name"],"unique":true,"op_id":"i1"}),
        json!({"op":"DROP_INDEX","db":"mydb","table":"users","index":"by_email"}),
        json!({"op":"DROP_TABLE","db":"mydb","table":"users"}),
        json!({"op":"ADD_COLUMN","db":"mydb","table":"users","data":{"age":"int"}}),
        json!({"op":"SEARCH","db":"mydb","table":"users","limit":2,"after":"c1"}),
    ] {
        let mut f = Form::from_request(&req).unwrap();
        assert_eq!(f.build_request().unwrap(), req);
    }
    let f = Form::from_request(
        &json!({"op":"CREATE_INDEX","db":"mydb","table":"t","index":"i","columns":["a"],"unique":true}),
    )
    .unwrap();
    assert!(f.unique);
    assert_eq!(f.value(Field::IndexColumns), "a");
    let f =
        Form::from_request(&json!({"op":"ADD_COLUMN","db":"mydb","table":"t","data":{"a":"bool"}}))
            .unwrap();
    assert_eq!(f.new_columns.mode, ColumnsMode::Editor);
    assert_eq!(f.new_columns.rows, vec![ColumnRow::new("a", ColType::Bool)]);
    // Not null does not fit ADD_COLUMN's editor: the JSON stays, with the error beside it.
    let f = Form::from_request(
        &json!({"op":"ADD_COLUMN","db":"mydb","table":"t","data":{"a":{"type":"int","not_null":true}}}),
    )
    .unwrap();
    assert_eq!(f.new_columns.mode, ColumnsMode::Json);
    assert!(f.error(Field::NewColumns).is_some());
    assert_eq!(
        Form::from_request(
            &json!({"op":"CREATE_INDEX","db":"d","table":"t","index":"i","columns":["a"],"unique":"yes"})
        ),
        Err("unique must be true or false".to_owned())
    );
    assert_eq!(
        Form::from_request(&json!({"op":"SEARCH","db":"d","table":"t","data":{"a":1}})),
        Err("SEARCH takes no \"data\"".to_owned())
    );
    assert_eq!(
        Form::from_request(&json!({"op":"DROP_TABLE","db":"d","table":"t","index":"i"})),
        Err("DROP_TABLE takes no \"index\"".to_owned())
    );
}
