//! A connection's byte stream under watch: what tungstenite cannot tell us.
//!
//! [`Watched`] sits between the socket (after TLS) and tungstenite. On the
//! read side it follows the client's WebSocket frame headers, without
//! copying, to know whether a message has been begun and not finished (a
//! partial frame, or a fragmented message waiting for its last frame; the
//! control frames a client may interleave do not finish it). On the write
//! side it notes when the socket stops taking bytes. The connection reads
//! both from the shared [`IoWatch`]: a message or a write stalled for longer
//! than the stall timeout drops the connection, and while writes are blocked
//! the reader stops reading, so a peer that sends pings and never reads
//! cannot queue pongs.
//!
//! It can also replay bytes read before it took over (the request head the
//! server checked itself before handing the stream to tungstenite).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// What the connection's tasks learn from its stream.
#[derive(Debug)]
pub(crate) struct IoWatch {
    start: Instant,
    /// Milliseconds since `start` (plus one) when the message in progress
    /// began; 0: none.
    message_since: AtomicU64,
    /// Milliseconds since `start` (plus one) when writes stopped making
    /// progress; 0: they flow.
    write_blocked_since: AtomicU64,
    /// The reader has paused for a blocked write.
    pub blocked: Notify,
    /// Writes flow again.
    pub unblocked: Notify,
    flowing: AtomicBool,
}

impl IoWatch {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            message_since: AtomicU64::new(0),
            write_blocked_since: AtomicU64::new(0),
            blocked: Notify::new(),
            unblocked: Notify::new(),
            flowing: AtomicBool::new(true),
        }
    }

    fn stamp(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }

    fn at(&self, stamp: u64) -> Option<Instant> {
        (stamp != 0).then(|| self.start + Duration::from_millis(stamp - 1))
    }

    /// Whether the socket refuses bytes now.
    pub(crate) fn write_blocked(&self) -> bool {
        !self.flowing.load(Ordering::Acquire)
    }

    /// When the connection stalls if nothing changes: the earlier of the
    /// message in progress and the blocked write, plus `timeout`.
    pub(crate) fn stall_deadline(&self, timeout: Duration) -> Option<Instant> {
        let message = self.at(self.message_since.load(Ordering::Acquire));
        let write = self.at(self.write_blocked_since.load(Ordering::Acquire));
        message.into_iter().chain(write).min().map(|t| t + timeout)
    }

    /// What has stalled for `timeout` or longer, if anything.
    pub(crate) fn stalled(&self, timeout: Duration, now: Instant) -> Option<&'static str> {
        let over = |stamp: &AtomicU64| {
            self.at(stamp.load(Ordering::Acquire))
                .is_some_and(|t| now >= t + timeout)
        };
        if over(&self.message_since) {
            Some("a message was not finished in time")
        } else if over(&self.write_blocked_since) {
            Some("the client did not read for too long")
        } else {
            None
        }
    }

    fn set_blocked(&self, blocked: bool) {
        let was_flowing = self.flowing.swap(!blocked, Ordering::AcqRel);
        if blocked && was_flowing {
            self.write_blocked_since
                .store(self.stamp(), Ordering::Release);
            self.blocked.notify_one();
        } else if !blocked && !was_flowing {
            self.write_blocked_since.store(0, Ordering::Release);
            self.unblocked.notify_one();
        }
    }
}

/// Where the frame reader is in the client's byte stream.
#[derive(Debug)]
enum Phase {
    /// In the HTTP request head; `matched` bytes of `\r\n\r\n` seen.
    Head { matched: u8 },
    /// In a frame header, `have` of its bytes seen.
    Header { buf: [u8; 14], have: usize },
    /// In a frame's payload, `left` bytes to go.
    Payload { left: u64 },
}

/// Follows frame boundaries of a client's (masked) frames.
#[derive(Debug)]
struct Frames {
    phase: Phase,
    /// A data frame without FIN came; the message waits for its last frame.
    fragmented: bool,
}

impl Frames {
    fn new() -> Self {
        Self {
            phase: Phase::Head { matched: 0 },
            fragmented: false,
        }
    }

    /// Whether a message is begun and not finished.
    fn in_message(&self) -> bool {
        self.fragmented
            || !matches!(
                self.phase,
                Phase::Head { .. } | Phase::Header { have: 0, .. }
            )
    }

