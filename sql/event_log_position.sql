-- Where the event log stands: its newest event id, and how far it has been pruned. Live delivery
-- starts after the greater of the two when the gateway boots (pruning may have emptied the table).
select coalesce((select max(id) from pgsse.event), 0) as last_id, h.pruned_through
  from pgsse.horizon h
