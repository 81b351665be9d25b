-- Applies retention. $1: maximum age in seconds; $2: maximum number of events kept.
select pgsse.prune(make_interval(secs => $1), $2) as deleted
