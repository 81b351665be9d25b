-- The watched kinds, by name: each with its table, its operations, whether its events are for
-- particular users and whether they have a topic, and its chosen columns in the data's order,
-- each with its type as declared, its type's oid (null for a column the table no longer has)
-- and whether it is NOT NULL. The expressions themselves are not read: the listing is public.
select w.kind, w."table"::text as "table", w.operations,
       w.recipient is not null as targeted, w.topic is not null as topic,
       jsonb_agg(jsonb_build_object(
           'name', c.name,
           'declared', format_type(a.atttypid, a.atttypmod),
           'type', a.atttypid::bigint,
           'not_null', coalesce(a.attnotnull, false)) order by c.ord) as columns
  from pgsse.watches w
 cross join lateral unnest(w.columns) with ordinality c(name, ord)
  left join pg_attribute a
    on a.attrelid = w."table" and a.attname = c.name and a.attnum > 0 and not a.attisdropped
 group by w."table"
 order by w.kind
