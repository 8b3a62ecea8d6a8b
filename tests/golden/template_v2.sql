CREATE OR REPLACE FUNCTION public.public_line_audit() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
SET enable_nestloop TO off
AS $audit$
<<audit_trigger>>
DECLARE
  writer pg_catalog.text := CASE WHEN pg_catalog.current_setting('role') = 'none' THEN session_user ELSE pg_catalog.current_setting('role') END;
  written_at pg_catalog.timestamptz := pg_catalog.clock_timestamp();
BEGIN
  IF (TG_TABLE_SCHEMA OPERATOR(pg_catalog.<>) 'public'
      OR TG_TABLE_NAME OPERATOR(pg_catalog.<>) 'line')
     AND pg_catalog.pg_partition_root(TG_RELID) IS DISTINCT FROM '"public"."line"'::pg_catalog.regclass THEN
    IF NOT EXISTS (WITH RECURSIVE up(relation) AS (
          SELECT i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhrelid = TG_RELID
          UNION
          SELECT i.inhparent FROM pg_catalog.pg_inherits i
            JOIN up ON i.inhrelid = up.relation)
        SELECT FROM up WHERE up.relation = '"public"."line"'::pg_catalog.regclass) THEN
      RAISE EXCEPTION USING MESSAGE = 'audit function "public"."public_line_audit" records only table "public"."line"',
        ERRCODE = 'insufficient_privilege';
    END IF;
  END IF;
  IF TG_NAME OPERATOR(pg_catalog.<>) ALL (ARRAY['public_line_audit_insert'::pg_catalog.name, 'public_line_audit_update'::pg_catalog.name, 'public_line_audit_delete'::pg_catalog.name, 'public_line_audit_truncate'::pg_catalog.name, 'public_line_audit_update_key'::pg_catalog.name]) THEN
    RAISE EXCEPTION USING MESSAGE = 'audit function "public"."public_line_audit" runs only from the audit triggers of "public"."line"',
      ERRCODE = 'insufficient_privilege';
  END IF;
  IF TG_OP = 'INSERT' THEN
    INSERT INTO "public"."line_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_changed_columns", "id", "qty", "total")
    SELECT 'I', audit_trigger.written_at, audit_trigger.writer, NULL, r."id", r."qty", (SELECT qty * 2 FROM (SELECT r."id", r."qty") AS audit_source("id", "qty"))
    FROM audit_new_rows AS r;
  ELSIF TG_OP = 'UPDATE' THEN
    IF TG_LEVEL = 'ROW' THEN
      IF pg_catalog.pg_partition_root(TG_RELID) IS NULL
          AND NOT EXISTS (SELECT FROM "public"."line" AS now_at_key
            WHERE now_at_key."id" = OLD."id") THEN
        INSERT INTO "public"."line_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_changed_columns", "id", "qty", "total")
        VALUES ('K', audit_trigger.written_at, audit_trigger.writer, NULL, OLD."id", OLD."qty", (SELECT qty * 2 FROM (SELECT OLD."id", OLD."qty") AS audit_source("id", "qty")));
      END IF;
      RETURN NULL;
    END IF;
    IF pg_catalog.pg_partition_root(TG_RELID) IS NOT NULL THEN
      IF EXISTS (SELECT FROM audit_old_rows AS o WHERE NOT EXISTS (
        SELECT FROM audit_new_rows AS n WHERE n."id" = o."id")) THEN
        INSERT INTO "public"."line_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_changed_columns", "id", "qty", "total")
        SELECT 'K', audit_trigger.written_at, audit_trigger.writer, NULL, o."id", o."qty", (SELECT qty * 2 FROM (SELECT o."id", o."qty") AS audit_source("id", "qty"))
        FROM audit_old_rows AS o WHERE NOT EXISTS (
        SELECT FROM audit_new_rows AS n WHERE n."id" = o."id");
      END IF;
    END IF;
    INSERT INTO "public"."line_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_changed_columns", "id", "qty", "total")
    SELECT 'U', audit_trigger.written_at, audit_trigger.writer, CASE WHEN o."id" IS NULL THEN NULL ELSE pg_catalog.array_remove(ARRAY[CASE WHEN ROW(o."id")::pg_catalog.record OPERATOR(pg_catalog.*<>) ROW(r."id")::pg_catalog.record THEN 'id' END, CASE WHEN ROW(o."qty")::pg_catalog.record OPERATOR(pg_catalog.*<>) ROW(r."qty")::pg_catalog.record THEN 'qty' END, CASE WHEN ROW((SELECT qty * 2 FROM (SELECT o."id", o."qty") AS audit_source("id", "qty")))::pg_catalog.record OPERATOR(pg_catalog.*<>) ROW((SELECT qty * 2 FROM (SELECT r."id", r."qty") AS audit_source("id", "qty")))::pg_catalog.record THEN 'total' END]::pg_catalog.text[], NULL) END, r."id", r."qty", (SELECT qty * 2 FROM (SELECT r."id", r."qty") AS audit_source("id", "qty"))
    FROM audit_new_rows AS r LEFT JOIN audit_old_rows AS o ON r."id" = o."id";
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO "public"."line_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_changed_columns", "id", "qty", "total")
    SELECT 'D', audit_trigger.written_at, audit_trigger.writer, NULL, r."id", r."qty", (SELECT qty * 2 FROM (SELECT r."id", r."qty") AS audit_source("id", "qty"))
    FROM audit_old_rows AS r;
  ELSIF TG_OP = 'TRUNCATE' THEN
    IF TG_RELID = '"public"."line"'::pg_catalog.regclass THEN
      INSERT INTO "public"."line_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_changed_columns", "id", "qty", "total")
      VALUES ('T', audit_trigger.written_at, audit_trigger.writer, NULL, NULL, NULL, NULL);
    ELSE
      IF EXISTS (WITH RECURSIVE tree(relation) AS (
            SELECT TG_RELID
            UNION
            SELECT i.inhrelid FROM pg_catalog.pg_inherits i
              JOIN tree ON i.inhparent = tree.relation)
          SELECT FROM tree
          WHERE pg_catalog.row_security_active(tree.relation::pg_catalog.regclass)) THEN
        RAISE EXCEPTION USING MESSAGE = 'cannot record the rows TRUNCATE removes from "public"."line" or a partition of it: row-level security hides rows from the audit function''s owner',
          ERRCODE = 'insufficient_privilege', HINT = 'Give the audit function''s owner BYPASSRLS, or own the table with it.';
      END IF;
      EXECUTE 'INSERT INTO "public"."line_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_changed_columns", "id", "qty", "total") '
        || (SELECT pg_catalog.string_agg('SELECT ''T'', $1, $2, NULL, r."id", r."qty", (SELECT qty * 2 FROM (SELECT r."id", r."qty") AS audit_source("id", "qty")) FROM ONLY '
            || share.relation::pg_catalog.regclass::pg_catalog.text || ' AS r',
            ' UNION ALL ')
          FROM (WITH RECURSIVE tree(relation) AS (
              SELECT TG_RELID
              UNION
              SELECT i.inhrelid FROM pg_catalog.pg_inherits i
                JOIN tree ON i.inhparent = tree.relation
                WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t
                  WHERE t.tgrelid = i.inhrelid AND t.tgfoid = '"public"."public_line_audit"()'::pg_catalog.regprocedure
                    AND t.tgenabled IN ('O', 'A')
                    AND (t.tgtype::pg_catalog.int4 & 32) <> 0))
            SELECT tree.relation FROM tree) AS share)
        USING audit_trigger.written_at, audit_trigger.writer;
    END IF;
  END IF;
  RETURN NULL;
END audit_trigger;
$audit$;
COMMENT ON FUNCTION public.public_line_audit() IS 'sqlalchemy-postgresql-audit:{"audit_table": "line_audit", "captures": ["changed_columns"], "columns": ["id", "qty", "total"], "exclude_columns": [], "function": "public_line_audit", "key_columns": ["id"], "mode": "statement", "schema": "public", "settings": [], "skip_unchanged": false, "table": "line", "template": 2, "triggers": [{"name": "public_line_audit_insert", "operation": "INSERT"}, {"name": "public_line_audit_update", "operation": "UPDATE"}, {"name": "public_line_audit_delete", "operation": "DELETE"}, {"name": "public_line_audit_truncate", "operation": "TRUNCATE"}], "truncate_rows": false, "virtual_columns": [{"expression": "qty * 2", "name": "total"}]}';
REVOKE ALL ON FUNCTION public.public_line_audit() FROM PUBLIC;
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'public_line_audit_insert' AND c.relname OPERATOR(pg_catalog.=) 'line' AND n.nspname OPERATOR(pg_catalog.=) 'public';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS public_line_audit_insert ON public.line;
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER public_line_audit_insert
AFTER INSERT ON public.line
REFERENCING NEW TABLE AS audit_new_rows
FOR EACH STATEMENT
EXECUTE FUNCTION public.public_line_audit();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'public_line_audit_update' AND c.relname OPERATOR(pg_catalog.=) 'line' AND n.nspname OPERATOR(pg_catalog.=) 'public';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS public_line_audit_update ON public.line;
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER public_line_audit_update
AFTER UPDATE ON public.line
REFERENCING OLD TABLE AS audit_old_rows NEW TABLE AS audit_new_rows
FOR EACH STATEMENT
EXECUTE FUNCTION public.public_line_audit();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'public_line_audit_delete' AND c.relname OPERATOR(pg_catalog.=) 'line' AND n.nspname OPERATOR(pg_catalog.=) 'public';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS public_line_audit_delete ON public.line;
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER public_line_audit_delete
AFTER DELETE ON public.line
REFERENCING OLD TABLE AS audit_old_rows
FOR EACH STATEMENT
EXECUTE FUNCTION public.public_line_audit();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'public_line_audit_truncate' AND c.relname OPERATOR(pg_catalog.=) 'line' AND n.nspname OPERATOR(pg_catalog.=) 'public';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS public_line_audit_truncate ON public.line;
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER public_line_audit_truncate
AFTER TRUNCATE ON public.line
FOR EACH STATEMENT
EXECUTE FUNCTION public.public_line_audit();
CREATE OR REPLACE TRIGGER public_line_audit_update_key
AFTER UPDATE ON public.line
FOR EACH ROW
WHEN (OLD."id" IS DISTINCT FROM NEW."id")
EXECUTE FUNCTION public.public_line_audit();
DO $audit$
DECLARE
  stale record;
  child pg_catalog.oid;
BEGIN
  FOR stale IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"public"."public_line_audit"()')::pg_catalog.oid AND t.tgrelid OPERATOR(pg_catalog.<>) pg_catalog.to_regclass('"public"."line"')
      AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND NOT t.tgisinternal AND NOT ((t.tgname OPERATOR(pg_catalog.=) 'public_line_audit_truncate' AND t.tgrelid OPERATOR(pg_catalog.=) ANY (ARRAY(
        WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"public"."line"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[])))) OR (t.tgname OPERATOR(pg_catalog.=) 'public_line_audit_update_key' AND t.tgrelid OPERATOR(pg_catalog.=) ANY (ARRAY(
        WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"public"."line"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[]) AND NOT c.relispartition))))
  LOOP
    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(stale.tgname) OPERATOR(pg_catalog.||) ' ON '
      OPERATOR(pg_catalog.||) stale.tgrelid::pg_catalog.regclass::pg_catalog.text;
  END LOOP;
  FOR child IN WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"public"."line"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[])
  LOOP
    EXECUTE 'CREATE OR REPLACE TRIGGER public_line_audit_truncate BEFORE TRUNCATE ON ' OPERATOR(pg_catalog.||) child::pg_catalog.regclass::pg_catalog.text
      OPERATOR(pg_catalog.||) ' FOR EACH STATEMENT EXECUTE FUNCTION public.public_line_audit()';
  END LOOP;
  FOR child IN WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"public"."line"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[]) AND NOT c.relispartition
  LOOP
    EXECUTE 'CREATE OR REPLACE TRIGGER public_line_audit_update_key AFTER UPDATE ON ' OPERATOR(pg_catalog.||) child::pg_catalog.regclass::pg_catalog.text
      OPERATOR(pg_catalog.||) ' FOR EACH ROW
WHEN (OLD."id" IS DISTINCT FROM NEW."id")
EXECUTE FUNCTION public.public_line_audit()';
  END LOOP;
END;
$audit$;
DO $audit$
DECLARE
  k record;
