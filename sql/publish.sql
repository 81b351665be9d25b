-- Publishes an event (see pgsse.publish). $1: kind, $2: data, $3: recipient username,
-- $4: client id, $5: session id; null targets mean everyone.
select pgsse.publish($1, $2, $3, $4, $5) as id
