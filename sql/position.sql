-- The event log's position in this transaction's snapshot: the newest event it sees, or the
-- horizon when it sees none (migrations/V10__position.sql says why a stream resumed from there
-- gets exactly the events this transaction's reads do not reflect).
select pgsse.position() as position
