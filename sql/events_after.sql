-- A page of events after a known id, oldest first, with how far the log has been pruned: what a
-- client or the listener missed. At most $2 events, and no more once their data passes about $3
-- bytes (the first event always comes, whatever its size), so that a page of large events stays
-- small in memory. One statement, so the page and the horizon come from the same snapshot; there
-- is always one row, with null event columns when no event follows.
-- $1: the last id already seen; $2: the most events; $3: the most bytes of data. committed_at
-- is the commit time in seconds since the epoch.
select h.pruned_through, e.id, e.kind, e.payload, e.recipient, e.client_id, e.session_id,
       extract(epoch from e.created_at)::float8 as committed_at
  from pgsse.horizon h
  left join lateral (
        select id, kind, payload, recipient, client_id, session_id, created_at
          from (select id, kind, payload, recipient, client_id, session_id, created_at,
                       row_number() over w as n,
                       coalesce(sum(octet_length(payload::text)) over before, 0) as bytes_before
                  from (select * from pgsse.event where id > $1 order by id limit $2) page
                window w as (order by id),
                       before as (order by id rows between unbounded preceding and 1 preceding)
               ) sized
         where n = 1 or bytes_before < $3
       ) e on true
 order by e.id
