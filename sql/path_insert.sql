-- Creates a path on board $1 for the user named $2; no row when there is no such user. The path's
-- trigger records its newPath event at commit.
-- $1: board id, $2: username, $3: points.
insert into path (board_id, user_id, points)
select $1, u.id, $3
  from app_user u
 where u.username = $2
returning id, board_id, user_id, $2::text as user_username, points,
          to_json(created_at) #>> '{}' as created_at
