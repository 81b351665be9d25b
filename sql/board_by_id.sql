-- One board with its creator's username. $1: id.
select b.id, b.name, b.creator_id, u.username as creator_username, b.rows, b.cols, b.dots,
       to_json(b.created_at) #>> '{}' as created_at
  from board b
  join app_user u on u.id = b.creator_id
 where b.id = $1
