-- One user. $1: id.
select id, username, to_json(created_at) #>> '{}' as created_at
  from app_user
 where id = $1
