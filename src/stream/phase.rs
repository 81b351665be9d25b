//! The phases of a stream, in the order it goes through them: it opens; waits for the database
//! if the hub has not started yet; catches up from history if it resumes or asked for some;
//! follows live frames; and goes back to catching up whenever it falls behind them, or ends when
//! it has been behind for too long. [`super::cursor`] moves a stream from one to the next.

/// Where a stream is: what it does once the events it has queued are gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Not polled yet: its opening events are still to be queued; then it goes on to `then`.
    Opening { then: Next },
    /// The database had not been reached when the stream opened: it waits for the hub to
    /// start. A stream that resumes then catches up from its own id; a live one is told then
    /// the position it starts after.
    AwaitingStart { resuming: bool },
    /// Reading history (the ring, or the table) before it follows live frames.
    CatchingUp,
    /// Following live frames.
    Following,
    /// Behind the live stream for too long: it ends once what is queued has gone, and the
    /// client resumes from there.
    Ending,
}

/// The phase a stream goes on to after its opening, as decided when it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Next {
    AwaitingStart { resuming: bool },
    CatchingUp,
    Following,
}

impl From<Next> for Phase {
    fn from(next: Next) -> Phase {
        match next {
            Next::AwaitingStart { resuming } => Phase::AwaitingStart { resuming },
            Next::CatchingUp => Phase::CatchingUp,
            Next::Following => Phase::Following,
        }
    }
}

/// What a stream does after its opening: waits for the database if the hub has not started,
/// catches up if it resumes or asked for history, and otherwise follows live frames at once.
pub(super) fn after_opening(started: bool, resuming: bool, history: i64) -> Next {
    match (started, resuming) {
        (false, resuming) => Next::AwaitingStart { resuming },
        (true, true) => Next::CatchingUp,
        (true, false) if history > 0 => Next::CatchingUp,
        (true, false) => Next::Following,
    }
}
