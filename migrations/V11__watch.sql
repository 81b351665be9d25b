-- Any table's changes as events. `pgsse.watch('orders', kind => 'order', …)` puts a trigger on the
-- table whose function, generated from the definition, queues one event per changed row in
-- pgsse.outbox, exactly as the triggers of board, path and notification do: so each event gets
-- its commit-ordered id at commit in pgsse.release, is recorded in pgsse.event, signed, notified,
-- resumable, pruned and delivered to every gateway like any other.
--
-- An event may be for several users: the event table records their names once, in `recipients`
-- (beside `recipient`, the one user of a published event), and each gateway delivers it to the
-- streams of exactly those users. And an event may have a topic, which `?topic=` on the stream
-- filters by.

alter table pgsse.event
    add column recipients text[],
    add column topic      text;

alter table pgsse.outbox
    add column recipients text[],
    add column topic      text;

-- emit gains the recipients and the topic (the others keep their places). An event for someone in
-- particular is notified as a reference only, as before; an event for everyone carries its topic
-- in the notification, when it has one.
drop function pgsse.emit(text, jsonb, text, text, text, text);

create function pgsse.emit(
    kind text,
    data jsonb,
    recipient text default null,
    client_id text default null,
    session_id text default null,
    key text default null,
    recipients text[] default null,
    topic text default null
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
    insert into pgsse.event (id, kind, payload, created_at, recipient, client_id, session_id, key,
                             recipients, topic)
    values (event_id, emit.kind, emit.data, committed, emit.recipient, emit.client_id,
            emit.session_id, emit.key, emit.recipients, emit.topic);
    if pg_notification_queue_usage() >= pgsse.notify_queue_limit() then
        return event_id;
    end if;
    if coalesce(emit.recipient, emit.client_id, emit.session_id) is not null
       or emit.recipients is not null then
        message := json_build_object('id', event_id, 'kind', emit.kind, 'at', epoch)::text;
    else
        if emit.topic is null then
            message := json_build_object('id', event_id, 'kind', emit.kind, 'data', emit.data,
                                         'at', epoch)::text;
        else
            message := json_build_object('id', event_id, 'kind', emit.kind, 'data', emit.data,
                                         'at', epoch, 'topic', emit.topic)::text;
        end if;
        if octet_length(message) > 7000 then
            message := json_build_object('id', event_id, 'kind', emit.kind, 'at', epoch)::text;
        end if;
    end if;
    perform pg_notify('pgsse', left(message, -1) || ', "sig" : "'
        || encode(sha256(k.outer_pad || sha256(k.inner_pad || convert_to(message, 'UTF8'))), 'hex')
        || '"}');
    return event_id;
end;
$$;

-- As in V9, with the recipients and the topic passed on.
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
                               row.session_id, row.key, row.recipients, row.topic);
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
                           new.key, new.recipients, new.topic);
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

-- The recipients of a watched row's event, from a recipient expression that gives one username
-- or an array of them: the distinct names, nulls left out; null when there are none (the row then
-- makes no event: an event meant for someone is never sent to everyone).
create function pgsse.recipients(username text) returns text[]
language sql immutable
as $$
    select case when username is null then null else array[username] end
$$;

create function pgsse.recipients(usernames text[]) returns text[]
language sql immutable
as $$
    select nullif(array(select distinct u from unnest(usernames) u where u is not null order by u),
                  '{}')
$$;

-- What is watched, and how; one row per table. `function` is the trigger function generated for
-- it, named after the row's id so that it survives a dump and restore (which renumber tables).
create table pgsse.watches (
    id         bigint generated always as identity unique,
    "table"    regclass primary key,
    kind       text not null unique,
    operations text[] not null,
    columns    text[] not null,
    filter     text,
    recipient  text,
    topic      text,
    watched_at timestamptz not null default now()
);

-- Forgets the definitions of tables that were dropped (a dropped table takes its trigger with it,
-- but not its row here nor its function), so that their kinds are free again.
create function pgsse.forget_dropped_watches() returns void
language plpgsql
set search_path = pg_catalog, pgsse, pg_temp
as $$
declare
    watch_id bigint;
begin
    for watch_id in
        delete from pgsse.watches w
         where not exists (select 1 from pg_class c where c.oid = w."table")
        returning w.id
    loop
        execute format('drop function if exists pgsse.%I()', 'watch_' || watch_id);
    end loop;
end;
$$;

