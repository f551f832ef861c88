//! The snapshot bucket: a JetStream Object Store per prefix (`<PREFIX>_SNAPSHOTS`, stream
//! `OBJ_<PREFIX>_SNAPSHOTS`). An object is named `<db>/<seq>` (seq zero-padded to 20 digits so
//! names sort like seqs) once complete; while it is being written it is `<db>/partial-<id>`,
//! and only a complete, renamed object is ever listed as a snapshot.

use crate::error::DdbError;
use crate::name::Name;
use crate::subjects::Subjects;
use async_nats::jetstream::{
    self,
    object_store::{self, ObjectMetadata, ObjectStore, UpdateMetadata},
    stream::{self, DiscardPolicy, StorageType},
};
use futures::TryStreamExt;
use std::collections::HashMap;

/// A complete snapshot object in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotObject {
    pub name: String,
    pub db: Name,
    pub seq: u64,
    pub size: u64,
    /// When its upload completed, in Unix milliseconds (0 if the server did not say).
    pub modified_ms: u64,
}

/// What an object's name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectName {
    Complete { db: Name, seq: u64 },
    Partial { db: Name },
}

/// The bucket of a prefix: letters and digits of the prefix upper-cased, others `_`, as the
/// log's stream name is built.
pub fn bucket_name(subjects: &Subjects) -> String {
    let log = subjects.stream();
    let base = log.strip_suffix("_LOG").unwrap_or(&log);
    format!("{base}_SNAPSHOTS")
}

pub fn object_name(db: &Name, seq: u64) -> String {
    format!("{db}/{seq:020}")
}

fn partial_name(db: &Name) -> String {
    format!("{db}/partial-{}", uuid_like())
}

/// A name unique enough for an upload in progress (one taker at a time; the time and the
/// process make it unique across restarts).
fn uuid_like() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:x}-{:x}", now.as_nanos(), std::process::id())
}

/// Parses an object name; an error says why it is not a ddb snapshot's.
pub fn parse_object_name(name: &str) -> Result<ObjectName, String> {
    let (db, rest) = name
        .split_once('/')
        .ok_or_else(|| format!("object {name:?} is not named <db>/<seq>"))?;
    let parsed = Name::parse_db(db).map_err(|e| {
        format!(
            "object {name:?} names database {db:?}, which is not a valid name: {}",
            e.message
        )
    })?;
    if parsed.as_str() != db {
        return Err(format!(
            "object {name:?} names database {db:?}, not in its canonical (lower-case) form"
        ));
    }
    if rest.starts_with("partial-") {
        return Ok(ObjectName::Partial { db: parsed });
    }
    if rest.len() != 20 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("object {name:?}: {rest:?} is not a 20-digit seq"));
    }
    let seq = rest
        .parse::<u64>()
        .map_err(|e| format!("object {name:?}: bad seq: {e}"))?;
    Ok(ObjectName::Complete { db: parsed, seq })
}

#[derive(Clone)]
pub struct Bucket {
    store: ObjectStore,
    name: String,
    js: jetstream::Context,
}