BEGIN
  FOR k IN SELECT t.tgname, t.tgrelid, t.tgqual FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"public"."public_line_audit"()')::pg_catalog.oid
      AND t.tgname OPERATOR(pg_catalog.=) 'public_line_audit_update_key' AND t.tgparentid OPERATOR(pg_catalog.=) 0
  LOOP
    EXECUTE 'COMMENT ON TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(k.tgname)
      OPERATOR(pg_catalog.||) ' ON ' OPERATOR(pg_catalog.||) k.tgrelid::pg_catalog.regclass::pg_catalog.text
      OPERATOR(pg_catalog.||) ' IS ' OPERATOR(pg_catalog.||) pg_catalog.quote_literal('sqlalchemy-postgresql-audit key trigger, condition ' OPERATOR(pg_catalog.||) pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(k.tgqual::pg_catalog.text, 'UTF8')), 'hex'));
  END LOOP;
END;
$audit$;
DROP TRIGGER IF EXISTS public_line_audit_insert ON public.line;
DROP TRIGGER IF EXISTS public_line_audit_update ON public.line;
DROP TRIGGER IF EXISTS public_line_audit_delete ON public.line;
DROP TRIGGER IF EXISTS public_line_audit_truncate ON public.line;
DROP TRIGGER IF EXISTS public_line_audit_update_key ON public.line;
DO $audit$
DECLARE
  stale record;
BEGIN
  FOR stale IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"public"."public_line_audit"()')::pg_catalog.oid AND t.tgrelid OPERATOR(pg_catalog.<>) pg_catalog.to_regclass('"public"."line"')
      AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND NOT t.tgisinternal AND NOT (false)
  LOOP
    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(stale.tgname) OPERATOR(pg_catalog.||) ' ON '
      OPERATOR(pg_catalog.||) stale.tgrelid::pg_catalog.regclass::pg_catalog.text;
  END LOOP;
END;
$audit$;
DROP FUNCTION IF EXISTS public.public_line_audit();

-- next spec
CREATE OR REPLACE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
SET enable_nestloop TO off
AS $audit$
<<audit_trigger>>
DECLARE
  writer pg_catalog.text := CASE WHEN pg_catalog.current_setting('role') = 'none' THEN session_user ELSE pg_catalog.current_setting('role') END;
  written_at pg_catalog.timestamptz := pg_catalog.clock_timestamp();
BEGIN
  IF (TG_TABLE_SCHEMA OPERATOR(pg_catalog.<>) 'Sales Dept'
      OR TG_TABLE_NAME OPERATOR(pg_catalog.<>) 'Order Items')
     AND pg_catalog.pg_partition_root(TG_RELID) IS DISTINCT FROM '"Sales Dept"."Order Items"'::pg_catalog.regclass THEN
    IF NOT EXISTS (WITH RECURSIVE up(relation) AS (
          SELECT i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhrelid = TG_RELID
          UNION
          SELECT i.inhparent FROM pg_catalog.pg_inherits i
            JOIN up ON i.inhrelid = up.relation)
        SELECT FROM up WHERE up.relation = '"Sales Dept"."Order Items"'::pg_catalog.regclass) THEN
      RAISE EXCEPTION USING MESSAGE = 'audit function "Sales Dept"."Sales Dept_Order Items_audit" records only table "Sales Dept"."Order Items"',
        ERRCODE = 'insufficient_privilege';
    END IF;
  END IF;
  IF TG_NAME OPERATOR(pg_catalog.<>) ALL (ARRAY['Sales Dept_Order Items_audit_insert'::pg_catalog.name, 'Sales Dept_Order Items_audit_update'::pg_catalog.name, 'Sales Dept_Order Items_audit_delete'::pg_catalog.name, 'Sales Dept_Order Items_audit_truncate'::pg_catalog.name, 'Sales Dept_Order Items_audit_update_key'::pg_catalog.name]) THEN
    RAISE EXCEPTION USING MESSAGE = 'audit function "Sales Dept"."Sales Dept_Order Items_audit" runs only from the audit triggers of "Sales Dept"."Order Items"',
      ERRCODE = 'insufficient_privilege';
  END IF;
  IF TG_OP = 'INSERT' THEN
    INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if", "note")
    SELECT 'I', audit_trigger.written_at, audit_trigger.writer, r."id", r."if", r."note"
    FROM audit_new_rows AS r;
  ELSIF TG_OP = 'UPDATE' THEN
    IF TG_LEVEL = 'ROW' THEN
      IF pg_catalog.pg_partition_root(TG_RELID) IS NULL
          AND NOT EXISTS (SELECT FROM "Sales Dept"."Order Items" AS now_at_key
            WHERE now_at_key."id" = OLD."id") THEN
        INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if", "note")
        VALUES ('K', audit_trigger.written_at, audit_trigger.writer, OLD."id", OLD."if", OLD."note");
      END IF;
      RETURN NULL;
    END IF;
    IF pg_catalog.pg_partition_root(TG_RELID) IS NOT NULL THEN
      IF EXISTS (SELECT FROM audit_old_rows AS o WHERE NOT EXISTS (
        SELECT FROM audit_new_rows AS n WHERE n."id" = o."id")) THEN
        INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if", "note")
        SELECT 'K', audit_trigger.written_at, audit_trigger.writer, o."id", o."if", o."note"
        FROM audit_old_rows AS o WHERE NOT EXISTS (
        SELECT FROM audit_new_rows AS n WHERE n."id" = o."id");
      END IF;
    END IF;
    INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if", "note")
    SELECT 'U', audit_trigger.written_at, audit_trigger.writer, r."id", r."if", r."note"
    FROM audit_new_rows AS r;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if", "note")
    SELECT 'D', audit_trigger.written_at, audit_trigger.writer, r."id", r."if", r."note"
    FROM audit_old_rows AS r;
  ELSIF TG_OP = 'TRUNCATE' THEN
    IF TG_RELID = '"Sales Dept"."Order Items"'::pg_catalog.regclass THEN
      INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if", "note")
      VALUES ('T', audit_trigger.written_at, audit_trigger.writer, NULL, NULL, NULL);
    ELSE
      IF EXISTS (WITH RECURSIVE tree(relation) AS (
            SELECT TG_RELID
            UNION
            SELECT i.inhrelid FROM pg_catalog.pg_inherits i
              JOIN tree ON i.inhparent = tree.relation)
          SELECT FROM tree
          WHERE pg_catalog.row_security_active(tree.relation::pg_catalog.regclass)) THEN
        RAISE EXCEPTION USING MESSAGE = 'cannot record the rows TRUNCATE removes from "Sales Dept"."Order Items" or a partition of it: row-level security hides rows from the audit function''s owner',
          ERRCODE = 'insufficient_privilege', HINT = 'Give the audit function''s owner BYPASSRLS, or own the table with it.';
      END IF;
      EXECUTE 'INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if", "note") '
        || (SELECT pg_catalog.string_agg('SELECT ''T'', $1, $2, r."id", r."if", r."note" FROM ONLY '
            || share.relation::pg_catalog.regclass::pg_catalog.text || ' AS r',
            ' UNION ALL ')
          FROM (WITH RECURSIVE tree(relation) AS (
              SELECT TG_RELID
              UNION
              SELECT i.inhrelid FROM pg_catalog.pg_inherits i
                JOIN tree ON i.inhparent = tree.relation
                WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t
                  WHERE t.tgrelid = i.inhrelid AND t.tgfoid = '"Sales Dept"."Sales Dept_Order Items_audit"()'::pg_catalog.regprocedure
                    AND t.tgenabled IN ('O', 'A')
                    AND (t.tgtype::pg_catalog.int4 & 32) <> 0))
            SELECT tree.relation FROM tree) AS share)
        USING audit_trigger.written_at, audit_trigger.writer;
    END IF;
  END IF;
  RETURN NULL;
END audit_trigger;
$audit$;
COMMENT ON FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() IS 'sqlalchemy-postgresql-audit:{"audit_table": "Order Items_audit", "captures": [], "columns": ["id", "if", "note"], "exclude_columns": [], "function": "Sales Dept_Order Items_audit", "key_columns": ["id"], "mode": "statement", "schema": "Sales Dept", "settings": [], "skip_unchanged": false, "table": "Order Items", "template": 2, "triggers": [{"name": "Sales Dept_Order Items_audit_insert", "operation": "INSERT"}, {"name": "Sales Dept_Order Items_audit_update", "operation": "UPDATE"}, {"name": "Sales Dept_Order Items_audit_delete", "operation": "DELETE"}, {"name": "Sales Dept_Order Items_audit_truncate", "operation": "TRUNCATE"}], "truncate_rows": false}';
REVOKE ALL ON FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() FROM PUBLIC;
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_insert' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_insert" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_insert"
AFTER INSERT ON "Sales Dept"."Order Items"
REFERENCING NEW TABLE AS audit_new_rows
FOR EACH STATEMENT
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_update' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_update"
AFTER UPDATE ON "Sales Dept"."Order Items"
REFERENCING OLD TABLE AS audit_old_rows NEW TABLE AS audit_new_rows
FOR EACH STATEMENT
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_delete' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_delete" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_delete"
AFTER DELETE ON "Sales Dept"."Order Items"
REFERENCING OLD TABLE AS audit_old_rows
FOR EACH STATEMENT
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_truncate' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_truncate" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_truncate"
AFTER TRUNCATE ON "Sales Dept"."Order Items"
FOR EACH STATEMENT
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_update_key"
AFTER UPDATE ON "Sales Dept"."Order Items"
FOR EACH ROW
WHEN (OLD."id" IS DISTINCT FROM NEW."id")
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  stale record;
  child pg_catalog.oid;
BEGIN
  FOR stale IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"Sales Dept"."Sales Dept_Order Items_audit"()')::pg_catalog.oid AND t.tgrelid OPERATOR(pg_catalog.<>) pg_catalog.to_regclass('"Sales Dept"."Order Items"')
      AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND NOT t.tgisinternal AND NOT ((t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_truncate' AND t.tgrelid OPERATOR(pg_catalog.=) ANY (ARRAY(
        WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[])))) OR (t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_update_key' AND t.tgrelid OPERATOR(pg_catalog.=) ANY (ARRAY(
        WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[]) AND NOT c.relispartition))))
  LOOP
    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(stale.tgname) OPERATOR(pg_catalog.||) ' ON '
      OPERATOR(pg_catalog.||) stale.tgrelid::pg_catalog.regclass::pg_catalog.text;
  END LOOP;
  FOR child IN WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[])
  LOOP
    EXECUTE 'CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_truncate" BEFORE TRUNCATE ON ' OPERATOR(pg_catalog.||) child::pg_catalog.regclass::pg_catalog.text
      OPERATOR(pg_catalog.||) ' FOR EACH STATEMENT EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"()';
  END LOOP;
  FOR child IN WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[]) AND NOT c.relispartition
  LOOP
    EXECUTE 'CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_update_key" AFTER UPDATE ON ' OPERATOR(pg_catalog.||) child::pg_catalog.regclass::pg_catalog.text
      OPERATOR(pg_catalog.||) ' FOR EACH ROW
WHEN (OLD."id" IS DISTINCT FROM NEW."id")
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"()';
  END LOOP;
END;
$audit$;
DO $audit$
DECLARE
  k record;
BEGIN
  FOR k IN SELECT t.tgname, t.tgrelid, t.tgqual FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"Sales Dept"."Sales Dept_Order Items_audit"()')::pg_catalog.oid
      AND t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_update_key' AND t.tgparentid OPERATOR(pg_catalog.=) 0
  LOOP
    EXECUTE 'COMMENT ON TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(k.tgname)
      OPERATOR(pg_catalog.||) ' ON ' OPERATOR(pg_catalog.||) k.tgrelid::pg_catalog.regclass::pg_catalog.text
      OPERATOR(pg_catalog.||) ' IS ' OPERATOR(pg_catalog.||) pg_catalog.quote_literal('sqlalchemy-postgresql-audit key trigger, condition ' OPERATOR(pg_catalog.||) pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(k.tgqual::pg_catalog.text, 'UTF8')), 'hex'));
  END LOOP;
END;
$audit$;
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_insert" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_delete" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_truncate" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update_key" ON "Sales Dept"."Order Items";
DO $audit$
DECLARE
  stale record;
BEGIN
  FOR stale IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"Sales Dept"."Sales Dept_Order Items_audit"()')::pg_catalog.oid AND t.tgrelid OPERATOR(pg_catalog.<>) pg_catalog.to_regclass('"Sales Dept"."Order Items"')
      AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND NOT t.tgisinternal AND NOT (false)
  LOOP
    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(stale.tgname) OPERATOR(pg_catalog.||) ' ON '
      OPERATOR(pg_catalog.||) stale.tgrelid::pg_catalog.regclass::pg_catalog.text;
  END LOOP;
END;
$audit$;
DROP FUNCTION IF EXISTS "Sales Dept"."Sales Dept_Order Items_audit"();