-- Refuses an expression of a watch definition that is not one SQL expression of the row's
-- columns of the right type, with the database's own reason. `template` places the expression
-- (%s) in a query over a row of the table, with no row: `r` in `from (select (null::t).*) r`.
create function pgsse.check_watch_expression(
    what text,
    expression text,
    relation regclass,
    template text,
    wanted text
) returns void
language plpgsql
-- The search_path of the generated trigger functions, so that names resolve here as there.
set search_path = pg_catalog, pgsse, pg_temp
as $$
begin
    if expression is null then
        return;
    end if;
    if btrim(expression) = '' or position(';' in expression) > 0 then
        raise exception 'the % must be one SQL expression over the row''s columns, not %',
            what, quote_literal(expression)
            using errcode = 'invalid_parameter_value';
    end if;
    begin
        execute format('select ' || template || ' from (select (null::%s).*) r where false',
                       expression || e'\n', relation);
    exception when others then
        raise exception 'the % % of table % is not %: %', what, quote_literal(expression),
            relation, wanted, sqlerrm
            using errcode = 'invalid_parameter_value';
    end;
end;
$$;

-- Watches a table: every insert, update or delete (as `operations` asks; insert only by default)
-- of a row the filter accepts makes one event named `kind`, whose data is
--   {"op": "insert" | "update" | "delete",
--    "row": {the chosen columns of the row: the new one, or the old one for a delete},
--    "changed": [for an update, the chosen columns whose value changed]}
-- An update that changes none of the chosen columns makes no event. `filter` is a boolean SQL
-- expression over the row's columns (the new row of an update); `recipient` an expression that
-- gives the username, or an array of usernames, that the event is for (everyone without it; a
-- row whose recipient is null or empty makes no event); `topic` an expression whose text is the
-- event's topic. Watching a table again replaces its definition; both take effect for the
-- transactions that commit after this one.
--
-- The expressions run, in the trigger, as the owner of schema pgsse (the gateway's role): they
-- are code of whoever may call this function, which is that role and those it grants it to.
-- Unqualified names in them are looked up in pg_catalog and pgsse only: qualify the
-- application's own functions.
create function pgsse.watch(
    "table" regclass,
    kind text,
    operations text[] default array['insert'],
    columns text[] default null,
    filter text default null,
    recipient text default null,
    topic text default null
) returns void
language plpgsql security definer
set search_path = pg_catalog, pgsse, pg_temp
as $$
#variable_conflict use_variable
declare
    relation  regclass := watch."table";
    relkind   "char";
    all_cols  text[];
    cols      text[];
    ops       text[];
    watch_id  bigint;
    fn        text;
    row_json  text;
    changed   text;
    selected  text;
    body      text;
begin
    if relation is null then
        raise exception 'pgsse.watch needs a table' using errcode = 'invalid_parameter_value';
    end if;
    perform pgsse.forget_dropped_watches();
    select c.relkind into relkind from pg_class c where c.oid = relation;
    if (select relnamespace from pg_class where oid = relation) = 'pgsse'::regnamespace then
        raise exception 'table % is one of pgsse''s own; watch the application''s tables',
            relation
            using errcode = 'invalid_parameter_value';
    end if;
    if relkind not in ('r', 'p') then
        raise exception '% is not a table; only tables can be watched', relation
            using errcode = 'wrong_object_type';
    end if;
    perform pgsse.check_kind(kind);
    if exists (select 1 from pgsse.watches w where w.kind = watch.kind and w."table" <> relation)
    then
        raise exception 'event kind % is already the kind of watched table %', quote_literal(kind),
            (select w."table" from pgsse.watches w where w.kind = watch.kind)
            using errcode = 'unique_violation';
    end if;

    ops := array(select distinct o from unnest(operations) o order by o);
    if operations is null or cardinality(ops) = 0 or array_position(ops, null) is not null
       or not ops <@ array['insert', 'update', 'delete'] then
        raise exception 'operations must be some of insert, update and delete, not %',
            coalesce(operations::text, 'null')
            using errcode = 'invalid_parameter_value';
    end if;

    all_cols := array(select a.attname::text from pg_attribute a
                       where a.attrelid = relation and a.attnum > 0 and not a.attisdropped
                       order by a.attnum);
    if columns is null then
        cols := all_cols;
    else
        if cardinality(columns) = 0 then
            raise exception 'columns must name at least one column of table %', relation
                using errcode = 'invalid_parameter_value';
        end if;
        for i in 1 .. cardinality(columns) loop
            if columns[i] is null or not columns[i] = any(all_cols) then
                raise exception 'table % has no column %', relation,
                    coalesce(quote_literal(columns[i]), 'null')
                    using errcode = 'undefined_column';
            end if;
            if columns[i] = any(columns[1 : i - 1]) then
                raise exception 'column % is named twice', quote_literal(columns[i])
                    using errcode = 'invalid_parameter_value';
            end if;
        end loop;
        cols := columns;
    end if;

    perform pgsse.check_watch_expression('filter', filter, relation, '(%s) is true',
                                         'a boolean expression of the row');
    perform pgsse.check_watch_expression('recipient', recipient, relation,
                                         'pgsse.recipients(%s)',
                                         'a text or text[] expression of the row');
    perform pgsse.check_watch_expression('topic', topic, relation, '(%s)::text',
                                         'an expression of the row with a text form');

    insert into pgsse.watches ("table", kind, operations, columns, filter, recipient, topic)
    values (relation, kind, ops, cols, filter, recipient, topic)
    on conflict on constraint watches_pkey do update
       set kind = excluded.kind, operations = excluded.operations, columns = excluded.columns,
           filter = excluded.filter, recipient = excluded.recipient, topic = excluded.topic,
           watched_at = now()
    returning id into watch_id;
    fn := format('pgsse.%I', 'watch_' || watch_id);

    -- The event's row (as `r`), and for an update the chosen columns whose JSON value changed.
    row_json := format('jsonb_build_object(%s)',
        (select string_agg(format('%L, r.%I', c, c), ', ') from unnest(cols) c));
    changed := format('array_remove(array[%s], null)',
        (select string_agg(format('case when to_jsonb(old.%I) is distinct from to_jsonb(new.%I) '
                                  'then %L end', c, c, c), ', ')
           from unnest(cols) c));
    -- One statement per change: the event's data, recipients and topic from the row as `r` (new,
    -- or old for a delete), if the filter accepts it and, when it is for someone, it has a
    -- recipient. %1$s is replaced by the data, %2$s by `new` or `old`. The expressions end
    -- with a line break, so that a trailing comment in one cannot hide the rest.
    selected := format(
        'insert into pgsse.outbox (kind, data, recipients, topic) '
        'select %L, "pgsse data", "pgsse recipients", "pgsse topic" from ('
        'select %%1$s as "pgsse data", %s as "pgsse recipients", %s as "pgsse topic" '
        'from (select %%2$s.*) r where %s) e %s',
        kind,
        case when recipient is null then 'null::text[]'
             else format('pgsse.recipients(%s' || e'\n' || ')', recipient) end,
        case when topic is null then 'null::text'
             else format('(%s' || e'\n' || ')::text', topic) end,
        case when filter is null then 'true'
             else format('(%s' || e'\n' || ') is true', filter) end,
        case when recipient is null then '' else 'where "pgsse recipients" is not null' end);
    -- Static statements, so that PL/pgSQL plans each once per session. Column names win over
    -- PL/pgSQL's variables in them (the only one of ours has a name no column will have).
    body := format($body$
#variable_conflict use_column
declare
    "pgsse changed" text[];
begin
    if tg_op = 'INSERT' then
        %1$s;
    elsif tg_op = 'UPDATE' then
        "pgsse changed" := %2$s;
        if cardinality("pgsse changed") > 0 then
            %3$s;
        end if;
    else
        %4$s;
    end if;
    return null;
end;
$body$,
        format(selected, format('jsonb_build_object(''op'', ''insert'', ''row'', %s)', row_json),
               'new'),
        changed,
        format(selected, format('jsonb_build_object(''op'', ''update'', ''row'', %s, '
                                '''changed'', to_jsonb("pgsse changed"))', row_json), 'new'),
        format(selected, format('jsonb_build_object(''op'', ''delete'', ''row'', %s)', row_json),
               'old'));
    execute format('create or replace function %s() returns trigger language plpgsql '
                   'security definer set search_path = pg_catalog, pgsse, pg_temp as %L',
                   fn, body);
    execute format('revoke execute on function %s() from public', fn);
    execute format('create or replace trigger pgsse_watch after %s on %s '
                   'for each row execute function %s()',
                   (select string_agg(o, ' or ') from unnest(ops) o), relation, fn);
end;
$$;

-- Stops watching a table: its changes in transactions that commit after this one make no event.
-- Returns whether it was watched.
create function pgsse.unwatch("table" regclass) returns boolean
language plpgsql security definer
set search_path = pg_catalog, pgsse, pg_temp
as $$
declare
    watch_id bigint;
begin
    perform pgsse.forget_dropped_watches();
    delete from pgsse.watches w where w."table" = unwatch."table" returning w.id into watch_id;
    if watch_id is null then
        return false;
    end if;
    execute format('drop trigger if exists pgsse_watch on %s', unwatch."table");
    execute format('drop function if exists pgsse.%I()', 'watch_' || watch_id);
    return true;
end;
$$;

-- CREATE OR REPLACE resets a function's settings: each gets its fixed search_path again, as in
-- V7 and V9.
do $$
declare
    app_schema text := (select relnamespace::regnamespace::text from pg_class
                         where oid = 'board'::regclass);
    path text := format('pg_catalog, pgsse, %s, pg_temp', app_schema);
begin
    execute format('alter function pgsse.release() security definer set search_path = %s', path);
    execute format('alter function pgsse.emit(text, jsonb, text, text, text, text, text[], text) '
                   'set search_path = %s', path);
end;
$$;

revoke execute on function
    pgsse.emit(text, jsonb, text, text, text, text, text[], text),
    pgsse.forget_dropped_watches(),
    pgsse.check_watch_expression(text, text, regclass, text, text),
    pgsse.watch(regclass, text, text[], text[], text, text, text),
    pgsse.unwatch(regclass)
from public;
