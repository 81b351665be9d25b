-- A recipient is a user as their token names them: any string, whether or not an app_user row
-- has that name. app_user is the demo's table; an application's users live elsewhere (or only
-- at its identity provider), and publish refused a recipient it did not know, rolling back the
-- application's own write with it. The other checks stay as in V6.
create or replace function pgsse.publish(
    kind text,
    data jsonb,
    recipient text default null,
    client_id text default null,
    session_id text default null,
    key text default null
) returns void
language plpgsql
as $$
begin
    perform pgsse.check_kind(kind);
    perform pgsse.check_data(data);
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
    insert into pgsse.outbox (kind, data, recipient, client_id, session_id, key)
    values (kind, data, recipient, client_id, session_id, key);
end;
$$;

-- CREATE OR REPLACE resets the function's settings: it runs as the owner of the event log again,
-- with its fixed search_path, as in V7.
do $$
declare
    app_schema text := (select relnamespace::regnamespace::text from pg_class
                         where oid = 'board'::regclass);
    path text := format('pg_catalog, pgsse, %s, pg_temp', app_schema);
begin
    execute format('alter function pgsse.publish(text, jsonb, text, text, text, text) '
                   'security definer set search_path = %s', path);
end;
$$;

-- Replacing a function keeps its grants (sql/grant_application_role.sql's included); revoked from
-- public again all the same, as in V7.
revoke execute on function pgsse.publish(text, jsonb, text, text, text, text) from public;
