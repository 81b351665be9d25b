-- The gateway's own objects live in schema pgsse, apart from the application's tables.
create schema pgsse;

-- Every event, in commit order. Clients resume from here with Last-Event-ID, and the listener
-- reads from here what a notification could not carry or what it missed while disconnected.
create table pgsse.event (
    id         bigint primary key,
    kind       text not null,
    payload    jsonb not null,
    created_at timestamptz not null default now()
);

-- Event ids. They are taken only at commit time under pgsse.emit's lock, never by a default, so
-- that ids are handed out in commit order.
create sequence pgsse.event_id_seq as bigint;

-- Records one event and notifies listeners. Call it only from a deferred trigger, i.e. at commit:
-- the transaction-level advisory lock serializes id assignment among committing transactions and
-- is held until this transaction's commit is visible, so if a reader has seen id N, every event
-- that becomes visible later has an id above N. (Notifying commits are serialized by NOTIFY's own
-- lock anyway, so the extra lock costs little.)
create function pgsse.emit(kind text, data jsonb) returns bigint
language plpgsql
set search_path from current
as $$
declare
    event_id bigint;
    message  text;
begin
    perform pg_advisory_xact_lock(7305011401);
    event_id := nextval('pgsse.event_id_seq');
    insert into pgsse.event (id, kind, payload) values (event_id, emit.kind, emit.data);
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

-- Turns an inserted board or path into its event. Runs deferred (see the triggers below), so the
-- usernames are read at commit time.
create function pgsse.capture() returns trigger
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
    else
        raise exception 'pgsse.capture() does not know table %', tg_table_name;
    end if;
    return null;
end;
$$;

-- Deferred constraint triggers run at commit, which is what makes event ids commit-ordered.
create constraint trigger pgsse_new_board after insert on board
    deferrable initially deferred for each row execute function pgsse.capture();

create constraint trigger pgsse_new_path after insert on path
    deferrable initially deferred for each row execute function pgsse.capture();
