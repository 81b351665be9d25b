-- The newest event id: where live delivery starts when the gateway boots.
select coalesce(max(id), 0) as id from pgsse.event
