//! The format's own tests: round trips, and every way a stream can be cut or changed.
use super::*;
use crate::value::Value;
use serde_json::json;
use std::io::Read;

fn header(rows: u64) -> Header {
    let spec = json!({"data":{"id":"int","s":"string","f":"float","b":"bool"},"primary_key":"id"});
    Header {
        db: Name::parse_db("d").unwrap(),
        seq: 42,
        engine: "sqlite".into(),
        created_ms: 7,
        tables: vec![
            TableHeader {
                schema: TableSchema::from_spec(
                    Name::parse("e", "table").unwrap(),
                    &json!({"data":{"k":"int"}}),
                )
                .unwrap(),
                rows: 0,
            },
            TableHeader {
                schema: TableSchema::from_spec(Name::parse("t", "table").unwrap(), &spec).unwrap(),
                rows,
            },
        ],
    }
}

fn row(i: i64) -> Vec<Value> {
    vec![
        Value::Int(i),
        if i % 3 == 0 {
            Value::Null
        } else {
            Value::Str(format!("é{i}"))
        },
        Value::Float(i as f64 / 3.0),
        Value::Bool(i % 2 == 0),
    ]
}

fn encode(rows: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = Writer::new(&mut out, &header(rows)).unwrap();
    w.begin_table(0).unwrap();
    w.begin_table(1).unwrap();
    for i in 0..rows as i64 {
        w.row(&row(i)).unwrap();
    }
    w.op_id(&OpIdRecord {
        op_id: "a".into(),
        seq: 40,
        at_ms: 1,
    })
    .unwrap();
    let (counts, bytes) = w.finish().unwrap();
    assert_eq!(
        counts,
        Counts {
            tables: 2,
            rows,
            op_ids: 1
        }
    );
    assert_eq!(bytes, out.len() as u64);
    out
}

type Decoded = (Header, Vec<Vec<Value>>, Vec<OpIdRecord>);

fn decode(bytes: &[u8]) -> Result<Decoded, SnapshotError> {
    let (mut r, h) = Reader::open(bytes)?;
    let (mut rows, mut ids) = (Vec::new(), Vec::new());
    loop {
        match r.next_item()? {
            Item::Rows {
                table,
                rows: mut chunk,
            } => {
                assert_eq!(table, 1);
                rows.append(&mut chunk);
            }
            Item::OpIds(mut chunk) => ids.append(&mut chunk),
            Item::End(_) => break,
        }
    }
    assert_eq!(r.bytes_read(), bytes.len() as u64);
    Ok((h, rows, ids))
}

#[test]
fn round_trip_over_several_chunks() {
    let bytes = encode(20_000);
    let (h, rows, ids) = decode(&bytes).unwrap();
    assert_eq!(h, header(20_000));
    assert_eq!(rows.len(), 20_000);
    assert_eq!(rows[1234], row(1234));
    assert_eq!(
        ids,
        [OpIdRecord {
            op_id: "a".into(),
            seq: 40,
            at_ms: 1
        }]
    );
    assert_eq!(read_header(&bytes[..]).unwrap(), header(20_000));
}

#[test]
fn every_truncation_and_every_content_change_is_refused() {
    let bytes = encode(50);
    let whole = decode(&bytes).unwrap();
    for len in 0..bytes.len() {
        match decode(&bytes[..len]) {
            Ok(_) => panic!("cut at {len} of {}: decoded", bytes.len()),
            Err(e) => assert!(e.is_bad_input(), "cut at {len}: {e}"),
        }
    }
    for at in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = bytes.clone();
            bad[at] ^= bit;
            // A few bits of zstd's frame header only tune the decoder (the window
            // size): the content must then come out whole and unchanged.
            match decode(&bad) {
                Ok(d) => assert_eq!(d, whole, "flip {bit:#x} at {at} changed the content"),
                Err(e) => assert!(e.is_bad_input(), "flip at {at}: {e}"),
            }
        }
    }
}

#[test]
fn foreign_bytes_and_other_versions_are_told_apart() {
    assert_eq!(decode(b"hello, world").unwrap_err(), SnapshotError::Foreign);
    assert_eq!(decode(b"").unwrap_err(), SnapshotError::Foreign);
    assert!(matches!(
        decode(b"DDBS").unwrap_err(),
        SnapshotError::Truncated(_)
    ));
    let mut v2 = encode(1);
    v2[9] = 2;
    assert_eq!(decode(&v2).unwrap_err(), SnapshotError::UnknownVersion(2));
}

#[test]
fn a_writer_refuses_rows_that_do_not_fit_the_header() {
    let mut w = Writer::new(Vec::new(), &header(1)).unwrap();
    assert!(w.row(&row(1)).is_err(), "a row before any table");
    w.begin_table(1).unwrap();
    assert!(w.row(&row(1)[..2]).is_err(), "too few values");
    w.row(&row(1)).unwrap();
    w.row(&row(2)).unwrap();
    assert!(w.finish().is_err(), "more rows than the header said");
}

/// A failing source is an I/O error, not a bad snapshot.
#[test]
fn source_errors_are_not_bad_input() {
    struct Failing(Vec<u8>, usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.1 >= self.0.len() / 2 {
                return Err(std::io::Error::other("connection reset"));
            }
            let n = buf.len().min(self.0.len() / 2 - self.1).min(7);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }
    // zstd needs a whole block before it gives out any byte: the failure may come
    // while the header is read or later.
    let e = match Reader::open(Failing(encode(2000), 0)) {
        Err(e) => e,
        Ok((mut r, _)) => loop {
            match r.next_item() {
                Ok(Item::End(_)) => panic!("read to the end"),
                Ok(_) => {}
                Err(e) => break e,
            }
        },
    };
    assert!(matches!(e, SnapshotError::Read(_)), "{e}");
}
