-- Retention: the gateway prunes old events on a timer with pgsse.prune. Clients resuming from
-- before what is retained are told so (an SSE `resync` event) instead of silently missing events.

-- How far the event log has been pruned: every event with an id at or below pruned_through is
-- gone. Kept exactly (rather than guessed from min(id), which rolled-back ids would blur) so a
-- resuming client knows whether anything it missed was lost. One row.
create table pgsse.horizon (
    singleton      boolean primary key default true constraint horizon_single_row check (singleton),
    pruned_through bigint not null default 0
);
insert into pgsse.horizon default values;

-- Pruning by age looks up the newest event older than the limit.
create index event_created_at_idx on pgsse.event (created_at);

-- Stamp events with the commit-time clock rather than now() (the transaction's start), so that
-- created_at grows with id even for long transactions and pruning by age removes a prefix of ids.
create or replace function pgsse.emit(kind text, data jsonb) returns bigint
language plpgsql
set search_path from current
as $$
declare
    event_id bigint;
    message  text;
begin
    perform pg_advisory_xact_lock(7305011401);
    event_id := nextval('pgsse.event_id_seq');
    insert into pgsse.event (id, kind, payload, created_at)
    values (event_id, emit.kind, emit.data, clock_timestamp());
    message := json_build_object('id', event_id, 'kind', emit.kind, 'data', emit.data)::text;
    -- pg_notify raises at 8000 bytes, which would roll back the user's insert. Above a safe size,
    -- notify only a reference; the listener reads the full event from pgsse.event.
    if octet_length(message) > 7000 then
        message := json_build_object('id', event_id, 'kind', emit.kind)::text;
    end if;
    perform pg_notify('pgsse', message);
    return event_id;
end;
$$;

-- Deletes events older than max_age, and all but the newest max_events, always a prefix of ids;
-- returns how many were deleted. Safe to run from several gateways at once (the horizon row
-- serializes them) and from psql: select pgsse.prune('7 days', 1000000);
create function pgsse.prune(max_age interval, max_events bigint) returns bigint
language plpgsql
set search_path from current
as $$
declare
    through bigint;
    deleted bigint;
begin
    through := greatest(
        (select max(id) - max_events from pgsse.event),
        (select max(id) from pgsse.event where created_at < clock_timestamp() - max_age),
        0);
    update pgsse.horizon
       set pruned_through = greatest(pruned_through, through)
    returning pruned_through into through;
    delete from pgsse.event where id <= through;
    get diagnostics deleted = row_count;
    return deleted;
end;
$$;
