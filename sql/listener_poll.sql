-- The listener's once-a-second look at the database: how far the event log has been pruned, and
-- how full PostgreSQL's notification queue is against the fraction above which pgsse.emit stops
-- notifying (pgsse.notify_queue_limit, 0.5 unless set; see migration V9).
select h.pruned_through,
       pg_notification_queue_usage() as queue_usage,
       pgsse.notify_queue_limit() as queue_limit
  from pgsse.horizon h
