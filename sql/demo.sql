-- The README's walkthrough: paste into `make psql`, or run `make psql < sql/demo.sql`.
-- Each insert into board or path produces one event on /sse/notifications/.
insert into app_user(username) values ('alice');
insert into board(name, creator_id, dots) select 'b1', id, '[[0,0],[4,4]]' from app_user where username='alice';
insert into path(board_id, user_id, points) select b.id, u.id, '[[0,0],[1,1],[2,1]]' from board b, app_user u where b.name='b1' and u.username='alice';
