-- Creates a board for the user named $2; no row when there is no such user. The board's trigger
-- records its newBoard event at commit.
-- $1: name, $2: creator's username, $3: rows, $4: cols, $5: dots.
insert into board (name, creator_id, rows, cols, dots)
select $1, u.id, $3, $4, $5
  from app_user u
 where u.username = $2
returning id, name, creator_id, $2::text as creator_username, rows, cols, dots,
          to_json(created_at) #>> '{}' as created_at
