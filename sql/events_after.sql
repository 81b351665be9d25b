-- A page of events after a known id, oldest first, with how far the log has been pruned: what a
-- client or the listener missed. At most $2 events, and no more once their data passes about $3
-- bytes (the first event always comes, whatever its size; an event's recipients count too), so
-- that a page of large events stays small in memory. The events are read one at a time, each the
-- next by id, and the read stops as soon as the page is full: a page costs what it returns,
-- however many or large the events after it are. One statement, so the page and the horizon come from the same snapshot; there is always
-- one row, with null event columns when no event follows.
-- $1: the last id already seen; $2: the most events; $3: the most bytes of data. The data is the
-- database's text of the jsonb (the gateway passes it through); committed_at is the commit time
-- in seconds since the epoch.
with recursive page (id, kind, payload, recipient, client_id, session_id, recipients, topic,
                     created_at, n, bytes) as (
        select e.*, 1::bigint,
               octet_length(e.payload)::bigint + coalesce(octet_length(e.recipients::text), 0)
          from (select id, kind, payload::text, recipient, client_id, session_id, recipients, topic,
                       created_at
                  from pgsse.event
                 where id > $1
                 order by id
                 limit 1) e
    union all
        select e.*, p.n + 1,
               p.bytes + octet_length(e.payload) + coalesce(octet_length(e.recipients::text), 0)
          from page p
         cross join lateral (
                select id, kind, payload::text, recipient, client_id, session_id, recipients, topic,
                       created_at
                  from pgsse.event
                 where id > p.id
                 order by id
                 limit 1) e
         where p.n < $2::bigint and p.bytes < $3::bigint
)
select h.pruned_through, p.id, p.kind, p.payload, p.recipient, p.client_id, p.session_id,
       p.recipients, p.topic,
       extract(epoch from p.created_at)::float8 as committed_at
  from pgsse.horizon h
  left join page p on true
 order by p.id
