-- The tenants that hold any data, for the scheduled backup (which backs up each tenant in turn).
-- Row-level security hides other tenants' rows from the app role; this answers only which
-- tenants exist, never their rows.
CREATE FUNCTION ragbot_tenants() RETURNS SETOF text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT tenant FROM documents UNION SELECT tenant FROM conversations ORDER BY 1 $$;
