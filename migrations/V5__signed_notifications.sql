-- Signed notifications. NOTIFY needs no privilege: any role that can connect may send on channel
-- pgsse. So every notification pgsse.emit sends is signed (HMAC-SHA256) with a key that only the
-- gateway's role can read, and the listener publishes a notification's event only if its
-- signature verifies. Anything else is dropped, counted and logged; the event table, where only
-- the gateway's own functions write, stays the only source of events.

-- The signing key, made once from PostgreSQL's strong random source. Only the owner of schema
-- pgsse (the gateway's role) can read it; superusers can, too, but they can write pgsse.event
-- anyway. HMAC's inner and outer padded keys are kept beside it so that signing costs two sha256
-- calls and no byte-by-byte work.
create table pgsse.notify_key (
    singleton boolean primary key default true constraint notify_key_single_row check (singleton),
    key       bytea not null constraint notify_key_length check (length(key) = 32),
    inner_pad bytea not null,
    outer_pad bytea not null
);

-- HMAC's padded key for a key of at most 64 bytes: the key, zero-filled to sha256's block of 64
-- bytes, each byte xor `pad` (0x36 inner, 0x5c outer).
create function pgsse.hmac_pad(key bytea, pad integer) returns bytea
language plpgsql immutable
set search_path = pg_catalog
as $$
declare
    block bytea := key || decode(repeat('00', 64 - length(key)), 'hex');
begin
    for i in 0..63 loop
        block := set_byte(block, i, get_byte(block, i) # pad);
    end loop;
    return block;
end;
$$;

-- Makes a new key (the first one, or one that replaces it): select pgsse.rotate_notify_key();
-- Running gateways read it again when a notification fails to verify under the key they have.
create function pgsse.rotate_notify_key() returns void
language sql
set search_path = pg_catalog
as $$
    insert into pgsse.notify_key (key, inner_pad, outer_pad)
    select k, pgsse.hmac_pad(k, 54), pgsse.hmac_pad(k, 92)
      from (select sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())) as k) random
        on conflict (singleton) do update
       set key = excluded.key, inner_pad = excluded.inner_pad, outer_pad = excluded.outer_pad;
$$;

select pgsse.rotate_notify_key();

-- Records one event and notifies listeners, as before, but every notification is now signed, and
-- some travel as a reference only ({"id", "kind"}; the listener reads the event from the table):
-- an event for someone in particular, since any role may LISTEN and its data must not travel on
-- the channel, and a message over a safe size, since pg_notify raises at 8000 bytes, which would
-- roll back the user's insert. The signature is the object's last member, over the object's text
-- without it: payload = message minus its final "}" || ', "sig" : "' || hex || '"}'.
create or replace function pgsse.emit(
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
    message  text;
    k        pgsse.notify_key;
begin
    perform pg_advisory_xact_lock(7305011401);
    event_id := nextval('pgsse.event_id_seq');
    insert into pgsse.event (id, kind, payload, created_at, recipient, client_id, session_id)
    values (event_id, emit.kind, emit.data, clock_timestamp(), emit.recipient, emit.client_id,
            emit.session_id);
    message := json_build_object('id', event_id, 'kind', emit.kind, 'data', emit.data)::text;
    if coalesce(emit.recipient, emit.client_id, emit.session_id) is not null
       or octet_length(message) > 7000 then
        message := json_build_object('id', event_id, 'kind', emit.kind)::text;
    end if;
    -- HMAC-SHA256 of the message's UTF-8 bytes, written out here rather than in a function of
    -- its own: a call from PL/pgSQL into an SQL function tripled the cost of signing.
    select * into k from pgsse.notify_key;
    perform pg_notify('pgsse', left(message, -1) || ', "sig" : "'
        || encode(sha256(k.outer_pad || sha256(k.inner_pad || convert_to(message, 'UTF8'))), 'hex')
        || '"}');
    return event_id;
end;
$$;