-- next spec
CREATE OR REPLACE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
AS $audit$
<<audit_trigger>>
DECLARE
  writer pg_catalog.text := CASE WHEN pg_catalog.current_setting('role') = 'none' THEN session_user ELSE pg_catalog.current_setting('role') END;
  written_at pg_catalog.timestamptz := pg_catalog.clock_timestamp();
  setting_0 VARCHAR(30) := NULLIF(pg_catalog.current_setting('audit.username', true), '');
  setting_1 INTEGER := NULLIF(pg_catalog.current_setting('audit.tenant', true), '');
BEGIN
  IF (TG_TABLE_SCHEMA OPERATOR(pg_catalog.<>) 'Sales Dept'
      OR TG_TABLE_NAME OPERATOR(pg_catalog.<>) 'Order Items')
     AND pg_catalog.pg_partition_root(TG_RELID) IS DISTINCT FROM '"Sales Dept"."Order Items"'::pg_catalog.regclass THEN
    IF NOT EXISTS (WITH RECURSIVE up(relation) AS (
          SELECT i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhrelid = TG_RELID
          UNION
          SELECT i.inhparent FROM pg_catalog.pg_inherits i
            JOIN up ON i.inhrelid = up.relation)
        SELECT FROM up WHERE up.relation = '"Sales Dept"."Order Items"'::pg_catalog.regclass) THEN
      RAISE EXCEPTION USING MESSAGE = 'audit function "Sales Dept"."Sales Dept_Order Items_audit" records only table "Sales Dept"."Order Items"',
        ERRCODE = 'insufficient_privilege';
    END IF;
  END IF;
  IF TG_NAME OPERATOR(pg_catalog.<>) ALL (ARRAY['Sales Dept_Order Items_audit_insert'::pg_catalog.name, 'Sales Dept_Order Items_audit_update'::pg_catalog.name, 'Sales Dept_Order Items_audit_delete'::pg_catalog.name, 'Sales Dept_Order Items_audit_truncate'::pg_catalog.name]) THEN
    RAISE EXCEPTION USING MESSAGE = 'audit function "Sales Dept"."Sales Dept_Order Items_audit" runs only from the audit triggers of "Sales Dept"."Order Items"',
      ERRCODE = 'insufficient_privilege';
  END IF;
  IF TG_OP = 'INSERT' THEN
    INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_username", "audit_tenant", "id", "if", "note")
    VALUES ('I', audit_trigger.written_at, audit_trigger.writer, audit_trigger.setting_0, audit_trigger.setting_1, NEW."id", NEW."if", NEW."note");
  ELSIF TG_OP = 'UPDATE' THEN
    IF ROW(OLD."id") IS DISTINCT FROM ROW(NEW."id") THEN
      IF NOT EXISTS (SELECT FROM "Sales Dept"."Order Items" AS now_at_key
          WHERE now_at_key."id" = OLD."id") THEN
        INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_username", "audit_tenant", "id", "if", "note")
        VALUES ('K', audit_trigger.written_at, audit_trigger.writer, audit_trigger.setting_0, audit_trigger.setting_1, OLD."id", OLD."if", OLD."note");
      END IF;
    END IF;
    INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_username", "audit_tenant", "id", "if", "note")
    VALUES ('U', audit_trigger.written_at, audit_trigger.writer, audit_trigger.setting_0, audit_trigger.setting_1, NEW."id", NEW."if", NEW."note");
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_username", "audit_tenant", "id", "if", "note")
    VALUES ('D', audit_trigger.written_at, audit_trigger.writer, audit_trigger.setting_0, audit_trigger.setting_1, OLD."id", OLD."if", OLD."note");
  ELSIF TG_OP = 'TRUNCATE' THEN
    IF TG_RELID = '"Sales Dept"."Order Items"'::pg_catalog.regclass THEN
      INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_username", "audit_tenant", "id", "if", "note")
      VALUES ('T', audit_trigger.written_at, audit_trigger.writer, audit_trigger.setting_0, audit_trigger.setting_1, NULL, NULL, NULL);
    ELSE
      IF EXISTS (WITH RECURSIVE tree(relation) AS (
            SELECT TG_RELID
            UNION
            SELECT i.inhrelid FROM pg_catalog.pg_inherits i
              JOIN tree ON i.inhparent = tree.relation)
          SELECT FROM tree
          WHERE pg_catalog.row_security_active(tree.relation::pg_catalog.regclass)) THEN
        RAISE EXCEPTION USING MESSAGE = 'cannot record the rows TRUNCATE removes from "Sales Dept"."Order Items" or a partition of it: row-level security hides rows from the audit function''s owner',
          ERRCODE = 'insufficient_privilege', HINT = 'Give the audit function''s owner BYPASSRLS, or own the table with it.';
      END IF;
      EXECUTE 'INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_username", "audit_tenant", "id", "if", "note") '
        || (SELECT pg_catalog.string_agg('SELECT ''T'', $1, $2, $3, $4, r."id", r."if", r."note" FROM ONLY '
            || share.relation::pg_catalog.regclass::pg_catalog.text || ' AS r',
            ' UNION ALL ')
          FROM (WITH RECURSIVE tree(relation) AS (
              SELECT TG_RELID
              UNION
              SELECT i.inhrelid FROM pg_catalog.pg_inherits i
                JOIN tree ON i.inhparent = tree.relation
                WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t
                  WHERE t.tgrelid = i.inhrelid AND t.tgfoid = '"Sales Dept"."Sales Dept_Order Items_audit"()'::pg_catalog.regprocedure
                    AND t.tgenabled IN ('O', 'A')
                    AND (t.tgtype::pg_catalog.int4 & 32) <> 0))
            SELECT tree.relation FROM tree) AS share)
        USING audit_trigger.written_at, audit_trigger.writer, audit_trigger.setting_0, audit_trigger.setting_1;
    END IF;
  END IF;
  IF audit_trigger.setting_0 IS NULL THEN
    RAISE EXCEPTION USING MESSAGE = 'audit setting audit.username is required to write to table "Sales Dept"."Order Items" but is not set in this transaction',
      ERRCODE = 'not_null_violation', HINT = 'Write inside sqlalchemy_postgresql_audit.audit_context(username=...), or set it with sqlalchemy_postgresql_audit.set_session_vars() in the same transaction.';
  END IF;
  RETURN NULL;
END audit_trigger;
$audit$;
COMMENT ON FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() IS 'sqlalchemy-postgresql-audit:{"audit_table": "Order Items_audit", "captures": [], "columns": ["id", "if", "note"], "exclude_columns": [], "function": "Sales Dept_Order Items_audit", "key_columns": ["id"], "mode": "row", "schema": "Sales Dept", "settings": [{"column": "audit_username", "name": "username", "required": true, "sql_type": "VARCHAR(30)"}, {"column": "audit_tenant", "name": "tenant", "required": false, "sql_type": "INTEGER"}], "skip_unchanged": false, "table": "Order Items", "template": 2, "triggers": [{"name": "Sales Dept_Order Items_audit_insert", "operation": "INSERT"}, {"name": "Sales Dept_Order Items_audit_update", "operation": "UPDATE"}, {"name": "Sales Dept_Order Items_audit_delete", "operation": "DELETE"}, {"name": "Sales Dept_Order Items_audit_truncate", "operation": "TRUNCATE"}], "truncate_rows": false}';
REVOKE ALL ON FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() FROM PUBLIC;
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_insert' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 1) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_insert" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_insert"
AFTER INSERT ON "Sales Dept"."Order Items"
FOR EACH ROW
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_update' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 1) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_update"
AFTER UPDATE ON "Sales Dept"."Order Items"
FOR EACH ROW
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_delete' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 1) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_delete" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_delete"
AFTER DELETE ON "Sales Dept"."Order Items"
FOR EACH ROW
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_truncate' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_truncate" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_truncate"
AFTER TRUNCATE ON "Sales Dept"."Order Items"
FOR EACH STATEMENT
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  stale record;
  child pg_catalog.oid;
BEGIN
  FOR stale IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"Sales Dept"."Sales Dept_Order Items_audit"()')::pg_catalog.oid AND t.tgrelid OPERATOR(pg_catalog.<>) pg_catalog.to_regclass('"Sales Dept"."Order Items"')
      AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND NOT t.tgisinternal AND NOT ((t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_truncate' AND t.tgrelid OPERATOR(pg_catalog.=) ANY (ARRAY(
        WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[])))))
  LOOP
    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(stale.tgname) OPERATOR(pg_catalog.||) ' ON '
      OPERATOR(pg_catalog.||) stale.tgrelid::pg_catalog.regclass::pg_catalog.text;
  END LOOP;
  FOR child IN WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[])
  LOOP
    EXECUTE 'CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_truncate" BEFORE TRUNCATE ON ' OPERATOR(pg_catalog.||) child::pg_catalog.regclass::pg_catalog.text
      OPERATOR(pg_catalog.||) ' FOR EACH STATEMENT EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"()';
  END LOOP;
END;
$audit$;
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_insert" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_delete" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_truncate" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update_key" ON "Sales Dept"."Order Items";
DO $audit$
DECLARE
  stale record;
BEGIN
  FOR stale IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"Sales Dept"."Sales Dept_Order Items_audit"()')::pg_catalog.oid AND t.tgrelid OPERATOR(pg_catalog.<>) pg_catalog.to_regclass('"Sales Dept"."Order Items"')
      AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND NOT t.tgisinternal AND NOT (false)
  LOOP
    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(stale.tgname) OPERATOR(pg_catalog.||) ' ON '
      OPERATOR(pg_catalog.||) stale.tgrelid::pg_catalog.regclass::pg_catalog.text;
  END LOOP;
END;
$audit$;
DROP FUNCTION IF EXISTS "Sales Dept"."Sales Dept_Order Items_audit"();

-- next spec
CREATE OR REPLACE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
SET enable_nestloop TO off
AS $audit$
<<audit_trigger>>
DECLARE
  writer pg_catalog.text := CASE WHEN pg_catalog.current_setting('role') = 'none' THEN session_user ELSE pg_catalog.current_setting('role') END;
  written_at pg_catalog.timestamptz := pg_catalog.clock_timestamp();
  setting_0 VARCHAR(30) := NULLIF(pg_catalog.current_setting('audit.username', true), '');
  setting_1 INTEGER := NULLIF(pg_catalog.current_setting('audit.tenant', true), '');
  audited_rows pg_catalog.int8;
BEGIN
  IF (TG_TABLE_SCHEMA OPERATOR(pg_catalog.<>) 'Sales Dept'
      OR TG_TABLE_NAME OPERATOR(pg_catalog.<>) 'Order Items')
     AND pg_catalog.pg_partition_root(TG_RELID) IS DISTINCT FROM '"Sales Dept"."Order Items"'::pg_catalog.regclass THEN
    IF NOT EXISTS (WITH RECURSIVE up(relation) AS (
          SELECT i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhrelid = TG_RELID
          UNION
          SELECT i.inhparent FROM pg_catalog.pg_inherits i
            JOIN up ON i.inhrelid = up.relation)
        SELECT FROM up WHERE up.relation = '"Sales Dept"."Order Items"'::pg_catalog.regclass) THEN
      RAISE EXCEPTION USING MESSAGE = 'audit function "Sales Dept"."Sales Dept_Order Items_audit" records only table "Sales Dept"."Order Items"',
        ERRCODE = 'insufficient_privilege';
    END IF;
  END IF;
  IF TG_NAME OPERATOR(pg_catalog.<>) ALL (ARRAY['Sales Dept_Order Items_audit_update'::pg_catalog.name, 'Sales Dept_Order Items_audit_delete'::pg_catalog.name, 'Sales Dept_Order Items_audit_update_key'::pg_catalog.name]) THEN
    RAISE EXCEPTION USING MESSAGE = 'audit function "Sales Dept"."Sales Dept_Order Items_audit" runs only from the audit triggers of "Sales Dept"."Order Items"',
      ERRCODE = 'insufficient_privilege';
  END IF;
  IF TG_OP = 'UPDATE' THEN
    IF TG_LEVEL = 'ROW' THEN
      IF pg_catalog.pg_partition_root(TG_RELID) IS NULL
          AND NOT EXISTS (SELECT FROM "Sales Dept"."Order Items" AS now_at_key
            WHERE now_at_key."id" = OLD."id") THEN
        INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_username", "audit_tenant", "id", "if", "note")
        VALUES ('K', audit_trigger.written_at, audit_trigger.writer, audit_trigger.setting_0, audit_trigger.setting_1, OLD."id", OLD."if", OLD."note");
      END IF;
      RETURN NULL;
    END IF;
    IF pg_catalog.pg_partition_root(TG_RELID) IS NOT NULL THEN
      IF EXISTS (SELECT FROM audit_old_rows AS o WHERE NOT EXISTS (
        SELECT FROM audit_new_rows AS n WHERE n."id" = o."id")) THEN
        INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_username", "audit_tenant", "id", "if", "note")
        SELECT 'K', audit_trigger.written_at, audit_trigger.writer, audit_trigger.setting_0, audit_trigger.setting_1, o."id", o."if", o."note"
        FROM audit_old_rows AS o WHERE NOT EXISTS (
        SELECT FROM audit_new_rows AS n WHERE n."id" = o."id");
      END IF;
    END IF;
    INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_username", "audit_tenant", "id", "if", "note")
    SELECT 'U', audit_trigger.written_at, audit_trigger.writer, audit_trigger.setting_0, audit_trigger.setting_1, r."id", r."if", r."note"
    FROM audit_new_rows AS r;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_username", "audit_tenant", "id", "if", "note")
    SELECT 'D', audit_trigger.written_at, audit_trigger.writer, audit_trigger.setting_0, audit_trigger.setting_1, r."id", r."if", r."note"
    FROM audit_old_rows AS r;
  END IF;
  GET DIAGNOSTICS audit_trigger.audited_rows = ROW_COUNT;
  IF audit_trigger.audited_rows > 0 THEN
    IF audit_trigger.setting_0 IS NULL THEN
      RAISE EXCEPTION USING MESSAGE = 'audit setting audit.username is required to write to table "Sales Dept"."Order Items" but is not set in this transaction',
        ERRCODE = 'not_null_violation', HINT = 'Write inside sqlalchemy_postgresql_audit.audit_context(username=...), or set it with sqlalchemy_postgresql_audit.set_session_vars() in the same transaction.';
    END IF;
  END IF;
  RETURN NULL;
