//! The close code a server sent, as it sent it. tungstenite replaces an
//! invalid code (999, 1005, 5000, …) with 1002 "Protocol violation" before
//! the application sees the close frame; a [`CloseCodeSniffer`] follows
//! the frames in the bytes read from the socket (below the WebSocket
//! layer, above TLS) and keeps the code of the last close frame, so the
//! client reports what the server really sent.

/// Follows WebSocket frame boundaries in the bytes a server sends (after
/// the upgrade's HTTP response, which it skips), and keeps the code of the
/// last close frame. Cheap: a few steps a frame header; payloads are
/// skipped by length.
#[derive(Clone, Debug, Default)]
pub struct CloseCodeSniffer {
    /// The HTTP response is over (its blank line was seen).
    upgraded: bool,
    /// The last bytes of the HTTP response, to find its blank line.
    tail: u32,
    header: [u8; 14],
    /// Header bytes read so far; the header's length once known.
    have: usize,
    need: usize,
    /// Payload bytes of the current frame still to skip.
    left: u64,
    /// While in a close frame's payload: its first bytes.
    close: Option<([u8; 2], usize)>,
    code: Option<u16>,
}

impl CloseCodeSniffer {
    /// Follows `bytes`, the next bytes read from the server.
    pub fn observe(&mut self, mut bytes: &[u8]) {
        while !self.upgraded {
            let Some((&b, rest)) = bytes.split_first() else {
                return;
            };
            bytes = rest;
            self.tail = (self.tail << 8) | u32::from(b);
            self.upgraded = self.tail == u32::from_be_bytes(*b"\r\n\r\n");
        }
        while !bytes.is_empty() {
            if self.left > 0 {
                let n = bytes
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                if let Some((code, seen)) = &mut self.close {
                    let take = (2 - *seen).min(n);
                    code[*seen..*seen + take].copy_from_slice(&bytes[..take]);
                    *seen += take;
                    if *seen == 2 {
                        self.code = Some(u16::from_be_bytes(*code));
                        self.close = None;
                    }
                }
                self.left -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            self.header[self.have] = bytes[0];
            self.have += 1;
            bytes = &bytes[1..];
            if self.have == 2 {
                let extended = match self.header[1] & 0x7f {
                    126 => 2,
                    127 => 8,
                    _ => 0,
                };
                let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
                self.need = 2 + extended + mask;
            }
            if self.have >= 2 && self.have == self.need {
                let len = match self.header[1] & 0x7f {
                    126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                    127 => u64::from_be_bytes(self.header[2..10].try_into().unwrap_or([0; 8])),
                    short => u64::from(short),
                };
                let masked = self.header[1] & 0x80 != 0;
                self.close =
                    (self.header[0] & 0x0f == 0x8 && !masked && len >= 2).then_some(([0; 2], 0));
                self.left = len;
                self.have = 0;
                self.need = 0;
            }
        }
    }

    /// The code of the last close frame read, as the server sent it.
    pub fn close_code(&self) -> Option<u16> {
        self.code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n <= 0xffff => {
                out.push(126);
                out.extend((n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend((n as u64).to_be_bytes());
            }
        }
        out.extend(payload);
        out
    }

    #[test]
    fn finds_the_close_code_after_frames_of_every_length_in_any_chunks() {
        let mut wire = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
        wire.extend(frame(0x1, b"{\"type\":\"price\"}"));
        wire.extend(frame(0x1, &vec![b'x'; 300]));
        wire.extend(frame(0x9, b"ping"));
        wire.extend(frame(0x2, &vec![0; 70_000]));
        let mut close = 999u16.to_be_bytes().to_vec();
        close.extend(b"bye");
        wire.extend(frame(0x8, &close));
        for chunk in [1, 2, 3, 7, 64, 1 << 20] {
            let mut sniffer = CloseCodeSniffer::default();
            for piece in wire.chunks(chunk) {
                sniffer.observe(piece);
            }
            assert_eq!(sniffer.close_code(), Some(999), "chunks of {chunk}");
        }
        let mut sniffer = CloseCodeSniffer::default();
        sniffer.observe(&wire[..wire.len() - 5]);
        assert_eq!(sniffer.close_code(), None, "no close frame yet");
    }
}