impl Bucket {
    /// Opens the bucket, creating it when absent. The stream is created here with only the
    /// fields nats-server 2.9 knows (DESIGN-NOTES.md "Snapshots"); async-nats then uses it.
    pub async fn ensure(
        js: &jetstream::Context,
        subjects: &Subjects,
        replicas: usize,
    ) -> Result<Bucket, DdbError> {
        let name = bucket_name(subjects);
        if let Ok(store) = js.get_object_store(&name).await {
            return Ok(Bucket {
                store,
                name,
                js: js.clone(),
            });
        }
        let config = stream::Config {
            name: format!("OBJ_{name}"),
            description: Some("ddb snapshots".to_owned()),
            subjects: vec![format!("$O.{name}.C.>"), format!("$O.{name}.M.>")],
            storage: StorageType::File,
            num_replicas: replicas.max(1),
            discard: DiscardPolicy::New,
            allow_rollup: true,
            allow_direct: true,
            ..Default::default()
        };
        if let Err(e) = js.get_or_create_stream(config).await {
            return Err(DdbError::unavailable(format!(
                "cannot create the snapshot bucket {name}: {e}"
            )));
        }
        let store = js.get_object_store(&name).await.map_err(|e| {
            DdbError::unavailable(format!("cannot open the snapshot bucket {name}: {e}"))
        })?;
        Ok(Bucket {
            store,
            name,
            js: js.clone(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every complete snapshot in the bucket, per database, oldest first; objects whose name
    /// is not a ddb snapshot's are left alone and reported in the second list.
    pub async fn list(&self) -> Result<Listing, DdbError> {
        let mut list =
            self.store.list().await.map_err(|e| {
                DdbError::unavailable(format!("cannot list bucket {}: {e}", self.name))
            })?;
        let mut out = Listing::default();
        while let Some(info) = list
            .try_next()
            .await
            .map_err(|e| DdbError::unavailable(format!("cannot list bucket {}: {e}", self.name)))?
        {
            match parse_object_name(&info.name) {
                Ok(ObjectName::Complete { db, seq }) => {
                    let modified_ms = info
                        .modified
                        .map(|t| (t.unix_timestamp_nanos() / 1_000_000).max(0) as u64)
                        .unwrap_or(0);
                    out.snapshots
                        .entry(db.to_string())
                        .or_default()
                        .push(SnapshotObject {
                            name: info.name,
                            db,
                            seq,
                            size: info.size as u64,
                            modified_ms,
                        });
                }
                Ok(ObjectName::Partial { db }) => out.partial.push((db, info.name)),
                Err(why) => out.invalid.push(why),
            }
        }
        for v in out.snapshots.values_mut() {
            v.sort_by_key(|s| s.seq);
        }
        Ok(out)
    }

    /// Uploads a snapshot read from `data` under a partial name; [`Bucket::complete`] makes
    /// it a snapshot.
    pub async fn upload(
        &self,
        db: &Name,
        data: &mut (impl tokio::io::AsyncRead + Unpin),
    ) -> Result<String, DdbError> {
        let name = partial_name(db);
        let meta = ObjectMetadata {
            name: name.clone(),
            description: Some(format!("ddb snapshot of {db} (uploading)")),
            // Larger chunks than the default 128 KiB: fewer acks per snapshot, still far
            // below the default 1 MB max_payload.
            chunk_size: Some(512 * 1024),
            metadata: HashMap::from([("db".to_owned(), db.to_string())]),
            headers: None,
        };
        self.store.put(meta, data).await.map_err(|e| {
            DdbError::unavailable(format!("cannot upload to bucket {}: {e}", self.name))
        })?;
        Ok(name)
    }

    /// Renames a finished upload to `<db>/<seq>`.
    pub async fn complete(
        &self,
        partial: &str,
        db: &Name,
        seq: u64,
        rows: u64,
    ) -> Result<String, DdbError> {
        let name = object_name(db, seq);
        let update = UpdateMetadata {
            name: name.clone(),
            description: Some(format!("ddb snapshot of {db} at seq {seq}, {rows} rows")),
            metadata: HashMap::from([
                ("db".to_owned(), db.to_string()),
                ("seq".to_owned(), seq.to_string()),
                ("rows".to_owned(), rows.to_string()),
            ]),
            headers: None,
        };
        match self.store.update_metadata(partial, update).await {
            Ok(_) => Ok(name),
            // The same seq was snapshotted already (nothing was written in between): keep
            // the one that was there.
            Err(e) if e.kind() == object_store::UpdateMetadataErrorKind::NameAlreadyInUse => {
                self.delete(partial).await?;
                Ok(name)
            }
            Err(e) => Err(DdbError::unavailable(format!(
                "cannot complete snapshot {name} in bucket {}: {e}",
                self.name
            ))),
        }
    }

    pub async fn delete(&self, name: &str) -> Result<(), DdbError> {
        self.store.delete(name).await.map_err(|e| {
            DdbError::unavailable(format!(
                "cannot delete {name} from bucket {}: {e}",
                self.name
            ))
        })
    }

    /// Opens an object for reading; its bytes are checked against the object's SHA-256 as
    /// they end.
    pub async fn open(&self, name: &str) -> Result<object_store::Object, DdbError> {
        self.store.get(name).await.map_err(|e| {
            DdbError::unavailable(format!("cannot read {name} from bucket {}: {e}", self.name))
        })
    }

    /// Purges chunks that no object refers to: what an upload cut short (its writer died, or
    /// NATS failed under it) left behind. Call it only when no upload of this bucket is in
    /// progress (the taker does, holding its one-at-a-time lock). Returns the chunks purged.
    pub async fn purge_orphan_chunks(&self) -> Result<u64, DdbError> {
        let fail =
            |e: String| DdbError::unavailable(format!("cannot clean up bucket {}: {e}", self.name));
        // Every object's nuid, deleted ones included (`list` leaves those out).
        let mut referenced = std::collections::HashSet::new();
        let stream = self
            .js
            .get_stream(format!("OBJ_{}", self.name))
            .await
            .map_err(|e| fail(e.to_string()))?;
        let metas = stream
            .info_with_subjects(format!("$O.{}.M.>", self.name))
            .await
            .map_err(|e| fail(e.to_string()))?
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| fail(e.to_string()))?;
        for (subject, _) in metas {
            let m = stream
                .get_last_raw_message_by_subject(&subject)
                .await
                .map_err(|e| fail(e.to_string()))?;
            if let Ok(info) = serde_json::from_slice::<object_store::ObjectInfo>(&m.payload) {
                referenced.insert(info.nuid);
            }
        }
        let chunks = stream
            .info_with_subjects(format!("$O.{}.C.>", self.name))
            .await
            .map_err(|e| fail(e.to_string()))?
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut purged = 0;
        for (subject, count) in chunks {
            let nuid = subject.rsplit('.').next().unwrap_or_default();
            if !referenced.contains(nuid) {
                stream
                    .purge()
                    .filter(subject.clone())
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                purged += count as u64;
            }
        }
        Ok(purged)
    }

    /// Writes raw bytes under any name (tests use it to plant bad objects).
    pub async fn put_raw(&self, name: &str, bytes: &[u8]) -> Result<(), DdbError> {
        let mut data = bytes;
        self.store
            .put(name, &mut data)
            .await
            .map(|_| ())
            .map_err(|e| DdbError::unavailable(format!("cannot write {name}: {e}")))
    }
}

/// What the bucket holds.
#[derive(Debug, Default)]
pub struct Listing {
    /// Complete snapshots per database, oldest first.
    pub snapshots: std::collections::BTreeMap<String, Vec<SnapshotObject>>,
    /// Uploads not completed (in progress, or left by a taker that died).
    pub partial: Vec<(Name, String)>,
    /// Why each object that is not a ddb snapshot was left alone.
    pub invalid: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_say_database_and_seq() {
        let db = Name::parse_db("shop").unwrap();
        assert_eq!(object_name(&db, 42), "shop/00000000000000000042");
        assert_eq!(
            parse_object_name("shop/00000000000000000042"),
            Ok(ObjectName::Complete {
                db: db.clone(),
                seq: 42
            })
        );
        assert!(matches!(
            parse_object_name(&partial_name(&db)),
            Ok(ObjectName::Partial { .. })
        ));
        assert_eq!(
            bucket_name(&Subjects::new("ddb.test-1")),
            "DDB_TEST_1_SNAPSHOTS"
        );
    }

    /// Against the installed nats-server (2.9.10 here): the bucket is created, written in
    /// chunks, completed by a rename, listed, read back whole and deleted.
    #[tokio::test]
    async fn the_bucket_works_on_the_installed_nats_server() {
        use tokio::io::AsyncReadExt;
        let server = ddb_testsupport::NatsServer::start();
        let client = crate::test_nats::connect(&server).await;
        let js = jetstream::new(client);
        // What async-nats would create by itself is accepted too (DESIGN-NOTES "Snapshots").
        let theirs = js
            .create_object_store(object_store::Config {
                bucket: "PLAIN".into(),
                ..Default::default()
            })
            .await;
        assert!(theirs.is_ok(), "{:?}", theirs.err());
        let subjects = Subjects::new("t1");
        Bucket::ensure(&js, &subjects, 1).await.expect("create");
        let b = Bucket::ensure(&js, &subjects, 1).await.expect("open");
        assert_eq!(b.name(), "T1_SNAPSHOTS");
        let db = Name::parse_db("shop").unwrap();
        let data: Vec<u8> = (0..1_300_000u32).map(|i| (i % 251) as u8).collect();
        let partial = b.upload(&db, &mut &data[..]).await.expect("upload");
        let listing = b.list().await.unwrap();
        assert!(listing.snapshots.is_empty(), "{listing:?}");
        assert_eq!(listing.partial, [(db.clone(), partial.clone())]);
        let name = b.complete(&partial, &db, 42, 1000).await.expect("complete");
        assert_eq!(name, "shop/00000000000000000042");
        b.put_raw("Not A Db/00000000000000000001", b"x")
            .await
            .unwrap();
        let listing = b.list().await.unwrap();
        let shop = &listing.snapshots["shop"];
        assert_eq!((shop.len(), shop[0].seq), (1, 42));
        assert_eq!(shop[0].size, data.len() as u64);
        assert!(shop[0].modified_ms > 0);
        assert!(listing.partial.is_empty());
        assert_eq!(listing.invalid.len(), 1, "{listing:?}");
        let mut back = Vec::new();
        b.open(&name)
            .await
            .unwrap()
            .read_to_end(&mut back)
            .await
            .unwrap();
        assert!(back == data, "read back {} bytes", back.len());
        // Chunks nothing refers to (an upload cut short) go; an object's chunks stay.
        js.publish("$O.T1_SNAPSHOTS.C.orphan", "lost".into())
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(b.purge_orphan_chunks().await.unwrap(), 1);
        assert_eq!(b.purge_orphan_chunks().await.unwrap(), 0);
        let mut again = Vec::new();
        b.open(&name)
            .await
            .unwrap()
            .read_to_end(&mut again)
            .await
            .unwrap();
        assert_eq!(again.len(), data.len());
        b.delete(&name).await.unwrap();
        assert!(b.list().await.unwrap().snapshots.is_empty());
    }

    #[test]
    fn names_that_are_not_snapshots_are_refused_with_why() {
        for bad in [
            "shop",
            "Shop/00000000000000000042",
            "select/00000000000000000042",
            "_ddb_x/00000000000000000042",
            "shop/42",
            "shop/0000000000000000004x",
            "a b/00000000000000000042",
        ] {
            let e = parse_object_name(bad).expect_err(bad);
            assert!(e.contains("object"), "{bad}: {e}");
        }
    }
}
