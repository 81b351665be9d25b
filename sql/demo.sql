-- The README's walkthrough: paste into `make psql`, or run `make psql < sql/demo.sql`.
-- Each insert into board or path produces one event on /sse/notifications/.
insert into app_user(username) values ('alice');
insert into board(name, creator_id) select 'b1', id from app_user where username='alice';
insert into path(board_id, user_id) select b.id, u.id from board b, app_user u where b.name='b1' and u.username='alice';
