//! Bridges between the store's synchronous snapshot streams (written and read on the store's
//! own threads) and async NATS: bounded channels of chunks, so neither side ever holds more
//! than a few chunks of a snapshot in memory.

use bytes::{Bytes, BytesMut};
use std::io::{self, Read, Write};
use tokio::sync::mpsc;

/// Bytes per chunk handed across.
pub(super) const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the two sides.
const DEPTH: usize = 8;

pub(super) type Chunks = mpsc::Receiver<io::Result<Bytes>>;

/// A sink for `Store::snapshot`: what it writes goes out in chunks on a channel, read as an
/// `AsyncRead` by the upload ([`reader`]).
pub(super) struct ChunkSink {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: BytesMut,
}

/// A channel's sink and its receiving end.
pub(super) fn sink() -> (ChunkSink, mpsc::Sender<io::Result<Bytes>>, Chunks) {
    let (tx, rx) = mpsc::channel(DEPTH);
    (
        ChunkSink {
            tx: tx.clone(),
            buf: BytesMut::with_capacity(CHUNK),
        },
        tx,
        rx,
    )
}

impl ChunkSink {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        // The store calls this on its own threads, never on the event loop: blocking here
        // is what bounds the memory when the upload is slower than the store.
        futures::executor::block_on(self.tx.send(Ok(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl Drop for ChunkSink {
    fn drop(&mut self) {
        // A store that never flushed its tail still gets it uploaded; whether the upload
        // counts is decided by the snapshot's result, not by the end of the bytes.
        let _ = self.send();
    }
}

/// The receiving end as an `AsyncRead` (an `Err` in the channel fails the read).
pub(super) fn reader(rx: Chunks) -> ChunkReader {
    ChunkReader {
        rx,
        cur: Bytes::new(),
    }
}

pub(super) struct ChunkReader {
    rx: Chunks,
    cur: Bytes,
}

impl tokio::io::AsyncRead for ChunkReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        while self.cur.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(b))) => self.cur = b,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = buf.remaining().min(self.cur.len());
        let part = self.cur.split_to(n);
        buf.put_slice(&part);
        Poll::Ready(Ok(()))
    }
}

/// A source for `Store::restore`, fed by [`feed`] from an async download.
pub(super) struct ChunkSource {
    rx: Chunks,
    cur: Bytes,
}

pub(super) fn source() -> (ChunkSource, mpsc::Sender<io::Result<Bytes>>) {
    let (tx, rx) = mpsc::channel(DEPTH);
    (
        ChunkSource {
            rx,
            cur: Bytes::new(),
        },
        tx,
    )
}

impl Read for ChunkSource {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match futures::executor::block_on(self.rx.recv()) {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

/// Copies `input` into the channel in chunks; a read error goes into the channel too, so
/// the restore fails rather than seeing a short snapshot end cleanly. Returns the bytes
/// copied.
pub(super) async fn feed(
    mut input: impl tokio::io::AsyncRead + Unpin,
    tx: mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<u64> {
    use tokio::io::AsyncReadExt;
    let mut total = 0u64;
    loop {
        let mut buf = BytesMut::with_capacity(CHUNK);
        while buf.len() < CHUNK {
            match input.read_buf(&mut buf).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    let kind = e.kind();
                    let msg = e.to_string();
                    let _ = tx.send(Err(io::Error::new(kind, msg))).await;
                    return Err(e);
                }
            }
        }
        if buf.is_empty() {
            return Ok(total);
        }
        total += buf.len() as u64;
        if tx.send(Ok(buf.freeze())).await.is_err() {
            // The restore stopped reading (it failed or finished): nothing more to do.
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_sink_streams_its_bytes_in_order() {
        let (mut sink, tx, rx) = sink();
        drop(tx);
        let data: Vec<u8> = (0..(3 * CHUNK + 17)).map(|i| (i % 251) as u8).collect();
        let expect = data.clone();
        let writer = std::thread::spawn(move || {
            for part in data.chunks(1000) {
                sink.write_all(part).unwrap();
            }
            // Dropped without flush: the tail still arrives.
        });
        let mut got = Vec::new();
        reader(rx).read_to_end(&mut got).await.unwrap();
        writer.join().unwrap();
        assert_eq!(got, expect);
    }

    #[tokio::test]
    async fn a_failed_snapshot_fails_the_upload_read() {
        let (mut sink, tx, rx) = sink();
        let writer = std::thread::spawn(move || sink.write_all(&[1, 2, 3]).unwrap());
        writer.join().unwrap();
        tx.send(Err(io::Error::other("store failed")))
            .await
            .unwrap();
        drop(tx);
        let mut got = Vec::new();
        let e = reader(rx).read_to_end(&mut got).await.expect_err("fails");
        assert!(e.to_string().contains("store failed"), "{e}");
    }

    #[tokio::test]
    async fn a_source_reads_what_is_fed_and_sees_errors() {
        let (mut src, tx) = source();
        let data: Vec<u8> = (0..(2 * CHUNK + 5)).map(|i| (i % 13) as u8).collect();
        let expect = data.clone();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            src.read_to_end(&mut out).map(|_| out)
        });
        let n = feed(&data[..], tx).await.unwrap();
        assert_eq!(n, expect.len() as u64);
        assert_eq!(reader.join().unwrap().unwrap(), expect);

        struct Broken(bool);
        impl tokio::io::AsyncRead for Broken {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<io::Result<()>> {
                if self.0 {
                    return std::task::Poll::Ready(Err(io::Error::other("digest mismatch")));
                }
                self.0 = true;
                buf.put_slice(b"abc");
                std::task::Poll::Ready(Ok(()))
            }
        }
        let (mut src, tx) = source();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            src.read_to_end(&mut out)
        });
        assert!(feed(Broken(false), tx).await.is_err());
        let e = reader
            .join()
            .unwrap()
            .expect_err("the error reaches the restore");
        assert!(e.to_string().contains("digest mismatch"), "{e}");
    }
}
