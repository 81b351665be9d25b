-- Least privilege for an application role, here pgsse_app: it may use the application's tables,
-- publish events and take the position of its reads, and cannot read or write the event log
-- (pgsse.event, which holds targeted events, pgsse.horizon, pgsse.outbox, pgsse.notify_key) nor
-- call pgsse.emit. Run it as the gateway's role after the gateway has migrated the database:
--   psql "$DATABASE_URL" -f sql/grant_application_role.sql
grant usage on schema pgsse to pgsse_app;
grant select, insert, update, delete on app_user, board, path, notification to pgsse_app;
grant execute on function
    pgsse.publish(text, jsonb, text, text, text, text),
    pgsse.published(text),
    pgsse.position()
to pgsse_app;
