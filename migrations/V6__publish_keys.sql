-- Finding a published event by a key of the caller's own. pgsse.publish used to return the event's
-- id only when the caller had run `set constraints pgsse.pgsse_publish immediate`, which takes the
-- id at once and so holds the event lock until that transaction commits: every other writer of a
-- board, path or notification waited behind it. Now ids are always taken at commit, and a caller
-- that needs its event's id names the event with a key and asks pgsse.published(key) after the
-- commit.

-- The caller's key for an event, unique among the retained events. Null for most events.
alter table pgsse.event add column key text;
create unique index event_key_idx on pgsse.event (key) where key is not null;

alter table pgsse.outbox add column key text;

-- emit gains the key (the others keep their places, so callers stay as they were).
drop function pgsse.emit(text, jsonb, text, text, text);

create function pgsse.emit(
    kind text,
    data jsonb,
    recipient text default null,
    client_id text default null,
    session_id text default null,
    key text default null
) returns bigint
language plpgsql
set search_path from current
as $$
declare
    event_id bigint;
    message  text;
    k        pgsse.notify_key;
begin
    perform pg_advisory_xact_lock(7305011401);
    event_id := nextval('pgsse.event_id_seq');
    insert into pgsse.event (id, kind, payload, created_at, recipient, client_id, session_id, key)
    values (event_id, emit.kind, emit.data, clock_timestamp(), emit.recipient, emit.client_id,
            emit.session_id, emit.key);
    -- Notified as in V5: signed, and as a reference only for an event for someone in particular
    -- or one over a safe size.
    message := json_build_object('id', event_id, 'kind', emit.kind, 'data', emit.data)::text;
    if coalesce(emit.recipient, emit.client_id, emit.session_id) is not null
       or octet_length(message) > 7000 then
        message := json_build_object('id', event_id, 'kind', emit.kind)::text;
    end if;
    select * into k from pgsse.notify_key;
    perform pg_notify('pgsse', left(message, -1) || ', "sig" : "'
        || encode(sha256(k.outer_pad || sha256(k.inner_pad || convert_to(message, 'UTF8'))), 'hex')
        || '"}');
    return event_id;
end;
$$;

create or replace function pgsse.release() returns trigger
language plpgsql
set search_path from current
as $$
begin
    perform pgsse.emit(new.kind, new.data, new.recipient, new.client_id, new.session_id, new.key);
    delete from pgsse.outbox where ctid = new.ctid;
    return null;
end;
$$;

-- Publishes a custom or system event from any SQL client: to everyone, or to the user named
-- `recipient` (and/or the streams that declared `client_id` / `session_id`). The event is sent,
-- and gets its id, when the transaction commits; `key` (1 to 200 characters, unused by any
-- retained event) names it for pgsse.published. Returns nothing: the id is not known yet.
drop function pgsse.publish(text, jsonb, text, text, text);

create function pgsse.publish(
    kind text,
    data jsonb,
    recipient text default null,
    client_id text default null,
    session_id text default null,
    key text default null
) returns void
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
    if key is not null then
        if length(key) not between 1 and 200 then
            raise exception 'an event key is 1 to 200 characters, not %', length(key)
                using errcode = 'invalid_parameter_value';
        end if;
        -- Another transaction may take the same key before this one commits; then the later
        -- commit fails on event_key_idx.
        if exists (select 1 from pgsse.event e where e.key = publish.key)
           or exists (select 1 from pgsse.outbox o where o.key = publish.key) then
            raise exception 'event key % is already used', quote_literal(key)
                using errcode = 'unique_violation';
        end if;
    end if;
    insert into pgsse.outbox values (kind, data, recipient, client_id, session_id, key);
end;
$$;

-- The id of the event published with `key`, once its transaction has committed; null before
-- that, or once retention has pruned it.
create function pgsse.published(key text) returns bigint
language sql stable
set search_path from current
as $$
    select id from pgsse.event e where e.key = published.key
$$;
