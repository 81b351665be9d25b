-- Least privilege. Whoever runs the migrations (the gateway's role) owns schema pgsse; an
-- application role needs only the application's tables, USAGE on schema pgsse and EXECUTE on
-- pgsse.publish and pgsse.published (sql/grant_application_role.sql grants exactly that). The
-- event log holds targeted events, which are private data, so no other role may read or write
-- pgsse.event, pgsse.horizon, pgsse.outbox or pgsse.notify_key, nor call pgsse.emit.

-- The functions that act on the event log for other roles run as its owner (security definer):
-- the triggers that turn the application's rows into events, and publishing. Each has a fixed
-- search_path, pg_temp last, so that no caller can put objects of its own in their way; the
-- application's schema is the one its tables were created in.
do $$
declare
    app_schema text := (select relnamespace::regnamespace::text from pg_class
                         where oid = 'board'::regclass);
    path text := format('pg_catalog, pgsse, %s, pg_temp', app_schema);
begin
    execute format('alter function pgsse.capture() security definer set search_path = %s', path);
    execute format('alter function pgsse.release() security definer set search_path = %s', path);
    execute format('alter function pgsse.publish(text, jsonb, text, text, text, text) '
                   'security definer set search_path = %s', path);
    execute format('alter function pgsse.published(text) security definer set search_path = %s',
                   path);
    execute format('alter function pgsse.emit(text, jsonb, text, text, text, text) '
                   'set search_path = %s', path);
    execute format('alter function pgsse.prune(interval, bigint) set search_path = %s', path);
    execute format('alter function pgsse.check_kind(text) set search_path = %s', path);
    execute format('alter function pgsse.check_data(jsonb) set search_path = %s', path);
end;
$$;

-- Functions are executable by everyone unless revoked. Only the checks that the notification
-- table's constraints call stay so (any role that may insert a notification runs them);
-- publish and published are granted to application roles one by one.
revoke execute on function
    pgsse.emit(text, jsonb, text, text, text, text),
    pgsse.capture(),
    pgsse.release(),
    pgsse.publish(text, jsonb, text, text, text, text),
    pgsse.published(text),
    pgsse.prune(interval, bigint),
    pgsse.hmac_pad(bytea, integer),
    pgsse.rotate_notify_key()
from public;
