-- The application's tables. They are a public contract: any SQL client may insert into them, and
-- the gateway's triggers (V2) turn inserts into events.

-- People who create boards and draw paths. Usernames are what events carry, so they are unique.
create table app_user (
    id         bigint generated always as identity primary key,
    username   text not null unique
               constraint app_user_username_not_blank check (length(btrim(username)) > 0),
    created_at timestamptz not null default now()
);

-- A connect-the-dots grid: `rows` x `cols` positions, `dots` a JSON array of [x, y] positions.
create table board (
    id         bigint generated always as identity primary key,
    name       text not null,
    creator_id bigint not null references app_user(id),
    rows       int not null default 5 constraint board_rows_range check (rows between 1 and 100),
    cols       int not null default 5 constraint board_cols_range check (cols between 1 and 100),
    dots       jsonb not null default '[]' constraint board_dots_array check (jsonb_typeof(dots) = 'array'),
    created_at timestamptz not null default now()
);

-- A user's line over a board: `points` a JSON array of [x, y] grid positions, in drawing order.
create table path (
    id         bigint generated always as identity primary key,
    board_id   bigint not null references board(id) on delete cascade,
    user_id    bigint not null references app_user(id),
    points     jsonb not null default '[]' constraint path_points_array check (jsonb_typeof(points) = 'array'),
    created_at timestamptz not null default now()
);

-- Paths are read per board, in drawing order.
create index path_board_id_idx on path (board_id, id);