END audit_trigger;
$audit$;
COMMENT ON FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() IS 'sqlalchemy-postgresql-audit:{"audit_table": "Order Items_audit", "captures": [], "columns": ["id", "if", "note"], "exclude_columns": [], "function": "Sales Dept_Order Items_audit", "key_columns": ["id"], "mode": "statement", "schema": "Sales Dept", "settings": [{"column": "audit_username", "name": "username", "required": true, "sql_type": "VARCHAR(30)"}, {"column": "audit_tenant", "name": "tenant", "required": false, "sql_type": "INTEGER"}], "skip_unchanged": false, "table": "Order Items", "template": 2, "triggers": [{"name": "Sales Dept_Order Items_audit_update", "operation": "UPDATE"}, {"name": "Sales Dept_Order Items_audit_delete", "operation": "DELETE"}], "truncate_rows": false}';
REVOKE ALL ON FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() FROM PUBLIC;
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_update' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_update"
AFTER UPDATE ON "Sales Dept"."Order Items"
REFERENCING OLD TABLE AS audit_old_rows NEW TABLE AS audit_new_rows
FOR EACH STATEMENT
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_delete' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_delete" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_delete"
AFTER DELETE ON "Sales Dept"."Order Items"
REFERENCING OLD TABLE AS audit_old_rows
FOR EACH STATEMENT
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_update_key"
AFTER UPDATE ON "Sales Dept"."Order Items"
FOR EACH ROW
WHEN (OLD."id" IS DISTINCT FROM NEW."id")
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  stale record;
  child pg_catalog.oid;
BEGIN
  FOR stale IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"Sales Dept"."Sales Dept_Order Items_audit"()')::pg_catalog.oid AND t.tgrelid OPERATOR(pg_catalog.<>) pg_catalog.to_regclass('"Sales Dept"."Order Items"')
      AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND NOT t.tgisinternal AND NOT ((t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_update_key' AND t.tgrelid OPERATOR(pg_catalog.=) ANY (ARRAY(
        WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[]) AND NOT c.relispartition))))
  LOOP
    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(stale.tgname) OPERATOR(pg_catalog.||) ' ON '
      OPERATOR(pg_catalog.||) stale.tgrelid::pg_catalog.regclass::pg_catalog.text;
  END LOOP;
  FOR child IN WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[]) AND NOT c.relispartition
  LOOP
    EXECUTE 'CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_update_key" AFTER UPDATE ON ' OPERATOR(pg_catalog.||) child::pg_catalog.regclass::pg_catalog.text
      OPERATOR(pg_catalog.||) ' FOR EACH ROW
WHEN (OLD."id" IS DISTINCT FROM NEW."id")
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"()';
  END LOOP;
END;
$audit$;
DO $audit$
DECLARE
  k record;
BEGIN
  FOR k IN SELECT t.tgname, t.tgrelid, t.tgqual FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"Sales Dept"."Sales Dept_Order Items_audit"()')::pg_catalog.oid
      AND t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_update_key' AND t.tgparentid OPERATOR(pg_catalog.=) 0
  LOOP
    EXECUTE 'COMMENT ON TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(k.tgname)
      OPERATOR(pg_catalog.||) ' ON ' OPERATOR(pg_catalog.||) k.tgrelid::pg_catalog.regclass::pg_catalog.text
      OPERATOR(pg_catalog.||) ' IS ' OPERATOR(pg_catalog.||) pg_catalog.quote_literal('sqlalchemy-postgresql-audit key trigger, condition ' OPERATOR(pg_catalog.||) pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(k.tgqual::pg_catalog.text, 'UTF8')), 'hex'));
  END LOOP;
END;
$audit$;
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_delete" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update_key" ON "Sales Dept"."Order Items";
DO $audit$
DECLARE
  stale record;
BEGIN
  FOR stale IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"Sales Dept"."Sales Dept_Order Items_audit"()')::pg_catalog.oid AND t.tgrelid OPERATOR(pg_catalog.<>) pg_catalog.to_regclass('"Sales Dept"."Order Items"')
      AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND NOT t.tgisinternal AND NOT (false)
  LOOP
    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(stale.tgname) OPERATOR(pg_catalog.||) ' ON '
      OPERATOR(pg_catalog.||) stale.tgrelid::pg_catalog.regclass::pg_catalog.text;
  END LOOP;
END;
$audit$;
DROP FUNCTION IF EXISTS "Sales Dept"."Sales Dept_Order Items_audit"();

-- next spec
CREATE OR REPLACE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
SET enable_nestloop TO off
AS $audit$
<<audit_trigger>>
DECLARE
  writer pg_catalog.text := CASE WHEN pg_catalog.current_setting('role') = 'none' THEN session_user ELSE pg_catalog.current_setting('role') END;
  written_at pg_catalog.timestamptz := pg_catalog.clock_timestamp();
BEGIN
  IF (TG_TABLE_SCHEMA OPERATOR(pg_catalog.<>) 'Sales Dept'
      OR TG_TABLE_NAME OPERATOR(pg_catalog.<>) 'Order Items')
     AND pg_catalog.pg_partition_root(TG_RELID) IS DISTINCT FROM '"Sales Dept"."Order Items"'::pg_catalog.regclass THEN
    IF NOT EXISTS (WITH RECURSIVE up(relation) AS (
          SELECT i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhrelid = TG_RELID
          UNION
          SELECT i.inhparent FROM pg_catalog.pg_inherits i
            JOIN up ON i.inhrelid = up.relation)
        SELECT FROM up WHERE up.relation = '"Sales Dept"."Order Items"'::pg_catalog.regclass) THEN
      RAISE EXCEPTION USING MESSAGE = 'audit function "Sales Dept"."Sales Dept_Order Items_audit" records only table "Sales Dept"."Order Items"',
        ERRCODE = 'insufficient_privilege';
    END IF;
  END IF;
  IF TG_NAME OPERATOR(pg_catalog.<>) ALL (ARRAY['Sales Dept_Order Items_audit_insert'::pg_catalog.name, 'Sales Dept_Order Items_audit_update'::pg_catalog.name, 'Sales Dept_Order Items_audit_delete'::pg_catalog.name, 'Sales Dept_Order Items_audit_truncate'::pg_catalog.name, 'Sales Dept_Order Items_audit_update_key'::pg_catalog.name]) THEN
    RAISE EXCEPTION USING MESSAGE = 'audit function "Sales Dept"."Sales Dept_Order Items_audit" runs only from the audit triggers of "Sales Dept"."Order Items"',
      ERRCODE = 'insufficient_privilege';
  END IF;
  IF TG_OP = 'INSERT' THEN
    INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if")
    SELECT 'I', audit_trigger.written_at, audit_trigger.writer, r."id", r."if"
    FROM audit_new_rows AS r;
  ELSIF TG_OP = 'UPDATE' THEN
    IF TG_LEVEL = 'ROW' THEN
      IF pg_catalog.pg_partition_root(TG_RELID) IS NULL
          AND NOT EXISTS (SELECT FROM "Sales Dept"."Order Items" AS now_at_key
            WHERE now_at_key."id" = OLD."id") THEN
        INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if")
        VALUES ('K', audit_trigger.written_at, audit_trigger.writer, OLD."id", OLD."if");
      END IF;
      RETURN NULL;
    END IF;
    IF pg_catalog.pg_partition_root(TG_RELID) IS NOT NULL THEN
      IF EXISTS (SELECT FROM audit_old_rows AS o WHERE NOT EXISTS (
        SELECT FROM audit_new_rows AS n WHERE n."id" = o."id")) THEN
        INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if")
        SELECT 'K', audit_trigger.written_at, audit_trigger.writer, o."id", o."if"
        FROM audit_old_rows AS o WHERE NOT EXISTS (
        SELECT FROM audit_new_rows AS n WHERE n."id" = o."id");
      END IF;
    END IF;
    INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if")
    SELECT 'U', audit_trigger.written_at, audit_trigger.writer, r."id", r."if"
    FROM audit_new_rows AS r LEFT JOIN audit_old_rows AS o ON r."id" = o."id"
    WHERE ROW(o."id", o."if")::pg_catalog.record OPERATOR(pg_catalog.*<>) ROW(r."id", r."if")::pg_catalog.record
      OR EXISTS (SELECT FROM audit_old_rows AS old_key WHERE NOT EXISTS (
        SELECT FROM audit_new_rows AS new_key WHERE new_key."id" = old_key."id"));
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if")
    SELECT 'D', audit_trigger.written_at, audit_trigger.writer, r."id", r."if"
    FROM audit_old_rows AS r;
  ELSIF TG_OP = 'TRUNCATE' THEN
    IF TG_RELID = '"Sales Dept"."Order Items"'::pg_catalog.regclass THEN
      INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if")
      VALUES ('T', audit_trigger.written_at, audit_trigger.writer, NULL, NULL);
    ELSE
      IF EXISTS (WITH RECURSIVE tree(relation) AS (
            SELECT TG_RELID
            UNION
            SELECT i.inhrelid FROM pg_catalog.pg_inherits i
              JOIN tree ON i.inhparent = tree.relation)
          SELECT FROM tree
          WHERE pg_catalog.row_security_active(tree.relation::pg_catalog.regclass)) THEN
        RAISE EXCEPTION USING MESSAGE = 'cannot record the rows TRUNCATE removes from "Sales Dept"."Order Items" or a partition of it: row-level security hides rows from the audit function''s owner',
          ERRCODE = 'insufficient_privilege', HINT = 'Give the audit function''s owner BYPASSRLS, or own the table with it.';
      END IF;
      EXECUTE 'INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if") '
        || (SELECT pg_catalog.string_agg('SELECT ''T'', $1, $2, r."id", r."if" FROM ONLY '
            || share.relation::pg_catalog.regclass::pg_catalog.text || ' AS r',
            ' UNION ALL ')
          FROM (WITH RECURSIVE tree(relation) AS (
              SELECT TG_RELID
              UNION
              SELECT i.inhrelid FROM pg_catalog.pg_inherits i
                JOIN tree ON i.inhparent = tree.relation
                WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t
                  WHERE t.tgrelid = i.inhrelid AND t.tgfoid = '"Sales Dept"."Sales Dept_Order Items_audit"()'::pg_catalog.regprocedure
                    AND t.tgenabled IN ('O', 'A')
                    AND (t.tgtype::pg_catalog.int4 & 32) <> 0))
            SELECT tree.relation FROM tree) AS share)
        USING audit_trigger.written_at, audit_trigger.writer;
    END IF;
  END IF;
  RETURN NULL;
