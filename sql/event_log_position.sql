-- Where the event log stood $1 seconds ago (0: now): the newest event committed before then, and
-- how far the log has been pruned. The listener asks for the moment the gateway started, so that
-- streams opened before it could reach the database miss nothing committed after they opened;
-- commit times are the database's own clock (pgsse.event.created_at grows with id), so no clock
-- of the gateway's is compared with it. Pruning may have emptied the table: then live delivery
-- starts after the horizon.
select coalesce((select id
                   from pgsse.event
                  where created_at < clock_timestamp() - make_interval(secs => $1)
                  order by created_at desc
                  limit 1), 0) as last_id,
       h.pruned_through
  from pgsse.horizon h
