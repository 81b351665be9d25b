-- Notifications carry their event's commit time, "at" (seconds since the epoch: the
-- clock_timestamp() that pgsse.event.created_at records, taken at commit under the event lock),
-- so that the gateway can tell how long an event took from its commit to its first write to a
-- client. Everything else is as in V6: signed, and a reference only for an event for someone in
-- particular or one over a safe size.
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
    perform pg_advisory_xact_lock(7305011401);
    event_id := nextval('pgsse.event_id_seq');
    committed := clock_timestamp();
    epoch := extract(epoch from committed);
    insert into pgsse.event (id, kind, payload, created_at, recipient, client_id, session_id, key)
    values (event_id, emit.kind, emit.data, committed, emit.recipient, emit.client_id,
            emit.session_id, emit.key);
    message := json_build_object('id', event_id, 'kind', emit.kind, 'data', emit.data,
                                 'at', epoch)::text;
    if coalesce(emit.recipient, emit.client_id, emit.session_id) is not null
       or octet_length(message) > 7000 then
        message := json_build_object('id', event_id, 'kind', emit.kind, 'at', epoch)::text;
    end if;
    select * into k from pgsse.notify_key;
    perform pg_notify('pgsse', left(message, -1) || ', "sig" : "'
        || encode(sha256(k.outer_pad || sha256(k.inner_pad || convert_to(message, 'UTF8'))), 'hex')
        || '"}');
    return event_id;
end;
$$;

-- CREATE OR REPLACE resets the function's settings: its fixed search_path again, as in V7 (its
-- privileges are kept).
do $$
declare
    app_schema text := (select relnamespace::regnamespace::text from pg_class
                         where oid = 'board'::regclass);
begin
    execute format('alter function pgsse.emit(text, jsonb, text, text, text, text) '
                   'set search_path = %s', format('pg_catalog, pgsse, %s, pg_temp', app_schema));
end;
$$;
