-- Creates a user. $1: username.
insert into app_user (username)
values ($1)
returning id, username, to_json(created_at) #>> '{}' as created_at
