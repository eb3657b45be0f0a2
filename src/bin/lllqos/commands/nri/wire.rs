//! The two framings on an NRI connection, as pure functions over bytes.
//!
//! One Unix socket carries several byte streams (containerd/nri's `pkg/net/multiplex`): each
//! frame is a 4-byte connection id and a 4-byte payload length, big-endian, then the payload. The
//! plugin serves its ttrpc service on connection 1 and calls the runtime's on connection 2. Each
//! stream carries ttrpc messages: a 10-byte header (length 4, stream id 4, type 1, flags 1, all
//! big-endian) and a protobuf payload. A writer may split a message over frames, or put several in
//! one; [`Demux`] reassembles whatever arrives, however it was cut.
//!
//! Written here rather than taken from a crate: the ttrpc crates bring an async runtime and a
//! second protobuf library, and none speaks NRI's multiplexer; the framing is some sixty lines.

use std::collections::BTreeMap;

/// The multiplexed connection the plugin's service is on (the runtime calls it).
pub const PLUGIN_CONN: u32 = 1;
/// The multiplexed connection the runtime's service is on (the plugin calls it).
pub const RUNTIME_CONN: u32 = 2;

/// ttrpc message types.
pub const REQUEST: u8 = 1;
pub const RESPONSE: u8 = 2;

const MUX_HEADER: usize = 8;
const TTRPC_HEADER: usize = 10;
/// ttrpc's largest message (`messageLengthMax`, 4 MiB).
pub const MAX_MESSAGE: usize = 4 << 20;
/// The largest frame payload the multiplexer writes (a ttrpc header and its largest message).
const MAX_FRAME: usize = TTRPC_HEADER + MAX_MESSAGE;

/// A ttrpc message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub stream: u32,
    pub kind: u8,
    pub flags: u8,
    pub payload: Vec<u8>,
}

/// What cannot be read: the peer does not speak the protocol (or not this version of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub String);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The bytes of `message` on multiplexed connection `conn`: one ttrpc message, in as many frames
/// as its size needs.
pub fn encode(conn: u32, message: &Message) -> Result<Vec<u8>, WireError> {
    let length = u32::try_from(message.payload.len())
        .ok()
        .filter(|&n| n as usize <= MAX_MESSAGE)
        .ok_or_else(|| WireError(format!("a message of {} bytes", message.payload.len())))?;
    let mut stream = Vec::with_capacity(TTRPC_HEADER + message.payload.len());
    stream.extend_from_slice(&length.to_be_bytes());
    stream.extend_from_slice(&message.stream.to_be_bytes());
    stream.extend_from_slice(&[message.kind, message.flags]);
    stream.extend_from_slice(&message.payload);
    let mut bytes = Vec::with_capacity(stream.len() + MUX_HEADER);
    for chunk in stream.chunks(MAX_FRAME) {
        bytes.extend_from_slice(&conn.to_be_bytes());
        // A chunk is at most MAX_FRAME bytes, which fits.
        bytes.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        bytes.extend_from_slice(chunk);
    }
    Ok(bytes)
}

/// Reassembles the messages of each multiplexed connection from the bytes as they arrive.
#[derive(Debug, Default)]
pub struct Demux {
    /// Bytes of a frame not yet whole.
    input: Vec<u8>,
    /// Each connection's bytes not yet a whole message.
    streams: BTreeMap<u32, Vec<u8>>,
}

impl Demux {
    /// Takes `bytes`, read from the socket, and returns the messages they complete, with their
    /// connection, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<(u32, Message)>, WireError> {
        self.input.extend_from_slice(bytes);
        let mut start = 0;
        let mut messages = Vec::new();
        while let Some(header) = self.input.get(start..start + MUX_HEADER) {
            let conn = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
            let length = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            if length > MAX_FRAME {
                return Err(WireError(format!(
                    "a frame of {length} bytes (the most is {MAX_FRAME})"
                )));
            }
            let Some(payload) = self
                .input
                .get(start + MUX_HEADER..start + MUX_HEADER + length)
            else {
                break;
            };
            let stream = self.streams.entry(conn).or_default();
            stream.extend_from_slice(payload);
            start += MUX_HEADER + length;
            while let Some(message) = take_message(stream)? {
                messages.push((conn, message));
            }
        }
        self.input.drain(..start);
        Ok(messages)
    }
}

/// Takes one whole ttrpc message off the front of `stream`, if there is one.
fn take_message(stream: &mut Vec<u8>) -> Result<Option<Message>, WireError> {
    let Some(header) = stream.get(..TTRPC_HEADER) else {
        return Ok(None);
    };
    let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if length > MAX_MESSAGE {
        return Err(WireError(format!(
            "a ttrpc message of {length} bytes (the most is {MAX_MESSAGE})"
        )));
    }
    if stream.len() < TTRPC_HEADER + length {
        return Ok(None);
    }
    let message = Message {
        stream: u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
        kind: header[8],
        flags: header[9],
        payload: stream[TTRPC_HEADER..TTRPC_HEADER + length].to_vec(),
    };
    stream.drain(..TTRPC_HEADER + length);
    Ok(Some(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message(stream: u32, payload: Vec<u8>) -> Message {
        Message {
            stream,
            kind: REQUEST,
            flags: 0,
            payload,
        }
    }

    #[test]
    fn a_message_is_framed_as_the_multiplexer_and_ttrpc_write_it() {
        let bytes = encode(2, &message(1, b"ab".to_vec())).unwrap();
        assert_eq!(
            bytes,
            [
                0, 0, 0, 2, 0, 0, 0, 12, 0, 0, 0, 2, 0, 0, 0, 1, 1, 0, b'a', b'b'
            ]
        );
    }

    #[test]
    fn an_oversized_frame_or_message_is_an_error() {
        let mut demux = Demux::default();
        assert!(demux.feed(&[0, 0, 0, 1, 0xff, 0, 0, 0]).is_err());
        let mut demux = Demux::default();
        let huge = [0, 0, 0, 1, 0, 0, 0, 10, 0xff, 0, 0, 0, 0, 0, 0, 1, 1, 0];
        assert!(demux.feed(&huge).is_err());
        assert!(encode(1, &message(1, vec![0; MAX_MESSAGE + 1])).is_err());
    }

    proptest! {
        /// However the bytes of several messages on two connections are cut as they arrive, and
        /// however each stream is split into frames, the same messages come out, in order.
        #[test]
        fn messages_survive_any_cutting(
            payloads in prop::collection::vec((1u32..3, prop::collection::vec(any::<u8>(), 0..40)), 1..6),
            frame_cut in 1usize..25,
            cuts in prop::collection::vec(1usize..30, 1..20),
        ) {
            let sent: Vec<(u32, Message)> = payloads
                .into_iter()
                .enumerate()
                .map(|(i, (conn, payload))| (conn, message(i as u32 * 2 + 1, payload)))
                .collect();
            // Re-frame each message's ttrpc bytes in frames of at most `frame_cut` bytes.
            let mut bytes = Vec::new();
            for (conn, m) in &sent {
                let framed = encode(*conn, m).unwrap();
                let stream = &framed[MUX_HEADER..];
                for chunk in stream.chunks(frame_cut) {
                    bytes.extend_from_slice(&conn.to_be_bytes());
                    bytes.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
                    bytes.extend_from_slice(chunk);
                }
            }
            let mut demux = Demux::default();
            let mut got = Vec::new();
            let mut rest = &bytes[..];
            for cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (now, later) = rest.split_at((*cut).min(rest.len()));
                got.extend(demux.feed(now).unwrap());
                rest = later;
            }
            prop_assert_eq!(got, sent);
        }
    }
}
