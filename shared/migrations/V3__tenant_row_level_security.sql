-- Tenant isolation as a property of the database, not of each query: the app role only ever sees
-- and writes rows of the tenant named by the transaction-local setting `ragbot.tenant`, which the
-- data layer (`Store::begin(&tenant)`) sets with `set_config(.., true)` inside each transaction.
-- With no tenant set, the app role sees no rows at all. The owner (migrator) is not subject to
-- these policies (no FORCE), so migrations and the functions below see everything.

ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages ENABLE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON documents
    USING (tenant = current_setting('ragbot.tenant', true))
    WITH CHECK (tenant = current_setting('ragbot.tenant', true));
CREATE POLICY tenant_isolation ON chunks
    USING (tenant = current_setting('ragbot.tenant', true))
    WITH CHECK (tenant = current_setting('ragbot.tenant', true));
CREATE POLICY tenant_isolation ON conversations
    USING (tenant = current_setting('ragbot.tenant', true))
    WITH CHECK (tenant = current_setting('ragbot.tenant', true));
CREATE POLICY tenant_isolation ON messages
    USING (tenant = current_setting('ragbot.tenant', true))
    WITH CHECK (tenant = current_setting('ragbot.tenant', true));

-- Cross-tenant questions the app needs answered without reading rows: the start-up model check,
-- and the tenants that hold chunks of another model (re-embedding works tenant by tenant).
CREATE FUNCTION ragbot_other_embedding_model(configured text) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT embedding_model FROM chunks WHERE embedding_model <> configured LIMIT 1 $$;

CREATE FUNCTION ragbot_tenants_with_other_model(configured text) RETURNS SETOF text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT DISTINCT tenant FROM chunks WHERE embedding_model <> configured ORDER BY 1 $$;
