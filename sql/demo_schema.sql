-- Before migrating, what the demo's schema ($1, DEMO_SCHEMA) holds: whether the gateway's
-- migrations ran there already (their history table is there), and if not, what would stand in
-- their way. The demo's migrations (V1, V4) make the relations named below there; any of them
-- that is already there is the application's own, and the gateway never touches those. Schema
-- pgsse, where the gateway's own objects live, may have been made by migrations whose history is
-- in another schema (a gateway started with another DEMO_SCHEMA).
select exists (select 1
                 from pg_class c join pg_namespace n on n.oid = c.relnamespace
                where n.nspname = $1 and c.relname = 'refinery_schema_history') as migrated_here,
       array(select case c.relkind when 'v' then 'view'
                                   when 'm' then 'materialized view'
                                   when 'f' then 'foreign table'
                                   when 'S' then 'sequence'
                                   when 'i' then 'index'
                                   when 'I' then 'index'
                                   else 'table' end || ' ' || c.relname
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where n.nspname = $1
                and c.relname in ('app_user', 'board', 'path', 'notification',
                                  'app_user_id_seq', 'board_id_seq', 'path_id_seq',
                                  'notification_id_seq', 'app_user_pkey', 'app_user_username_key',
                                  'board_pkey', 'path_pkey', 'notification_pkey',
                                  'path_board_id_idx', 'notification_user_id_idx')
              order by c.relname in ('app_user', 'board', 'path', 'notification') desc,
                       c.relname) as taken,
       exists (select 1 from pg_namespace where nspname = 'pgsse') as pgsse_exists,
       array(select n.nspname::text
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where c.relname = 'refinery_schema_history' and n.nspname <> $1
              order by 1) as migrated_in
