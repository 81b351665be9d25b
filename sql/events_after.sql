-- A page of events after a known id, oldest first: what a client or the listener missed.
-- $1: the last id already seen; $2: the page size.
select id, kind, payload
  from pgsse.event
 where id > $1
 order by id
 limit $2