    /// Takes bytes read; returns whether a message ended among them.
    fn feed(&mut self, mut bytes: &[u8]) -> bool {
        let mut ended = false;
        while !bytes.is_empty() {
            match &mut self.phase {
                Phase::Head { matched } => {
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    let want = b"\r\n\r\n"[usize::from(*matched)];
                    *matched = if b == want {
                        *matched + 1
                    } else {
                        u8::from(b == b'\r')
                    };
                    if *matched == 4 {
                        self.phase = Phase::Header {
                            buf: [0; 14],
                            have: 0,
                        };
                    }
                }
                Phase::Header { buf, have } => {
                    buf[*have] = bytes[0];
                    *have += 1;
                    bytes = &bytes[1..];
                    if *have < 2 {
                        continue;
                    }
                    let len7 = buf[1] & 0x7f;
                    let ext = match len7 {
                        126 => 2,
                        127 => 8,
                        _ => 0,
                    };
                    let mask = if buf[1] & 0x80 != 0 { 4 } else { 0 };
                    if *have < 2 + ext + mask {
                        continue;
                    }
                    let len = match ext {
                        0 => u64::from(len7),
                        2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
                        _ => u64::from_be_bytes(buf[2..10].try_into().unwrap_or([0; 8])),
                    };
                    let fin = buf[0] & 0x80 != 0;
                    let opcode = buf[0] & 0x0f;
                    if opcode < 8 {
                        // Text, binary or continuation: the message goes on
                        // until a frame with FIN.
                        self.fragmented = !fin;
                    }
                    self.phase = if len == 0 {
                        Phase::Header {
                            buf: [0; 14],
                            have: 0,
                        }
                    } else {
                        Phase::Payload { left: len }
                    };
                }
                Phase::Payload { left } => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                    if *left == 0 {
                        self.phase = Phase::Header {
                            buf: [0; 14],
                            have: 0,
                        };
                    }
                }
            }
            if !self.in_message() {
                ended = true;
            }
        }
        ended
    }
}

/// A stream under watch; see the module's documentation.
#[derive(Debug)]
pub(crate) struct Watched<S> {
    inner: S,
    watch: std::sync::Arc<IoWatch>,
    frames: Frames,
    /// Bytes to hand out before reading `inner`, and how many are handed out.
    prefix: Vec<u8>,
    prefix_at: usize,
}

impl<S> Watched<S> {
    /// Watches `inner`; `prefix` was read from it already and comes first.
    pub(crate) fn new(inner: S, prefix: Vec<u8>, watch: std::sync::Arc<IoWatch>) -> Self {
        Self {
            inner,
            watch,
            frames: Frames::new(),
            prefix,
            prefix_at: 0,
        }
    }
}

/// Follows `bytes` just read and updates when the message in progress began.
fn observe(frames: &mut Frames, w: &IoWatch, bytes: &[u8]) {
    let ended = frames.feed(bytes);
    if !frames.in_message() {
        w.message_since.store(0, Ordering::Release);
    } else if ended || w.message_since.load(Ordering::Acquire) == 0 {
        w.message_since.store(w.stamp(), Ordering::Release);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix_at < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.prefix_at);
            let start = this.prefix_at;
            buf.put_slice(&this.prefix[start..start + n]);
            this.prefix_at += n;
            if this.prefix_at == this.prefix.len() {
                this.prefix = Vec::new();
                this.prefix_at = 0;
            }
            let filled = buf.filled();
            observe(&mut this.frames, &this.watch, &filled[filled.len() - n..]);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            let filled = buf.filled();
            if filled.len() > before {
                observe(&mut this.frames, &this.watch, &filled[before..]);
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, data);
        match &poll {
            Poll::Pending => this.watch.set_blocked(true),
            Poll::Ready(Ok(n)) if *n > 0 => this.watch.set_blocked(false),
            _ => {}
        }
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut h = vec![if fin { 0x80 } else { 0 } | opcode];
        match len {
            0..=125 => h.push(0x80 | len as u8),
            126..=0xffff => {
                h.push(0x80 | 126);
                h.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                h.push(0x80 | 127);
                h.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        h.extend_from_slice(&[1, 2, 3, 4]);
        h
    }

    #[test]
    fn follows_messages_across_reads() {
        let mut f = Frames::new();
        f.feed(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r");
        assert!(matches!(f.phase, Phase::Head { matched: 3 }));
        f.feed(b"\n");
        assert!(matches!(f.phase, Phase::Header { have: 0, .. }));
        assert!(!f.in_message());
        // A 300-byte text frame in three reads.
        let mut frame = header(true, 1, 300);
        frame.extend(std::iter::repeat_n(b'a', 300));
        assert!(!f.feed(&frame[..3]));
        assert!(f.in_message());
        assert!(!f.feed(&frame[3..100]));
        assert!(f.feed(&frame[100..]));
        assert!(!f.in_message());
        // A fragmented message with a ping in between stays in progress.
        let mut first = header(false, 1, 2);
        first.extend_from_slice(b"ab");
        f.feed(&first);
        assert!(f.in_message());
        let ping = header(true, 9, 0);
        f.feed(&ping);
        assert!(f.in_message());
        let mut last = header(true, 0, 1);
        last.push(b'c');
        assert!(f.feed(&last));
        assert!(!f.in_message());
        // 64-bit lengths.
        let big = header(true, 2, 70_000);
        f.feed(&big);
        assert!(matches!(f.phase, Phase::Payload { left: 70_000 }));
    }
}
