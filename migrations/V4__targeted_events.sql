-- Events for one user or one stream, and events published from SQL.

-- Who an event is for. All null: everyone. A stream receives a targeted event only if it matches
-- every target that is set (its user's name, its clientId, its sessionId), so resume replays a
-- targeted event to its recipient only.
alter table pgsse.event
    add column recipient  text,
    add column client_id  text,
    add column session_id text;

-- Event kinds that SQL users may publish: a name a browser can listen for, and never one the
-- gateway itself sends (so nobody can spoof a newBoard).
create function pgsse.check_kind(kind text) returns boolean
language plpgsql immutable
as $$
begin
    if kind is null or kind !~ '^[A-Za-z0-9._-]{1,64}$' then
        raise exception 'invalid event kind %: use 1 to 64 letters, digits, ".", "_" or "-"',
            coalesce(quote_literal(kind), 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    if kind in ('newBoard', 'newPath', 'connection', 'resync') then
        raise exception 'event kind % is reserved for the gateway', quote_literal(kind)
            using errcode = 'invalid_parameter_value';
    end if;
    return true;
end;
$$;

-- Published data: a JSON object of at most 64 KiB.
create function pgsse.check_data(data jsonb) returns boolean
language plpgsql immutable
as $$
begin
    if data is null or jsonb_typeof(data) <> 'object' then
        raise exception 'event data must be a JSON object, not %', coalesce(jsonb_typeof(data), 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    if octet_length(data::text) > 65536 then
        raise exception 'event data is % bytes; the limit is 65536', octet_length(data::text)
            using errcode = 'invalid_parameter_value';
    end if;
    return true;
end;
$$;

-- emit gains the targets. The old two-argument form is dropped so calls stay unambiguous.
drop function pgsse.emit(text, jsonb);

create function pgsse.emit(
    kind text,
    data jsonb,
    recipient text default null,
    client_id text default null,
    session_id text default null
) returns bigint
language plpgsql
set search_path from current
as $$
declare
    event_id bigint;
    target   json;
    message  text;
begin
    perform pg_advisory_xact_lock(7305011401);
    event_id := nextval('pgsse.event_id_seq');
    insert into pgsse.event (id, kind, payload, created_at, recipient, client_id, session_id)
    values (event_id, emit.kind, emit.data, clock_timestamp(), emit.recipient, emit.client_id,
            emit.session_id);
    message := json_build_object('id', event_id, 'kind', emit.kind, 'data', emit.data)::text;
    if coalesce(emit.recipient, emit.client_id, emit.session_id) is not null then
        target := json_strip_nulls(json_build_object(
            'user', emit.recipient, 'client', emit.client_id, 'session', emit.session_id));
        message := json_build_object(
            'id', event_id, 'kind', emit.kind, 'data', emit.data, 'to', target)::text;
    end if;
    -- pg_notify raises at 8000 bytes, which would roll back the user's insert. Above a safe size,
    -- notify only a reference; the listener reads the full event from pgsse.event.
    if octet_length(message) > 7000 then
        message := json_build_object('id', event_id, 'kind', emit.kind)::text;
    end if;
    perform pg_notify('pgsse', message);
    return event_id;
end;
$$;

-- Notifications for one user: inserting a row from any SQL client sends an event named after
-- its kind, with its data, to that user's streams only.
create table notification (
    id         bigint generated always as identity primary key,
    user_id    bigint not null references app_user(id),
    kind       text not null default 'notification'
               constraint notification_kind_valid check (pgsse.check_kind(kind)),
    data       jsonb not null default '{}'
               constraint notification_data_valid check (pgsse.check_data(data)),
    created_at timestamptz not null default now()
);

create index notification_user_id_idx on notification (user_id, id);

create or replace function pgsse.capture() returns trigger
language plpgsql
set search_path from current
as $$
begin
    if tg_table_name = 'board' then
        perform pgsse.emit('newBoard', jsonb_build_object(
            'board_id', new.id,
            'board_name', new.name,
            'creator_username', (select username from app_user where id = new.creator_id)));
    elsif tg_table_name = 'path' then
        perform pgsse.emit('newPath', jsonb_build_object(
            'path_id', new.id,
            'board_id', new.board_id,
            'board_name', (select name from board where id = new.board_id),
            'user_username', (select username from app_user where id = new.user_id)));
    elsif tg_table_name = 'notification' then
        perform pgsse.emit(new.kind, new.data,
            recipient => (select username from app_user where id = new.user_id));
    else
        raise exception 'pgsse.capture() does not know table %', tg_table_name;
    end if;
    return null;
end;
$$;

create constraint trigger pgsse_notification after insert on notification
    deferrable initially deferred for each row execute function pgsse.capture();

-- Events published with pgsse.publish wait here until their transaction commits, when a deferred
-- trigger gives them their commit-ordered id (and removes the row). Never holds rows otherwise.
create table pgsse.outbox (
    kind       text not null,
    data       jsonb not null,
    recipient  text,
    client_id  text,
    session_id text
);

create function pgsse.release() returns trigger
language plpgsql
set search_path from current
as $$
declare
    event_id bigint;
begin
    event_id := pgsse.emit(new.kind, new.data, new.recipient, new.client_id, new.session_id);
    perform set_config('pgsse.published_id', event_id::text, true);
    delete from pgsse.outbox where ctid = new.ctid;
    return null;
end;
$$;

create constraint trigger pgsse_publish after insert on pgsse.outbox
    deferrable initially deferred for each row execute function pgsse.release();

-- Publishes a custom or system event from any SQL client: to everyone, or to the user named
-- `recipient` (and/or the streams that declared `client_id` / `session_id`). The event is sent
-- when the transaction commits. Returns its id when the id is already known, that is when the
-- caller ran `set constraints pgsse.pgsse_publish immediate` first (the REST API does); null
-- otherwise, since ids are handed out at commit.
create function pgsse.publish(
    kind text,
    data jsonb,
    recipient text default null,
    client_id text default null,
    session_id text default null
) returns bigint
language plpgsql
set search_path from current
as $$
begin
    perform pgsse.check_kind(kind);
    perform pgsse.check_data(data);
    if recipient is not null and not exists (select 1 from app_user where username = recipient) then
        raise exception 'there is no user named %', quote_literal(recipient)
            using errcode = 'no_data_found';
    end if;
    perform set_config('pgsse.published_id', '', true);
    insert into pgsse.outbox values (kind, data, recipient, client_id, session_id);
    return nullif(current_setting('pgsse.published_id', true), '')::bigint;
end;
$$;
