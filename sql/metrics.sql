-- Database-side figures for /metrics: how full the NOTIFY queue is (notifications wait there
-- until every listener has read them), and how much the event log holds.
select pg_notification_queue_usage() as queue_usage,
       pg_total_relation_size('pgsse.event') as event_table_bytes,
       (select count(*) from pgsse.event) as event_table_rows
