-- What decides how to_jsonb writes values of the types $1 and of the types they are made of (a
-- domain's base type, an array's elements, a composite's attributes): pgsse.watch builds the
-- data of its events with jsonb_build_object, which writes each value as to_jsonb does.
with recursive reachable(oid) as (
    select unnest($1::oid[])
    union
    select part.oid
      from reachable r
      join pg_type t on t.oid = r.oid
     cross join lateral (
           select t.typbasetype where t.typtype = 'd'
           union all
           select t.typelem where t.typsubscript = 'array_subscript_handler'::regproc
           union all
           select a.atttypid
             from pg_attribute a
            where t.typtype = 'c' and a.attrelid = t.typrelid and a.attnum > 0
              and not a.attisdropped
       ) part(oid)
)
select t.oid, format_type(t.oid, null) as name, t.typname::text as typname,
       t.typnamespace = 'pg_catalog'::regnamespace as catalog, t.typtype::text as typtype,
       case when t.typtype = 'd' then t.typbasetype end as base,
       t.typtype = 'd' and t.typnotnull as not_null,
       case when t.typsubscript = 'array_subscript_handler'::regproc then t.typelem end
           as element,
       array(select e.enumlabel::text from pg_enum e
              where e.enumtypid = t.oid order by e.enumsortorder) as labels,
       array(select a.attname::text from pg_attribute a
              where t.typtype = 'c' and a.attrelid = t.typrelid and a.attnum > 0
                and not a.attisdropped order by a.attnum) as attribute_names,
       array(select a.atttypid from pg_attribute a
              where t.typtype = 'c' and a.attrelid = t.typrelid and a.attnum > 0
                and not a.attisdropped order by a.attnum) as attribute_types,
       -- to_jsonb writes a type of the database's own (not a built-in one) that has a cast to
       -- json with that cast.
       t.oid >= 16384 and exists (select 1 from pg_cast c
                                   where c.castsource = t.oid and c.casttarget = 'json'::regtype
                                     and c.castmethod = 'f') as json_cast
  from reachable r
  join pg_type t on t.oid = r.oid
