-- A page of a board's paths in drawing order. $1: board id; $2: only paths with a larger id;
-- $3: page size.
select p.id, p.board_id, p.user_id, u.username as user_username, p.points,
       to_json(p.created_at) #>> '{}' as created_at
  from path p
  join app_user u on u.id = p.user_id
 where p.board_id = $1 and p.id > $2
 order by p.id
 limit $3
