-- Database-side figures for /metrics. Read from the catalog only, so that a scrape costs the same
-- whatever the event log holds and waits on no lock of pgsse.event: how full the NOTIFY queue is
-- (notifications wait there until every listener has read them), and the planner's estimate of
-- the event log's size as of its last vacuum or analyze (reltuples is -1 before the first).
select pg_notification_queue_usage() as queue_usage,
       e.reltuples::float8 as rows_estimate,
       (e.relpages::bigint + coalesce(t.relpages, 0)
        + (select coalesce(sum(i.relpages), 0)::bigint
             from pg_index x join pg_class i on i.oid = x.indexrelid
            where x.indrelid = e.oid))
       * current_setting('block_size')::bigint as bytes_estimate
  from pg_class e
  left join pg_class t on t.oid = e.reltoastrelid
 where e.oid = 'pgsse.event'::regclass
