-- A page of boards, newest first. $1: only boards with a smaller id (null: from the newest);
-- $2: page size.
select b.id, b.name, b.creator_id, u.username as creator_username, b.rows, b.cols, b.dots,
       to_json(b.created_at) #>> '{}' as created_at
  from board b
  join app_user u on u.id = b.creator_id
 where $1::bigint is null or b.id < $1
 order by b.id desc
 limit $2
