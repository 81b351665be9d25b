-- The position of a read: an application that loads its state and then opens the stream needs to
-- know which events its read already reflects. pgsse.position() is the id of the newest event the
-- calling transaction's snapshot sees; a stream opened with `?lastEventId=<position>` then gets
-- exactly the events committed after what that snapshot saw: none it already reflects, none
-- missing.
--
--   begin isolation level repeatable read;
--   select … from orders …;
--   select pgsse.position();
--   commit;
--
-- Why "every event id at or below the position is visible to the snapshot, every id above it is
-- not" holds. Ids are handed out by pgsse.emit at commit, from pgsse.event_id_seq, while the
-- committing transaction holds pgsse.event_lock in exclusive mode (V9); a transaction keeps the
-- lock until it ends, and PostgreSQL releases a transaction's locks only after it has left the
-- ProcArray, that is after its commit became visible to every snapshot taken from then on
-- (CommitTransaction: RecordTransactionCommit, ProcArrayEndTransaction, then the locks; COMMIT
-- PREPARED likewise). So if a transaction A gets ids before a transaction B, A's commit is
-- visible before B even has its ids. Let P be the newest id this snapshot sees, recorded by a
-- transaction T:
-- - An id below P belongs to T itself, or to a transaction that took the lock before T did and
--   whose commit was visible before T took it, so before T committed, so before this snapshot was
--   taken (it sees T): the snapshot sees it. (An id given to a transaction that then rolled back
--   is a gap that no one will ever see.)
-- - An id above P was given after T took the lock; this snapshot sees no event above P by P's
--   definition, and a snapshot never changes. The events above P are those committed after it.
-- The application's own rows change in the transaction that records their events, and a snapshot
-- sees a transaction's writes all or none: the read reflects exactly the events through P. The
-- sequence is no position: nextval is not transactional, and its last value counts ids of
-- transactions this snapshot does not see.
--
-- Pruning: pgsse.prune deletes a prefix of ids and raises pgsse.horizon's pruned_through in the
-- same transaction, and every id it deletes was visible to the prune's own snapshot, taken before
-- the prune committed. A snapshot that sees the new horizon saw every event through it committed;
-- when it sees no event at all (everything was pruned, or nothing was ever recorded) the position
-- is the horizon (0 for a log that never had an event), not the sequence, and a stream from there
-- misses nothing: it starts after the horizon without a resync.
--
-- Isolation. In READ COMMITTED every statement takes a new snapshot, so `select … from orders`
-- and a later `select pgsse.position()` see different commits: the position may be newer than
-- the read, and events committed in between would be in neither the read nor the stream. The
-- read and the position must share one snapshot: one REPEATABLE READ (or SERIALIZABLE)
-- transaction, whose statements all see the snapshot of its first. One READ COMMITTED statement
-- that both reads and calls pgsse.position() would share one too, but the function cannot tell
-- that statement from one of its own, and a wrong position loses events silently: so it refuses
-- to run in READ COMMITTED (and READ UNCOMMITTED, which is the same in PostgreSQL), with a hint
-- that shows the pattern. The caller's fix is one line; a warning would go unread.
--
-- A transaction's own writes become events only when it commits, after any position it took: a
-- transaction that writes and then takes the position gets its own writes' events on the stream
-- again. Take it in a transaction that writes nothing (`read only`).
--
-- The function runs as the owner of the event log (security definer, with a fixed search_path)
-- so that an application role may call it without reading pgsse.event (sql/
-- grant_application_role.sql grants it). It is stable, so that it reads with its caller's
-- snapshot rather than one of its own.
create function pgsse.position() returns bigint
language plpgsql stable security definer
set search_path = pg_catalog, pgsse, pg_temp
as $$
begin
    if current_setting('transaction_isolation') in ('read committed', 'read uncommitted') then
        raise exception 'pgsse.position() needs a repeatable read or serializable transaction'
            using errcode = 'invalid_transaction_state',
                  detail = 'In read committed each statement sees the commits made before it '
                           'began, so a position taken in a statement of its own is not that '
                           'of what was read before it, and events committed in between would '
                           'be missed.',
                  hint = 'Read and take the position in one transaction: begin isolation level '
                         'repeatable read read only; select … from your tables; '
                         'select pgsse.position(); commit;';
    end if;
    return greatest((select max(id) from pgsse.event),
                    (select pruned_through from pgsse.horizon),
                    0);
end;
$$;

revoke execute on function pgsse.position() from public;
