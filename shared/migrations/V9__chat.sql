-- Chat: what an answer needs to be audited and replayed, feedback on answers, and a per-tenant
-- knowledge version that every knowledge change bumps (the answer cache keys on it, so any ingest,
-- delete or restore invalidates the tenant's cached answers in O(1)).

ALTER TABLE messages
    -- 'failed': a user message whose answer could not be produced (provider down, too slow); it is
    -- kept so nothing the user typed is lost, and left out of the history of later turns.
    ADD COLUMN status            text NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'failed')),
    ADD COLUMN error             text,
    ADD COLUMN grounded          boolean,
    ADD COLUMN cached            boolean NOT NULL DEFAULT false,
    -- the follow-up made standalone (what retrieval and the cache used)
    ADD COLUMN standalone        text,
    ADD COLUMN fallback          jsonb,
    ADD COLUMN warnings          jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN feedback_rating   text CHECK (feedback_rating IN ('up', 'down')),
    ADD COLUMN feedback_comment  text,
    ADD COLUMN feedback_at       timestamptz,
    ADD CONSTRAINT messages_id_tenant_key UNIQUE (id, tenant);

-- The fallback's sample questions: the tenant's Q&A pairs without a scan of all its chunks.
CREATE INDEX chunks_tenant_questions_idx ON chunks (tenant) WHERE question IS NOT NULL;

CREATE TABLE knowledge_versions (
    tenant      text PRIMARY KEY CHECK (tenant <> ''),
    version     bigint NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE knowledge_versions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON knowledge_versions
    USING (tenant = current_setting('ragbot.tenant', true))
    WITH CHECK (tenant = current_setting('ragbot.tenant', true));

-- Runs as the owner (SECURITY DEFINER) so the bump does not depend on the caller's privileges.
CREATE FUNCTION ragbot_bump_knowledge(t text) RETURNS void
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
        INSERT INTO knowledge_versions (tenant, version) VALUES (t, 1)
        ON CONFLICT (tenant) DO UPDATE
            SET version = knowledge_versions.version + 1, updated_at = now()
    $$;

-- Documents: every inserted, updated or deleted row (ingest, re-ingest, delete, restore).
CREATE FUNCTION ragbot_documents_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            PERFORM ragbot_bump_knowledge(OLD.tenant);
        ELSE
            PERFORM ragbot_bump_knowledge(NEW.tenant);
        END IF;
        RETURN NULL;
    END
    $$;
CREATE TRIGGER documents_knowledge_version
    AFTER INSERT OR UPDATE OR DELETE ON documents
    FOR EACH ROW EXECUTE FUNCTION ragbot_documents_changed();

-- Chunks change without their document in re-embedding: once per statement, for the tenant of
-- the transaction (set by every request-path transaction).
CREATE FUNCTION ragbot_chunks_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
    DECLARE t text := current_setting('ragbot.tenant', true);
    BEGIN
        IF t IS NOT NULL AND t <> '' THEN
            PERFORM ragbot_bump_knowledge(t);
        END IF;
        RETURN NULL;
    END
    $$;
CREATE TRIGGER chunks_knowledge_version
    AFTER INSERT OR UPDATE OR DELETE ON chunks
    FOR EACH STATEMENT EXECUTE FUNCTION ragbot_chunks_changed();