END audit_trigger;
$audit$;
COMMENT ON FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() IS 'sqlalchemy-postgresql-audit:{"audit_table": "Order Items_audit", "captures": [], "columns": ["id", "if"], "exclude_columns": ["note"], "function": "Sales Dept_Order Items_audit", "key_columns": ["id"], "mode": "statement", "schema": "Sales Dept", "settings": [], "skip_unchanged": true, "table": "Order Items", "template": 2, "triggers": [{"name": "Sales Dept_Order Items_audit_insert", "operation": "INSERT"}, {"name": "Sales Dept_Order Items_audit_update", "operation": "UPDATE"}, {"name": "Sales Dept_Order Items_audit_delete", "operation": "DELETE"}, {"name": "Sales Dept_Order Items_audit_truncate", "operation": "TRUNCATE"}], "truncate_rows": false}';
REVOKE ALL ON FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() FROM PUBLIC;
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_insert' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_insert" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_insert"
AFTER INSERT ON "Sales Dept"."Order Items"
REFERENCING NEW TABLE AS audit_new_rows
FOR EACH STATEMENT
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_update' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_update"
AFTER UPDATE ON "Sales Dept"."Order Items"
REFERENCING OLD TABLE AS audit_old_rows NEW TABLE AS audit_new_rows
FOR EACH STATEMENT
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_delete' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_delete" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_delete"
AFTER DELETE ON "Sales Dept"."Order Items"
REFERENCING OLD TABLE AS audit_old_rows
FOR EACH STATEMENT
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_truncate' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_truncate" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_truncate"
AFTER TRUNCATE ON "Sales Dept"."Order Items"
FOR EACH STATEMENT
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_update_key"
AFTER UPDATE ON "Sales Dept"."Order Items"
FOR EACH ROW
WHEN (OLD."id" IS DISTINCT FROM NEW."id")
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  stale record;
  child pg_catalog.oid;
BEGIN
  FOR stale IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"Sales Dept"."Sales Dept_Order Items_audit"()')::pg_catalog.oid AND t.tgrelid OPERATOR(pg_catalog.<>) pg_catalog.to_regclass('"Sales Dept"."Order Items"')
      AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND NOT t.tgisinternal AND NOT ((t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_truncate' AND t.tgrelid OPERATOR(pg_catalog.=) ANY (ARRAY(
        WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[])))) OR (t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_update_key' AND t.tgrelid OPERATOR(pg_catalog.=) ANY (ARRAY(
        WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[]) AND NOT c.relispartition))))
  LOOP
    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(stale.tgname) OPERATOR(pg_catalog.||) ' ON '
      OPERATOR(pg_catalog.||) stale.tgrelid::pg_catalog.regclass::pg_catalog.text;
  END LOOP;
  FOR child IN WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[])
  LOOP
    EXECUTE 'CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_truncate" BEFORE TRUNCATE ON ' OPERATOR(pg_catalog.||) child::pg_catalog.regclass::pg_catalog.text
      OPERATOR(pg_catalog.||) ' FOR EACH STATEMENT EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"()';
  END LOOP;
  FOR child IN WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[]) AND NOT c.relispartition
  LOOP
    EXECUTE 'CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_update_key" AFTER UPDATE ON ' OPERATOR(pg_catalog.||) child::pg_catalog.regclass::pg_catalog.text
      OPERATOR(pg_catalog.||) ' FOR EACH ROW
WHEN (OLD."id" IS DISTINCT FROM NEW."id")
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"()';
  END LOOP;
END;
$audit$;
DO $audit$
DECLARE
  k record;
BEGIN
  FOR k IN SELECT t.tgname, t.tgrelid, t.tgqual FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"Sales Dept"."Sales Dept_Order Items_audit"()')::pg_catalog.oid
      AND t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_update_key' AND t.tgparentid OPERATOR(pg_catalog.=) 0
  LOOP
    EXECUTE 'COMMENT ON TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(k.tgname)
      OPERATOR(pg_catalog.||) ' ON ' OPERATOR(pg_catalog.||) k.tgrelid::pg_catalog.regclass::pg_catalog.text
      OPERATOR(pg_catalog.||) ' IS ' OPERATOR(pg_catalog.||) pg_catalog.quote_literal('sqlalchemy-postgresql-audit key trigger, condition ' OPERATOR(pg_catalog.||) pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(k.tgqual::pg_catalog.text, 'UTF8')), 'hex'));
  END LOOP;
END;
$audit$;
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_insert" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_delete" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_truncate" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update_key" ON "Sales Dept"."Order Items";
DO $audit$
DECLARE
  stale record;
BEGIN
  FOR stale IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"Sales Dept"."Sales Dept_Order Items_audit"()')::pg_catalog.oid AND t.tgrelid OPERATOR(pg_catalog.<>) pg_catalog.to_regclass('"Sales Dept"."Order Items"')
      AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND NOT t.tgisinternal AND NOT (false)
  LOOP
    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(stale.tgname) OPERATOR(pg_catalog.||) ' ON '
      OPERATOR(pg_catalog.||) stale.tgrelid::pg_catalog.regclass::pg_catalog.text;
  END LOOP;
END;
$audit$;
DROP FUNCTION IF EXISTS "Sales Dept"."Sales Dept_Order Items_audit"();

-- next spec
CREATE OR REPLACE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
AS $audit$
<<audit_trigger>>
DECLARE
  writer pg_catalog.text := CASE WHEN pg_catalog.current_setting('role') = 'none' THEN session_user ELSE pg_catalog.current_setting('role') END;
  written_at pg_catalog.timestamptz := pg_catalog.clock_timestamp();
BEGIN
  IF (TG_TABLE_SCHEMA OPERATOR(pg_catalog.<>) 'Sales Dept'
      OR TG_TABLE_NAME OPERATOR(pg_catalog.<>) 'Order Items')
     AND pg_catalog.pg_partition_root(TG_RELID) IS DISTINCT FROM '"Sales Dept"."Order Items"'::pg_catalog.regclass THEN
    IF NOT EXISTS (WITH RECURSIVE up(relation) AS (
          SELECT i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhrelid = TG_RELID
          UNION
          SELECT i.inhparent FROM pg_catalog.pg_inherits i
            JOIN up ON i.inhrelid = up.relation)
        SELECT FROM up WHERE up.relation = '"Sales Dept"."Order Items"'::pg_catalog.regclass) THEN
      RAISE EXCEPTION USING MESSAGE = 'audit function "Sales Dept"."Sales Dept_Order Items_audit" records only table "Sales Dept"."Order Items"',
        ERRCODE = 'insufficient_privilege';
    END IF;
  END IF;
  IF TG_NAME OPERATOR(pg_catalog.<>) ALL (ARRAY['Sales Dept_Order Items_audit_insert'::pg_catalog.name, 'Sales Dept_Order Items_audit_update'::pg_catalog.name, 'Sales Dept_Order Items_audit_delete'::pg_catalog.name, 'Sales Dept_Order Items_audit_truncate'::pg_catalog.name]) THEN
    RAISE EXCEPTION USING MESSAGE = 'audit function "Sales Dept"."Sales Dept_Order Items_audit" runs only from the audit triggers of "Sales Dept"."Order Items"',
      ERRCODE = 'insufficient_privilege';
  END IF;
  IF TG_OP = 'INSERT' THEN
    INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if", "note")
    VALUES ('I', audit_trigger.written_at, audit_trigger.writer, NEW."id", NEW."if", NEW."note");
  ELSIF TG_OP = 'UPDATE' THEN
    IF NOT (ROW(OLD."id", OLD."if", OLD."note")::pg_catalog.record OPERATOR(pg_catalog.*<>) ROW(NEW."id", NEW."if", NEW."note")::pg_catalog.record) THEN
      RETURN NULL;
    END IF;
    IF ROW(OLD."id") IS DISTINCT FROM ROW(NEW."id") THEN
      IF NOT EXISTS (SELECT FROM "Sales Dept"."Order Items" AS now_at_key
          WHERE now_at_key."id" = OLD."id") THEN
        INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if", "note")
        VALUES ('K', audit_trigger.written_at, audit_trigger.writer, OLD."id", OLD."if", OLD."note");
      END IF;
    END IF;
    INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if", "note")
    VALUES ('U', audit_trigger.written_at, audit_trigger.writer, NEW."id", NEW."if", NEW."note");
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if", "note")
    VALUES ('D', audit_trigger.written_at, audit_trigger.writer, OLD."id", OLD."if", OLD."note");
  ELSIF TG_OP = 'TRUNCATE' THEN
    IF TG_RELID = '"Sales Dept"."Order Items"'::pg_catalog.regclass THEN
      INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if", "note")
      VALUES ('T', audit_trigger.written_at, audit_trigger.writer, NULL, NULL, NULL);
    ELSE
      IF EXISTS (WITH RECURSIVE tree(relation) AS (
            SELECT TG_RELID
            UNION
            SELECT i.inhrelid FROM pg_catalog.pg_inherits i
              JOIN tree ON i.inhparent = tree.relation)
          SELECT FROM tree
          WHERE pg_catalog.row_security_active(tree.relation::pg_catalog.regclass)) THEN
        RAISE EXCEPTION USING MESSAGE = 'cannot record the rows TRUNCATE removes from "Sales Dept"."Order Items" or a partition of it: row-level security hides rows from the audit function''s owner',
          ERRCODE = 'insufficient_privilege', HINT = 'Give the audit function''s owner BYPASSRLS, or own the table with it.';
      END IF;
      EXECUTE 'INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "id", "if", "note") '
        || (SELECT pg_catalog.string_agg('SELECT ''T'', $1, $2, r."id", r."if", r."note" FROM ONLY '
            || share.relation::pg_catalog.regclass::pg_catalog.text || ' AS r',
            ' UNION ALL ')
          FROM (WITH RECURSIVE tree(relation) AS (
              SELECT TG_RELID
              UNION
              SELECT i.inhrelid FROM pg_catalog.pg_inherits i
                JOIN tree ON i.inhparent = tree.relation
                WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t
                  WHERE t.tgrelid = i.inhrelid AND t.tgfoid = '"Sales Dept"."Sales Dept_Order Items_audit"()'::pg_catalog.regprocedure
                    AND t.tgenabled IN ('O', 'A')
                    AND (t.tgtype::pg_catalog.int4 & 32) <> 0))
            SELECT tree.relation FROM tree) AS share)
        USING audit_trigger.written_at, audit_trigger.writer;
    END IF;
  END IF;
  RETURN NULL;
END audit_trigger;
$audit$;
COMMENT ON FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() IS 'sqlalchemy-postgresql-audit:{"audit_table": "Order Items_audit", "captures": [], "columns": ["id", "if", "note"], "exclude_columns": [], "function": "Sales Dept_Order Items_audit", "key_columns": ["id"], "mode": "row", "schema": "Sales Dept", "settings": [], "skip_unchanged": true, "table": "Order Items", "template": 2, "triggers": [{"name": "Sales Dept_Order Items_audit_insert", "operation": "INSERT"}, {"name": "Sales Dept_Order Items_audit_update", "operation": "UPDATE"}, {"name": "Sales Dept_Order Items_audit_delete", "operation": "DELETE"}, {"name": "Sales Dept_Order Items_audit_truncate", "operation": "TRUNCATE"}], "truncate_rows": false}';
REVOKE ALL ON FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() FROM PUBLIC;
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_insert' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 1) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_insert" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_insert"
AFTER INSERT ON "Sales Dept"."Order Items"
FOR EACH ROW
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_update' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 1) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_update"
AFTER UPDATE ON "Sales Dept"."Order Items"
FOR EACH ROW
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_delete' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 1) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_delete" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_delete"
AFTER DELETE ON "Sales Dept"."Order Items"
FOR EACH ROW
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_truncate' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_truncate" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_truncate"
AFTER TRUNCATE ON "Sales Dept"."Order Items"
FOR EACH STATEMENT
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  stale record;
  child pg_catalog.oid;
BEGIN
  FOR stale IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"Sales Dept"."Sales Dept_Order Items_audit"()')::pg_catalog.oid AND t.tgrelid OPERATOR(pg_catalog.<>) pg_catalog.to_regclass('"Sales Dept"."Order Items"')
      AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND NOT t.tgisinternal AND NOT ((t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_truncate' AND t.tgrelid OPERATOR(pg_catalog.=) ANY (ARRAY(
        WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[])))))
  LOOP
    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(stale.tgname) OPERATOR(pg_catalog.||) ' ON '
      OPERATOR(pg_catalog.||) stale.tgrelid::pg_catalog.regclass::pg_catalog.text;
  END LOOP;
  FOR child IN WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[])
  LOOP
    EXECUTE 'CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_truncate" BEFORE TRUNCATE ON ' OPERATOR(pg_catalog.||) child::pg_catalog.regclass::pg_catalog.text
      OPERATOR(pg_catalog.||) ' FOR EACH STATEMENT EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"()';
  END LOOP;
