//! A chunk of one stream's output: the bytes written in one go.

use bytes::{Bytes, BytesMut};

use super::stream::Step;

/// Bytes to write in one go: a lone frame's shared bytes as they are, several frames copied
/// together.
#[derive(Default)]
pub(super) struct Chunk {
    first: Option<Bytes>,
    joined: Option<BytesMut>,
    /// Events (not keep-alives or position frames) in the chunk.
    pub(super) events: u64,
}

impl Chunk {
    pub(super) fn push_event(&mut self, bytes: Bytes) {
        self.events += 1;
        self.push(bytes);
    }

    pub(super) fn push(&mut self, bytes: Bytes) {
        match (&mut self.first, &mut self.joined) {
            (None, _) => self.first = Some(bytes),
            (Some(_), Some(joined)) => joined.extend_from_slice(&bytes),
            (Some(first), None) => {
                let mut joined = BytesMut::with_capacity(first.len() + bytes.len());
                joined.extend_from_slice(first);
                joined.extend_from_slice(&bytes);
                self.joined = Some(joined);
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        match (&self.first, &self.joined) {
            (_, Some(joined)) => joined.len(),
            (Some(first), None) => first.len(),
            (None, None) => 0,
        }
    }

    pub(super) fn into_step(self) -> Step {
        match (self.first, self.joined) {
            (_, Some(joined)) => Step::Send(joined.freeze()),
            (Some(first), None) => Step::Send(first),
            (None, None) => Step::Continue,
        }
    }
}
