-- One path with its user's username. $1: id.
select p.id, p.board_id, p.user_id, u.username as user_username, p.points,
       to_json(p.created_at) #>> '{}' as created_at
  from path p
  join app_user u on u.id = p.user_id
 where p.id = $1