END;
$audit$;
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_insert" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_delete" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_truncate" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update_key" ON "Sales Dept"."Order Items";
DO $audit$
DECLARE
  stale record;
BEGIN
  FOR stale IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"Sales Dept"."Sales Dept_Order Items_audit"()')::pg_catalog.oid AND t.tgrelid OPERATOR(pg_catalog.<>) pg_catalog.to_regclass('"Sales Dept"."Order Items"')
      AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND NOT t.tgisinternal AND NOT (false)
  LOOP
    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(stale.tgname) OPERATOR(pg_catalog.||) ' ON '
      OPERATOR(pg_catalog.||) stale.tgrelid::pg_catalog.regclass::pg_catalog.text;
  END LOOP;
END;
$audit$;
DROP FUNCTION IF EXISTS "Sales Dept"."Sales Dept_Order Items_audit"();

-- next spec
CREATE OR REPLACE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
SET enable_nestloop TO off
AS $audit$
<<audit_trigger>>
DECLARE
  writer pg_catalog.text := CASE WHEN pg_catalog.current_setting('role') = 'none' THEN session_user ELSE pg_catalog.current_setting('role') END;
  written_at pg_catalog.timestamptz := pg_catalog.clock_timestamp();
  setting_0 VARCHAR(30) := NULLIF(pg_catalog.current_setting('audit.username', true), '');
  setting_1 INTEGER := NULLIF(pg_catalog.current_setting('audit.tenant', true), '');
  capture_transaction_id pg_catalog.int8 := pg_catalog.pg_current_xact_id()::pg_catalog.text::pg_catalog.int8;
  capture_statement_timestamp pg_catalog.timestamptz := pg_catalog.statement_timestamp();
  capture_clock_timestamp pg_catalog.timestamptz := pg_catalog.clock_timestamp();
  capture_session_user pg_catalog.text := session_user;
  capture_application_name pg_catalog.text := NULLIF(pg_catalog.current_setting('application_name', true), '');
  capture_client_addr pg_catalog.inet := pg_catalog.inet_client_addr();
  audited_rows pg_catalog.int8;
BEGIN
  IF (TG_TABLE_SCHEMA OPERATOR(pg_catalog.<>) 'Sales Dept'
      OR TG_TABLE_NAME OPERATOR(pg_catalog.<>) 'Order Items')
     AND pg_catalog.pg_partition_root(TG_RELID) IS DISTINCT FROM '"Sales Dept"."Order Items"'::pg_catalog.regclass THEN
    IF NOT EXISTS (WITH RECURSIVE up(relation) AS (
          SELECT i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhrelid = TG_RELID
          UNION
          SELECT i.inhparent FROM pg_catalog.pg_inherits i
            JOIN up ON i.inhrelid = up.relation)
        SELECT FROM up WHERE up.relation = '"Sales Dept"."Order Items"'::pg_catalog.regclass) THEN
      RAISE EXCEPTION USING MESSAGE = 'audit function "Sales Dept"."Sales Dept_Order Items_audit" records only table "Sales Dept"."Order Items"',
        ERRCODE = 'insufficient_privilege';
    END IF;
  END IF;
  IF TG_NAME OPERATOR(pg_catalog.<>) ALL (ARRAY['Sales Dept_Order Items_audit_insert'::pg_catalog.name, 'Sales Dept_Order Items_audit_update'::pg_catalog.name, 'Sales Dept_Order Items_audit_delete'::pg_catalog.name, 'Sales Dept_Order Items_audit_truncate'::pg_catalog.name, 'Sales Dept_Order Items_audit_update_key'::pg_catalog.name]) THEN
    RAISE EXCEPTION USING MESSAGE = 'audit function "Sales Dept"."Sales Dept_Order Items_audit" runs only from the audit triggers of "Sales Dept"."Order Items"',
      ERRCODE = 'insufficient_privilege';
  END IF;
  IF TG_OP = 'INSERT' THEN
    INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_transaction_id", "audit_statement_timestamp", "audit_clock_timestamp", "audit_session_user", "audit_application_name", "audit_client_addr", "audit_changed_columns", "audit_username", "audit_tenant", "id", "if", "note")
    SELECT 'I', audit_trigger.written_at, audit_trigger.writer, audit_trigger.capture_transaction_id, audit_trigger.capture_statement_timestamp, audit_trigger.capture_clock_timestamp, audit_trigger.capture_session_user, audit_trigger.capture_application_name, audit_trigger.capture_client_addr, NULL, audit_trigger.setting_0, audit_trigger.setting_1, r."id", r."if", r."note"
    FROM audit_new_rows AS r;
  ELSIF TG_OP = 'UPDATE' THEN
    IF TG_LEVEL = 'ROW' THEN
      IF pg_catalog.pg_partition_root(TG_RELID) IS NULL
          AND NOT EXISTS (SELECT FROM "Sales Dept"."Order Items" AS now_at_key
            WHERE now_at_key."id" = OLD."id") THEN
        INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_transaction_id", "audit_statement_timestamp", "audit_clock_timestamp", "audit_session_user", "audit_application_name", "audit_client_addr", "audit_changed_columns", "audit_username", "audit_tenant", "id", "if", "note")
        VALUES ('K', audit_trigger.written_at, audit_trigger.writer, audit_trigger.capture_transaction_id, audit_trigger.capture_statement_timestamp, audit_trigger.capture_clock_timestamp, audit_trigger.capture_session_user, audit_trigger.capture_application_name, audit_trigger.capture_client_addr, NULL, audit_trigger.setting_0, audit_trigger.setting_1, OLD."id", OLD."if", OLD."note");
      END IF;
      RETURN NULL;
    END IF;
    IF pg_catalog.pg_partition_root(TG_RELID) IS NOT NULL THEN
      IF EXISTS (SELECT FROM audit_old_rows AS o WHERE NOT EXISTS (
        SELECT FROM audit_new_rows AS n WHERE n."id" = o."id")) THEN
        INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_transaction_id", "audit_statement_timestamp", "audit_clock_timestamp", "audit_session_user", "audit_application_name", "audit_client_addr", "audit_changed_columns", "audit_username", "audit_tenant", "id", "if", "note")
        SELECT 'K', audit_trigger.written_at, audit_trigger.writer, audit_trigger.capture_transaction_id, audit_trigger.capture_statement_timestamp, audit_trigger.capture_clock_timestamp, audit_trigger.capture_session_user, audit_trigger.capture_application_name, audit_trigger.capture_client_addr, NULL, audit_trigger.setting_0, audit_trigger.setting_1, o."id", o."if", o."note"
        FROM audit_old_rows AS o WHERE NOT EXISTS (
        SELECT FROM audit_new_rows AS n WHERE n."id" = o."id");
      END IF;
    END IF;
    INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_transaction_id", "audit_statement_timestamp", "audit_clock_timestamp", "audit_session_user", "audit_application_name", "audit_client_addr", "audit_changed_columns", "audit_username", "audit_tenant", "id", "if", "note")
    SELECT 'U', audit_trigger.written_at, audit_trigger.writer, audit_trigger.capture_transaction_id, audit_trigger.capture_statement_timestamp, audit_trigger.capture_clock_timestamp, audit_trigger.capture_session_user, audit_trigger.capture_application_name, audit_trigger.capture_client_addr, CASE WHEN o."id" IS NULL THEN NULL ELSE pg_catalog.array_remove(ARRAY[CASE WHEN ROW(o."id")::pg_catalog.record OPERATOR(pg_catalog.*<>) ROW(r."id")::pg_catalog.record THEN 'id' END, CASE WHEN ROW(o."if")::pg_catalog.record OPERATOR(pg_catalog.*<>) ROW(r."if")::pg_catalog.record THEN 'if' END, CASE WHEN ROW(o."note")::pg_catalog.record OPERATOR(pg_catalog.*<>) ROW(r."note")::pg_catalog.record THEN 'note' END]::pg_catalog.text[], NULL) END, audit_trigger.setting_0, audit_trigger.setting_1, r."id", r."if", r."note"
    FROM audit_new_rows AS r LEFT JOIN audit_old_rows AS o ON r."id" = o."id";
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_transaction_id", "audit_statement_timestamp", "audit_clock_timestamp", "audit_session_user", "audit_application_name", "audit_client_addr", "audit_changed_columns", "audit_username", "audit_tenant", "id", "if", "note")
    SELECT 'D', audit_trigger.written_at, audit_trigger.writer, audit_trigger.capture_transaction_id, audit_trigger.capture_statement_timestamp, audit_trigger.capture_clock_timestamp, audit_trigger.capture_session_user, audit_trigger.capture_application_name, audit_trigger.capture_client_addr, NULL, audit_trigger.setting_0, audit_trigger.setting_1, r."id", r."if", r."note"
    FROM audit_old_rows AS r;
  ELSIF TG_OP = 'TRUNCATE' THEN
    IF EXISTS (WITH RECURSIVE tree(relation) AS (
          SELECT TG_RELID
          UNION
          SELECT i.inhrelid FROM pg_catalog.pg_inherits i
            JOIN tree ON i.inhparent = tree.relation)
        SELECT FROM tree
        WHERE pg_catalog.row_security_active(tree.relation::pg_catalog.regclass)) THEN
      RAISE EXCEPTION USING MESSAGE = 'cannot record the rows TRUNCATE removes from "Sales Dept"."Order Items" or a partition of it: row-level security hides rows from the audit function''s owner',
        ERRCODE = 'insufficient_privilege', HINT = 'Give the audit function''s owner BYPASSRLS, or own the table with it.';
    END IF;
    EXECUTE 'INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_transaction_id", "audit_statement_timestamp", "audit_clock_timestamp", "audit_session_user", "audit_application_name", "audit_client_addr", "audit_changed_columns", "audit_username", "audit_tenant", "id", "if", "note") '
      || (SELECT pg_catalog.string_agg('SELECT ''T'', $1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $10, r."id", r."if", r."note" FROM ONLY '
          || share.relation::pg_catalog.regclass::pg_catalog.text || ' AS r',
          ' UNION ALL ')
        FROM (WITH RECURSIVE tree(relation) AS (
            SELECT TG_RELID
            UNION
            SELECT i.inhrelid FROM pg_catalog.pg_inherits i
              JOIN tree ON i.inhparent = tree.relation
              WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t
                WHERE t.tgrelid = i.inhrelid AND t.tgfoid = '"Sales Dept"."Sales Dept_Order Items_audit"()'::pg_catalog.regprocedure
                  AND t.tgenabled IN ('O', 'A')
                  AND (t.tgtype::pg_catalog.int4 & 32) <> 0))
          SELECT tree.relation FROM tree) AS share)
      USING audit_trigger.written_at, audit_trigger.writer, audit_trigger.capture_transaction_id, audit_trigger.capture_statement_timestamp, audit_trigger.capture_clock_timestamp, audit_trigger.capture_session_user, audit_trigger.capture_application_name, audit_trigger.capture_client_addr, audit_trigger.setting_0, audit_trigger.setting_1;
  END IF;
  GET DIAGNOSTICS audit_trigger.audited_rows = ROW_COUNT;
  IF audit_trigger.audited_rows > 0 THEN
    IF audit_trigger.setting_0 IS NULL THEN
      RAISE EXCEPTION USING MESSAGE = 'audit setting audit.username is required to write to table "Sales Dept"."Order Items" but is not set in this transaction',
        ERRCODE = 'not_null_violation', HINT = 'Write inside sqlalchemy_postgresql_audit.audit_context(username=...), or set it with sqlalchemy_postgresql_audit.set_session_vars() in the same transaction.';
    END IF;
  END IF;
  RETURN NULL;
