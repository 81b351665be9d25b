-- Publishes an event through pgsse.publish under a key of its own, and returns the key. Run on its
-- own (autocommitted), so the event gets its id at the statement's commit and no lock outlives
-- it; pgsse.published(key) then gives the id.
-- $1: kind, $2: data, $3: recipient username, $4: client id, $5: session id; null targets mean
-- everyone.
select k.key
  from (select 'api:' || gen_random_uuid() as key) k
 cross join lateral pgsse.publish($1, $2, $3, $4, $5, k.key)
