-- Event ids are handed out at commit under a lock that no other role can take, and only at commit:
-- no statement of any role can make writers wait on it, and no mode a transaction sets can make
-- the lock outlive a commit.
--
-- Until now the lock was an advisory lock whose key anyone could read in these functions' source;
-- advisory locks need no privilege, so a role that could merely connect could take it and stall
-- every writer. And a transaction that ran `set constraints … immediate` took it at its statement
-- and held it until it ended, however long that was.

-- The event lock. emit takes it in exclusive mode; LOCK TABLE in that mode needs UPDATE, DELETE
-- or TRUNCATE on the table, which only its owner (the gateway's role) has. It never holds a row.
create table pgsse.event_lock ();

-- Outbox rows never outlive their transaction (pgsse.release deletes each as it fires), so they
-- need no WAL.
alter table pgsse.outbox set unlogged;

-- What pgsse.release needs to hand out ids only at commit: rows that ask when their trigger fires
-- (probe), rows whose trigger fired before commit and that wait for it (waiting, in the order n),
-- and the row whose trigger gives them their events at commit (flush). Only events have a kind.
alter table pgsse.outbox
    add column n       bigint generated always as identity,
    add column probe   boolean not null default false,
    add column waiting boolean not null default false,
    add column flush   boolean not null default false,
    alter column kind drop not null,
    alter column data drop not null;

-- The fraction of PostgreSQL's notification queue above which pgsse.emit stops notifying: the
-- setting pgsse.notify_queue_limit (`alter database … set pgsse.notify_queue_limit = 0.2`), or 0.5.
-- A value that is not a number between 0 and 1 counts as 0.5, so that no setting can fail a
-- commit. One expression, so that it is inlined where it is called.
create function pgsse.notify_queue_limit() returns float8
language sql stable
as $$
    select case when pg_catalog.current_setting('pgsse.notify_queue_limit', true)
                     operator(pg_catalog.~) '^(0(\.[0-9]*)?|1(\.0*)?|\.[0-9]+)$'
                then pg_catalog.current_setting('pgsse.notify_queue_limit', true)::pg_catalog.float8
                else 0.5 end
$$;

-- Records one event and notifies listeners, as in V8, under the event lock. Called only by
-- pgsse.release at commit. A notification is left out while PostgreSQL's notification queue is
-- fuller than pgsse.notify_queue_limit (a fraction, 0.5 by default): a session that LISTENs and
-- never reads (any role may) holds every notification until the queue is full, and then
-- pg_notify fails the commit. The gateway reads the event table every second anyway, so such an
-- event costs latency, never the writer's commit.
create or replace function pgsse.emit(
    kind text,
    data jsonb,
    recipient text default null,
    client_id text default null,
    session_id text default null,
    key text default null
) returns bigint
language plpgsql
as $$
declare
    event_id  bigint;
    committed timestamptz;
    epoch     float8;
    message   text;
    k         pgsse.notify_key;
begin
    lock table pgsse.event_lock in exclusive mode;
    select * into k from pgsse.notify_key;
    -- pgsse.transaction_mark(), which pgsse.firing_at_commit looks for.
    perform set_config('pgsse.locked',
        encode(sha256(k.key || convert_to(pg_current_xact_id()::text, 'UTF8')), 'hex'), true);
    event_id := nextval('pgsse.event_id_seq');
    committed := clock_timestamp();
    epoch := extract(epoch from committed);
    insert into pgsse.event (id, kind, payload, created_at, recipient, client_id, session_id, key)
    values (event_id, emit.kind, emit.data, committed, emit.recipient, emit.client_id,
            emit.session_id, emit.key);
    if pg_notification_queue_usage() >= pgsse.notify_queue_limit() then
        return event_id;
    end if;
    message := json_build_object('id', event_id, 'kind', emit.kind, 'data', emit.data,
                                 'at', epoch)::text;
    if coalesce(emit.recipient, emit.client_id, emit.session_id) is not null
       or octet_length(message) > 7000 then
        message := json_build_object('id', event_id, 'kind', emit.kind, 'at', epoch)::text;
    end if;
    perform pg_notify('pgsse', left(message, -1) || ', "sig" : "'
        || encode(sha256(k.outer_pad || sha256(k.inner_pad || convert_to(message, 'UTF8'))), 'hex')
        || '"}');
    return event_id;
end;
$$;

-- A mark of this transaction that only the owner of the notify key can make. pgsse.release and
-- pgsse.emit set the settings pgsse.locked (the transaction holds the event lock) and
-- pgsse.waiting (it has outbox rows waiting for commit) to it; any session may set those
-- settings, none can guess the mark.
create function pgsse.transaction_mark() returns text
language sql stable
as $$
    select encode(sha256(k.key || convert_to(pg_current_xact_id()::text, 'UTF8')), 'hex')
      from pgsse.notify_key k
$$;

-- Whether the trigger pgsse_publish fires at commit now, or earlier because the transaction made
-- it immediate (`set constraints all immediate`, or by name). PostgreSQL does not say, so ask it:
-- a probe row's pgsse_publish fires before its insert returns if and only if the constraint is
-- immediate now. At commit it is not: the probe's trigger then fires later in the same commit
-- and only removes the row. A transaction that holds the event lock is at commit.
create function pgsse.firing_at_commit(mark text) returns boolean
language plpgsql
as $$
begin
    if current_setting('pgsse.locked', true) = mark then
        return true;
    end if;
    perform set_config('pgsse.probe', '', true);
    insert into pgsse.outbox (probe) values (true);
    return current_setting('pgsse.probe', true) is distinct from 'fired';
end;
$$;

-- Gives each outbox row its event at commit, in the order the rows were written.
--
-- A row whose trigger fires before commit (the transaction made pgsse_publish immediate) waits
-- in the outbox, and a flush row is queued with pgsse_publish made deferred again for this
-- transaction; every later row joins the waiting ones until the flush fires at commit and gives
-- them their events. A flush that fires early (the transaction made it immediate in turn) queues
-- another. So ids, and the event lock, are taken only at commit, whatever the transaction sets.
create or replace function pgsse.release() returns trigger
language plpgsql
as $$
declare
    mark text;
    row  pgsse.outbox;
begin
    if new.probe then
        perform set_config('pgsse.probe', 'fired', true);
        delete from pgsse.outbox where ctid = new.ctid;
        return null;
    end if;
    mark := pgsse.transaction_mark();
    if new.flush and pgsse.firing_at_commit(mark) then
        for row in select * from pgsse.outbox where waiting order by n loop
            perform pgsse.emit(row.kind, row.data, row.recipient, row.client_id,
                               row.session_id, row.key);
        end loop;
        delete from pgsse.outbox where waiting or ctid = new.ctid;
        perform set_config('pgsse.waiting', '', true);
    elsif new.flush then
        set constraints pgsse.pgsse_publish deferred;
        insert into pgsse.outbox (flush) values (true);
        delete from pgsse.outbox where ctid = new.ctid;
    elsif current_setting('pgsse.waiting', true) = mark then
        update pgsse.outbox set waiting = true where ctid = new.ctid;
    elsif pgsse.firing_at_commit(mark) then
        perform pgsse.emit(new.kind, new.data, new.recipient, new.client_id, new.session_id,
                           new.key);
        delete from pgsse.outbox where ctid = new.ctid;
    else
        set constraints pgsse.pgsse_publish deferred;
        insert into pgsse.outbox (flush) values (true);
        update pgsse.outbox set waiting = true where ctid = new.ctid;
        perform set_config('pgsse.waiting', mark, true);
    end if;
    return null;
end;
$$;

-- Rows of board, path and notification become events through the outbox too, so that every
-- event gets its id in pgsse.release, at commit. The triggers that queue them fire at the end of
-- each statement, so that a transaction's events keep the order of its statements whatever else
-- it publishes; the usernames are read then.
create or replace function pgsse.capture() returns trigger
language plpgsql
as $$
declare
    kind      text;
    data      jsonb;
    recipient text;
begin
    if tg_table_name = 'board' then
        kind := 'newBoard';
        data := jsonb_build_object(
            'board_id', new.id,
            'board_name', new.name,
            'creator_username', (select username from app_user where id = new.creator_id));
    elsif tg_table_name = 'path' then
        kind := 'newPath';
        data := jsonb_build_object(
            'path_id', new.id,
            'board_id', new.board_id,
            'board_name', (select name from board where id = new.board_id),
            'user_username', (select username from app_user where id = new.user_id));
    elsif tg_table_name = 'notification' then
        kind := new.kind;
        data := new.data;
        recipient := (select username from app_user where id = new.user_id);
    else
        raise exception 'pgsse.capture() does not know table %', tg_table_name;
    end if;
    insert into pgsse.outbox (kind, data, recipient) values (kind, data, recipient);
    return null;
end;
$$;

-- The triggers were deferred constraint triggers; now they only queue, at each statement's end.
drop trigger pgsse_new_board on board;
drop trigger pgsse_new_path on path;
drop trigger pgsse_notification on notification;
create trigger pgsse_new_board after insert on board
    for each row execute function pgsse.capture();
create trigger pgsse_new_path after insert on path
    for each row execute function pgsse.capture();
create trigger pgsse_notification after insert on notification
    for each row execute function pgsse.capture();

-- CREATE OR REPLACE resets a function's settings: each gets its fixed search_path again, as in
-- V7, and the functions that act for other roles run as the owner of the event log.
do $$
declare
    app_schema text := (select relnamespace::regnamespace::text from pg_class
                         where oid = 'board'::regclass);
    path text := format('pg_catalog, pgsse, %s, pg_temp', app_schema);
begin
    execute format('alter function pgsse.capture() security definer set search_path = %s', path);
    execute format('alter function pgsse.release() security definer set search_path = %s', path);
    execute format('alter function pgsse.emit(text, jsonb, text, text, text, text) '
                   'set search_path = %s', path);
    execute format('alter function pgsse.firing_at_commit(text) set search_path = %s', path);
end;
$$;

revoke execute on function pgsse.firing_at_commit(text), pgsse.transaction_mark() from public;