END audit_trigger;
$audit$;
COMMENT ON FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() IS 'sqlalchemy-postgresql-audit:{"audit_table": "Order Items_audit", "captures": ["transaction_id", "statement_timestamp", "clock_timestamp", "session_user", "application_name", "client_addr", "changed_columns"], "columns": ["id", "if", "note"], "exclude_columns": [], "function": "Sales Dept_Order Items_audit", "key_columns": ["id"], "mode": "statement", "schema": "Sales Dept", "settings": [{"column": "audit_username", "name": "username", "required": true, "sql_type": "VARCHAR(30)"}, {"column": "audit_tenant", "name": "tenant", "required": false, "sql_type": "INTEGER"}], "skip_unchanged": false, "table": "Order Items", "template": 2, "triggers": [{"name": "Sales Dept_Order Items_audit_insert", "operation": "INSERT"}, {"name": "Sales Dept_Order Items_audit_update", "operation": "UPDATE"}, {"name": "Sales Dept_Order Items_audit_delete", "operation": "DELETE"}, {"name": "Sales Dept_Order Items_audit_truncate", "operation": "TRUNCATE"}], "truncate_rows": true}';
REVOKE ALL ON FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() FROM PUBLIC;
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_insert' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_insert" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_insert"
AFTER INSERT ON "Sales Dept"."Order Items"
REFERENCING NEW TABLE AS audit_new_rows
FOR EACH STATEMENT
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_update' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_update"
AFTER UPDATE ON "Sales Dept"."Order Items"
REFERENCING OLD TABLE AS audit_old_rows NEW TABLE AS audit_new_rows
FOR EACH STATEMENT
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_delete' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_delete" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_delete"
AFTER DELETE ON "Sales Dept"."Order Items"
REFERENCING OLD TABLE AS audit_old_rows
FOR EACH STATEMENT
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_truncate' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_truncate" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_truncate"
BEFORE TRUNCATE ON "Sales Dept"."Order Items"
FOR EACH STATEMENT
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_update_key"
AFTER UPDATE ON "Sales Dept"."Order Items"
FOR EACH ROW
WHEN (OLD."id" IS DISTINCT FROM NEW."id")
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  stale record;
  child pg_catalog.oid;
BEGIN
  FOR stale IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"Sales Dept"."Sales Dept_Order Items_audit"()')::pg_catalog.oid AND t.tgrelid OPERATOR(pg_catalog.<>) pg_catalog.to_regclass('"Sales Dept"."Order Items"')
      AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND NOT t.tgisinternal AND NOT ((t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_truncate' AND t.tgrelid OPERATOR(pg_catalog.=) ANY (ARRAY(
        WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[])))) OR (t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_update_key' AND t.tgrelid OPERATOR(pg_catalog.=) ANY (ARRAY(
        WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[]) AND NOT c.relispartition))))
  LOOP
    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(stale.tgname) OPERATOR(pg_catalog.||) ' ON '
      OPERATOR(pg_catalog.||) stale.tgrelid::pg_catalog.regclass::pg_catalog.text;
  END LOOP;
  FOR child IN WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[])
  LOOP
    EXECUTE 'CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_truncate" BEFORE TRUNCATE ON ' OPERATOR(pg_catalog.||) child::pg_catalog.regclass::pg_catalog.text
      OPERATOR(pg_catalog.||) ' FOR EACH STATEMENT EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"()';
  END LOOP;
  FOR child IN WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[]) AND NOT c.relispartition
  LOOP
    EXECUTE 'CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_update_key" AFTER UPDATE ON ' OPERATOR(pg_catalog.||) child::pg_catalog.regclass::pg_catalog.text
      OPERATOR(pg_catalog.||) ' FOR EACH ROW
WHEN (OLD."id" IS DISTINCT FROM NEW."id")
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"()';
  END LOOP;
END;
$audit$;
DO $audit$
DECLARE
  k record;
BEGIN
  FOR k IN SELECT t.tgname, t.tgrelid, t.tgqual FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"Sales Dept"."Sales Dept_Order Items_audit"()')::pg_catalog.oid
      AND t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_update_key' AND t.tgparentid OPERATOR(pg_catalog.=) 0
  LOOP
    EXECUTE 'COMMENT ON TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(k.tgname)
      OPERATOR(pg_catalog.||) ' ON ' OPERATOR(pg_catalog.||) k.tgrelid::pg_catalog.regclass::pg_catalog.text
      OPERATOR(pg_catalog.||) ' IS ' OPERATOR(pg_catalog.||) pg_catalog.quote_literal('sqlalchemy-postgresql-audit key trigger, condition ' OPERATOR(pg_catalog.||) pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(k.tgqual::pg_catalog.text, 'UTF8')), 'hex'));
  END LOOP;
END;
$audit$;
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_insert" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_delete" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_truncate" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update_key" ON "Sales Dept"."Order Items";
DO $audit$
DECLARE
  stale record;
BEGIN
  FOR stale IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"Sales Dept"."Sales Dept_Order Items_audit"()')::pg_catalog.oid AND t.tgrelid OPERATOR(pg_catalog.<>) pg_catalog.to_regclass('"Sales Dept"."Order Items"')
      AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND NOT t.tgisinternal AND NOT (false)
  LOOP
    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(stale.tgname) OPERATOR(pg_catalog.||) ' ON '
      OPERATOR(pg_catalog.||) stale.tgrelid::pg_catalog.regclass::pg_catalog.text;
  END LOOP;
END;
$audit$;
DROP FUNCTION IF EXISTS "Sales Dept"."Sales Dept_Order Items_audit"();

-- next spec
CREATE OR REPLACE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
AS $audit$
<<audit_trigger>>
DECLARE
  writer pg_catalog.text := CASE WHEN pg_catalog.current_setting('role') = 'none' THEN session_user ELSE pg_catalog.current_setting('role') END;
  written_at pg_catalog.timestamptz := pg_catalog.clock_timestamp();
  capture_transaction_id pg_catalog.int8 := pg_catalog.pg_current_xact_id()::pg_catalog.text::pg_catalog.int8;
  capture_statement_timestamp pg_catalog.timestamptz := pg_catalog.statement_timestamp();
  capture_clock_timestamp pg_catalog.timestamptz := pg_catalog.clock_timestamp();
  capture_session_user pg_catalog.text := session_user;
  capture_application_name pg_catalog.text := NULLIF(pg_catalog.current_setting('application_name', true), '');
  capture_client_addr pg_catalog.inet := pg_catalog.inet_client_addr();
BEGIN
  IF (TG_TABLE_SCHEMA OPERATOR(pg_catalog.<>) 'Sales Dept'
      OR TG_TABLE_NAME OPERATOR(pg_catalog.<>) 'Order Items')
     AND pg_catalog.pg_partition_root(TG_RELID) IS DISTINCT FROM '"Sales Dept"."Order Items"'::pg_catalog.regclass THEN
    IF NOT EXISTS (WITH RECURSIVE up(relation) AS (
          SELECT i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhrelid = TG_RELID
          UNION
          SELECT i.inhparent FROM pg_catalog.pg_inherits i
            JOIN up ON i.inhrelid = up.relation)
        SELECT FROM up WHERE up.relation = '"Sales Dept"."Order Items"'::pg_catalog.regclass) THEN
      RAISE EXCEPTION USING MESSAGE = 'audit function "Sales Dept"."Sales Dept_Order Items_audit" records only table "Sales Dept"."Order Items"',
        ERRCODE = 'insufficient_privilege';
    END IF;
  END IF;
  IF TG_NAME OPERATOR(pg_catalog.<>) ALL (ARRAY['Sales Dept_Order Items_audit_update'::pg_catalog.name, 'Sales Dept_Order Items_audit_truncate'::pg_catalog.name]) THEN
    RAISE EXCEPTION USING MESSAGE = 'audit function "Sales Dept"."Sales Dept_Order Items_audit" runs only from the audit triggers of "Sales Dept"."Order Items"',
      ERRCODE = 'insufficient_privilege';
  END IF;
  IF TG_OP = 'UPDATE' THEN
    IF ROW(OLD."id") IS DISTINCT FROM ROW(NEW."id") THEN
      IF NOT EXISTS (SELECT FROM "Sales Dept"."Order Items" AS now_at_key
          WHERE now_at_key."id" = OLD."id") THEN
        INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_transaction_id", "audit_statement_timestamp", "audit_clock_timestamp", "audit_session_user", "audit_application_name", "audit_client_addr", "audit_changed_columns", "id", "if", "note")
        VALUES ('K', audit_trigger.written_at, audit_trigger.writer, audit_trigger.capture_transaction_id, audit_trigger.capture_statement_timestamp, audit_trigger.capture_clock_timestamp, audit_trigger.capture_session_user, audit_trigger.capture_application_name, audit_trigger.capture_client_addr, NULL, OLD."id", OLD."if", OLD."note");
      END IF;
    END IF;
    INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_transaction_id", "audit_statement_timestamp", "audit_clock_timestamp", "audit_session_user", "audit_application_name", "audit_client_addr", "audit_changed_columns", "id", "if", "note")
    VALUES ('U', audit_trigger.written_at, audit_trigger.writer, audit_trigger.capture_transaction_id, audit_trigger.capture_statement_timestamp, audit_trigger.capture_clock_timestamp, audit_trigger.capture_session_user, audit_trigger.capture_application_name, audit_trigger.capture_client_addr, pg_catalog.array_remove(ARRAY[CASE WHEN ROW(OLD."id")::pg_catalog.record OPERATOR(pg_catalog.*<>) ROW(NEW."id")::pg_catalog.record THEN 'id' END, CASE WHEN ROW(OLD."if")::pg_catalog.record OPERATOR(pg_catalog.*<>) ROW(NEW."if")::pg_catalog.record THEN 'if' END, CASE WHEN ROW(OLD."note")::pg_catalog.record OPERATOR(pg_catalog.*<>) ROW(NEW."note")::pg_catalog.record THEN 'note' END]::pg_catalog.text[], NULL), NEW."id", NEW."if", NEW."note");
  ELSIF TG_OP = 'TRUNCATE' THEN
    IF TG_RELID = '"Sales Dept"."Order Items"'::pg_catalog.regclass THEN
      INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_transaction_id", "audit_statement_timestamp", "audit_clock_timestamp", "audit_session_user", "audit_application_name", "audit_client_addr", "audit_changed_columns", "id", "if", "note")
      VALUES ('T', audit_trigger.written_at, audit_trigger.writer, audit_trigger.capture_transaction_id, audit_trigger.capture_statement_timestamp, audit_trigger.capture_clock_timestamp, audit_trigger.capture_session_user, audit_trigger.capture_application_name, audit_trigger.capture_client_addr, NULL, NULL, NULL, NULL);
    ELSE
      IF EXISTS (WITH RECURSIVE tree(relation) AS (
            SELECT TG_RELID
            UNION
            SELECT i.inhrelid FROM pg_catalog.pg_inherits i
              JOIN tree ON i.inhparent = tree.relation)
          SELECT FROM tree
          WHERE pg_catalog.row_security_active(tree.relation::pg_catalog.regclass)) THEN
        RAISE EXCEPTION USING MESSAGE = 'cannot record the rows TRUNCATE removes from "Sales Dept"."Order Items" or a partition of it: row-level security hides rows from the audit function''s owner',
          ERRCODE = 'insufficient_privilege', HINT = 'Give the audit function''s owner BYPASSRLS, or own the table with it.';
      END IF;
      EXECUTE 'INSERT INTO "Sales Dept"."Order Items_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "audit_transaction_id", "audit_statement_timestamp", "audit_clock_timestamp", "audit_session_user", "audit_application_name", "audit_client_addr", "audit_changed_columns", "id", "if", "note") '
        || (SELECT pg_catalog.string_agg('SELECT ''T'', $1, $2, $3, $4, $5, $6, $7, $8, NULL, r."id", r."if", r."note" FROM ONLY '
            || share.relation::pg_catalog.regclass::pg_catalog.text || ' AS r',
            ' UNION ALL ')
          FROM (WITH RECURSIVE tree(relation) AS (
              SELECT TG_RELID
              UNION
              SELECT i.inhrelid FROM pg_catalog.pg_inherits i
                JOIN tree ON i.inhparent = tree.relation
                WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t
                  WHERE t.tgrelid = i.inhrelid AND t.tgfoid = '"Sales Dept"."Sales Dept_Order Items_audit"()'::pg_catalog.regprocedure
                    AND t.tgenabled IN ('O', 'A')
                    AND (t.tgtype::pg_catalog.int4 & 32) <> 0))
            SELECT tree.relation FROM tree) AS share)
        USING audit_trigger.written_at, audit_trigger.writer, audit_trigger.capture_transaction_id, audit_trigger.capture_statement_timestamp, audit_trigger.capture_clock_timestamp, audit_trigger.capture_session_user, audit_trigger.capture_application_name, audit_trigger.capture_client_addr;
    END IF;
  END IF;
  RETURN NULL;
