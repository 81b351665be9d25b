-- A page of events after a known id, oldest first, with how far the log has been pruned: what a
-- client or the listener missed. One statement, so both come from the same snapshot; there is
-- always one row, with null event columns when no event follows.
-- $1: the last id already seen; $2: the page size.
select h.pruned_through, e.id, e.kind, e.payload, e.recipient, e.client_id, e.session_id
  from pgsse.horizon h
  left join lateral (
        select id, kind, payload, recipient, client_id, session_id
          from pgsse.event
         where id > $1
         order by id
         limit $2
       ) e on true
 order by e.id