END audit_trigger;
$audit$;
COMMENT ON FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() IS 'sqlalchemy-postgresql-audit:{"audit_table": "Order Items_audit", "captures": ["transaction_id", "statement_timestamp", "clock_timestamp", "session_user", "application_name", "client_addr", "changed_columns"], "columns": ["id", "if", "note"], "exclude_columns": [], "function": "Sales Dept_Order Items_audit", "key_columns": ["id"], "mode": "row", "schema": "Sales Dept", "settings": [], "skip_unchanged": false, "table": "Order Items", "template": 2, "triggers": [{"name": "Sales Dept_Order Items_audit_update", "operation": "UPDATE"}, {"name": "Sales Dept_Order Items_audit_truncate", "operation": "TRUNCATE"}], "truncate_rows": false}';
REVOKE ALL ON FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"() FROM PUBLIC;
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_update' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 1) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_update"
AFTER UPDATE ON "Sales Dept"."Order Items"
FOR EACH ROW
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_truncate' AND c.relname OPERATOR(pg_catalog.=) 'Order Items' AND n.nspname OPERATOR(pg_catalog.=) 'Sales Dept';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_truncate" ON "Sales Dept"."Order Items";
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_truncate"
AFTER TRUNCATE ON "Sales Dept"."Order Items"
FOR EACH STATEMENT
EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"();
DO $audit$
DECLARE
  stale record;
  child pg_catalog.oid;
BEGIN
  FOR stale IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"Sales Dept"."Sales Dept_Order Items_audit"()')::pg_catalog.oid AND t.tgrelid OPERATOR(pg_catalog.<>) pg_catalog.to_regclass('"Sales Dept"."Order Items"')
      AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND NOT t.tgisinternal AND NOT ((t.tgname OPERATOR(pg_catalog.=) 'Sales Dept_Order Items_audit_truncate' AND t.tgrelid OPERATOR(pg_catalog.=) ANY (ARRAY(
        WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[])))))
  LOOP
    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(stale.tgname) OPERATOR(pg_catalog.||) ' ON '
      OPERATOR(pg_catalog.||) stale.tgrelid::pg_catalog.regclass::pg_catalog.text;
  END LOOP;
  FOR child IN WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"Sales Dept"."Order Items"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[])
  LOOP
    EXECUTE 'CREATE OR REPLACE TRIGGER "Sales Dept_Order Items_audit_truncate" BEFORE TRUNCATE ON ' OPERATOR(pg_catalog.||) child::pg_catalog.regclass::pg_catalog.text
      OPERATOR(pg_catalog.||) ' FOR EACH STATEMENT EXECUTE FUNCTION "Sales Dept"."Sales Dept_Order Items_audit"()';
  END LOOP;
END;
$audit$;
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_truncate" ON "Sales Dept"."Order Items";
DROP TRIGGER IF EXISTS "Sales Dept_Order Items_audit_update_key" ON "Sales Dept"."Order Items";
DO $audit$
DECLARE
  stale record;
BEGIN
  FOR stale IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"Sales Dept"."Sales Dept_Order Items_audit"()')::pg_catalog.oid AND t.tgrelid OPERATOR(pg_catalog.<>) pg_catalog.to_regclass('"Sales Dept"."Order Items"')
      AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND NOT t.tgisinternal AND NOT (false)
  LOOP
    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(stale.tgname) OPERATOR(pg_catalog.||) ' ON '
      OPERATOR(pg_catalog.||) stale.tgrelid::pg_catalog.regclass::pg_catalog.text;
  END LOOP;
END;
$audit$;
DROP FUNCTION IF EXISTS "Sales Dept"."Sales Dept_Order Items_audit"();

-- next spec
CREATE OR REPLACE FUNCTION public.public_log_audit() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
AS $audit$
<<audit_trigger>>
DECLARE
  writer pg_catalog.text := CASE WHEN pg_catalog.current_setting('role') = 'none' THEN session_user ELSE pg_catalog.current_setting('role') END;
  written_at pg_catalog.timestamptz := pg_catalog.clock_timestamp();
BEGIN
  IF (TG_TABLE_SCHEMA OPERATOR(pg_catalog.<>) 'public'
      OR TG_TABLE_NAME OPERATOR(pg_catalog.<>) 'log')
     AND pg_catalog.pg_partition_root(TG_RELID) IS DISTINCT FROM '"public"."log"'::pg_catalog.regclass THEN
    IF NOT EXISTS (WITH RECURSIVE up(relation) AS (
          SELECT i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhrelid = TG_RELID
          UNION
          SELECT i.inhparent FROM pg_catalog.pg_inherits i
            JOIN up ON i.inhrelid = up.relation)
        SELECT FROM up WHERE up.relation = '"public"."log"'::pg_catalog.regclass) THEN
      RAISE EXCEPTION USING MESSAGE = 'audit function "public"."public_log_audit" records only table "public"."log"',
        ERRCODE = 'insufficient_privilege';
    END IF;
  END IF;
  IF TG_NAME OPERATOR(pg_catalog.<>) ALL (ARRAY['public_log_audit_insert'::pg_catalog.name, 'public_log_audit_update'::pg_catalog.name, 'public_log_audit_delete'::pg_catalog.name, 'public_log_audit_truncate'::pg_catalog.name]) THEN
    RAISE EXCEPTION USING MESSAGE = 'audit function "public"."public_log_audit" runs only from the audit triggers of "public"."log"',
      ERRCODE = 'insufficient_privilege';
  END IF;
  IF TG_OP = 'INSERT' THEN
    INSERT INTO "public"."log_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "line")
    SELECT 'I', audit_trigger.written_at, audit_trigger.writer, r."line"
    FROM audit_new_rows AS r;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO "public"."log_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "line")
    SELECT 'U', audit_trigger.written_at, audit_trigger.writer, r."line"
    FROM audit_new_rows AS r;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO "public"."log_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "line")
    SELECT 'D', audit_trigger.written_at, audit_trigger.writer, r."line"
    FROM audit_old_rows AS r;
  ELSIF TG_OP = 'TRUNCATE' THEN
    IF TG_RELID = '"public"."log"'::pg_catalog.regclass THEN
      INSERT INTO "public"."log_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "line")
      VALUES ('T', audit_trigger.written_at, audit_trigger.writer, NULL);
    ELSE
      IF EXISTS (WITH RECURSIVE tree(relation) AS (
            SELECT TG_RELID
            UNION
            SELECT i.inhrelid FROM pg_catalog.pg_inherits i
              JOIN tree ON i.inhparent = tree.relation)
          SELECT FROM tree
          WHERE pg_catalog.row_security_active(tree.relation::pg_catalog.regclass)) THEN
        RAISE EXCEPTION USING MESSAGE = 'cannot record the rows TRUNCATE removes from "public"."log" or a partition of it: row-level security hides rows from the audit function''s owner',
          ERRCODE = 'insufficient_privilege', HINT = 'Give the audit function''s owner BYPASSRLS, or own the table with it.';
      END IF;
      EXECUTE 'INSERT INTO "public"."log_audit" ("audit_operation", "audit_operation_timestamp", "audit_current_user", "line") '
        || (SELECT pg_catalog.string_agg('SELECT ''T'', $1, $2, r."line" FROM ONLY '
            || share.relation::pg_catalog.regclass::pg_catalog.text || ' AS r',
            ' UNION ALL ')
          FROM (WITH RECURSIVE tree(relation) AS (
              SELECT TG_RELID
              UNION
              SELECT i.inhrelid FROM pg_catalog.pg_inherits i
                JOIN tree ON i.inhparent = tree.relation
                WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t
                  WHERE t.tgrelid = i.inhrelid AND t.tgfoid = '"public"."public_log_audit"()'::pg_catalog.regprocedure
                    AND t.tgenabled IN ('O', 'A')
                    AND (t.tgtype::pg_catalog.int4 & 32) <> 0))
            SELECT tree.relation FROM tree) AS share)
        USING audit_trigger.written_at, audit_trigger.writer;
    END IF;
  END IF;
  RETURN NULL;
END audit_trigger;
$audit$;
COMMENT ON FUNCTION public.public_log_audit() IS 'sqlalchemy-postgresql-audit:{"audit_table": "log_audit", "captures": [], "columns": ["line"], "exclude_columns": [], "function": "public_log_audit", "key_columns": [], "mode": "statement", "schema": "public", "settings": [], "skip_unchanged": false, "table": "log", "template": 2, "triggers": [{"name": "public_log_audit_insert", "operation": "INSERT"}, {"name": "public_log_audit_update", "operation": "UPDATE"}, {"name": "public_log_audit_delete", "operation": "DELETE"}, {"name": "public_log_audit_truncate", "operation": "TRUNCATE"}], "truncate_rows": false}';
REVOKE ALL ON FUNCTION public.public_log_audit() FROM PUBLIC;
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'public_log_audit_insert' AND c.relname OPERATOR(pg_catalog.=) 'log' AND n.nspname OPERATOR(pg_catalog.=) 'public';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS public_log_audit_insert ON public.log;
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER public_log_audit_insert
AFTER INSERT ON public.log
REFERENCING NEW TABLE AS audit_new_rows
FOR EACH STATEMENT
EXECUTE FUNCTION public.public_log_audit();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'public_log_audit_update' AND c.relname OPERATOR(pg_catalog.=) 'log' AND n.nspname OPERATOR(pg_catalog.=) 'public';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS public_log_audit_update ON public.log;
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER public_log_audit_update
AFTER UPDATE ON public.log
REFERENCING OLD TABLE AS audit_old_rows NEW TABLE AS audit_new_rows
FOR EACH STATEMENT
EXECUTE FUNCTION public.public_log_audit();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'public_log_audit_delete' AND c.relname OPERATOR(pg_catalog.=) 'log' AND n.nspname OPERATOR(pg_catalog.=) 'public';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS public_log_audit_delete ON public.log;
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER public_log_audit_delete
AFTER DELETE ON public.log
REFERENCING OLD TABLE AS audit_old_rows
FOR EACH STATEMENT
EXECUTE FUNCTION public.public_log_audit();
DO $audit$
DECLARE
  parent pg_catalog.oid;
BEGIN
  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE t.tgname OPERATOR(pg_catalog.=) 'public_log_audit_truncate' AND c.relname OPERATOR(pg_catalog.=) 'log' AND n.nspname OPERATOR(pg_catalog.=) 'public';
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
    WHERE (t.oid OPERATOR(pg_catalog.=) parent OR t.tgparentid OPERATOR(pg_catalog.=) parent)
      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0) THEN
    DROP TRIGGER IF EXISTS public_log_audit_truncate ON public.log;
  END IF;
END;
$audit$;
CREATE OR REPLACE TRIGGER public_log_audit_truncate
AFTER TRUNCATE ON public.log
FOR EACH STATEMENT
EXECUTE FUNCTION public.public_log_audit();
DO $audit$
DECLARE
  stale record;
  child pg_catalog.oid;
BEGIN
  FOR stale IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"public"."public_log_audit"()')::pg_catalog.oid AND t.tgrelid OPERATOR(pg_catalog.<>) pg_catalog.to_regclass('"public"."log"')
      AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND NOT t.tgisinternal AND NOT ((t.tgname OPERATOR(pg_catalog.=) 'public_log_audit_truncate' AND t.tgrelid OPERATOR(pg_catalog.=) ANY (ARRAY(
        WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"public"."log"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[])))))
  LOOP
    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(stale.tgname) OPERATOR(pg_catalog.||) ' ON '
      OPERATOR(pg_catalog.||) stale.tgrelid::pg_catalog.regclass::pg_catalog.text;
  END LOOP;
  FOR child IN WITH RECURSIVE tree(relation) AS (
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) '"public"."log"'::pg_catalog.regclass
      UNION
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relation)
    SELECT tree.relation FROM tree
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relation
      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[])
  LOOP
    EXECUTE 'CREATE OR REPLACE TRIGGER public_log_audit_truncate BEFORE TRUNCATE ON ' OPERATOR(pg_catalog.||) child::pg_catalog.regclass::pg_catalog.text
      OPERATOR(pg_catalog.||) ' FOR EACH STATEMENT EXECUTE FUNCTION public.public_log_audit()';
  END LOOP;
END;
$audit$;
DROP TRIGGER IF EXISTS public_log_audit_insert ON public.log;
DROP TRIGGER IF EXISTS public_log_audit_update ON public.log;
DROP TRIGGER IF EXISTS public_log_audit_delete ON public.log;
DROP TRIGGER IF EXISTS public_log_audit_truncate ON public.log;
DROP TRIGGER IF EXISTS public_log_audit_update_key ON public.log;
DO $audit$
DECLARE
  stale record;
BEGIN
  FOR stale IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t
    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('"public"."public_log_audit"()')::pg_catalog.oid AND t.tgrelid OPERATOR(pg_catalog.<>) pg_catalog.to_regclass('"public"."log"')
      AND t.tgparentid OPERATOR(pg_catalog.=) 0 AND NOT t.tgisinternal AND NOT (false)
  LOOP
    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(stale.tgname) OPERATOR(pg_catalog.||) ' ON '
      OPERATOR(pg_catalog.||) stale.tgrelid::pg_catalog.regclass::pg_catalog.text;
  END LOOP;
END;
$audit$;
DROP FUNCTION IF EXISTS public.public_log_audit();
