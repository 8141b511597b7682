-- Large documents are embedded by several workers (Lambda invocations of the embed function, each
-- re-invoking itself before its deadline) instead of one: more chunks than one invocation can embed
-- in Lambda's 15 minutes. The document is parsed and chunked once; its chunks wait here, without
-- embeddings, until workers claim them in batches (FOR UPDATE SKIP LOCKED, with a lease so a dead
-- worker's batch is taken again). When none is left, one transaction replaces the document's
-- chunks with these: until then, the previous version is what retrieval serves.

CREATE TABLE ingest_jobs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant          text NOT NULL CHECK (tenant <> ''),
    document_id     uuid NOT NULL,
    -- the version being ingested: becomes the document's once its chunks are in place
    content_sha256  text NOT NULL,
    embedding_model text NOT NULL,
    total           integer NOT NULL CHECK (total > 0),
    embedded        integer NOT NULL DEFAULT 0,
    status          text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
    failure_reason  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, tenant),
    -- deleting the document (API, ObjectRemoved) ends its job: workers find it gone and stop
    FOREIGN KEY (document_id, tenant) REFERENCES documents (id, tenant) ON DELETE CASCADE
);
CREATE INDEX ingest_jobs_document_idx ON ingest_jobs (document_id);

CREATE TABLE ingest_job_chunks (
    job_id          uuid NOT NULL,
    tenant          text NOT NULL,
    ordinal         integer NOT NULL CHECK (ordinal >= 0),
    text            text NOT NULL,
    question        text,
    answer          text,
    metadata        jsonb NOT NULL,
    token_count     integer,
    embedding       vector,
    lease_until     timestamptz,
    PRIMARY KEY (job_id, ordinal),
    FOREIGN KEY (job_id, tenant) REFERENCES ingest_jobs (id, tenant) ON DELETE CASCADE
);
-- the claim query: a job's rows still to embed, in order
CREATE INDEX ingest_job_chunks_todo_idx ON ingest_job_chunks (job_id, ordinal) WHERE embedding IS NULL;

ALTER TABLE ingest_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE ingest_job_chunks ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ingest_jobs
    USING (tenant = current_setting('ragbot.tenant', true))
    WITH CHECK (tenant = current_setting('ragbot.tenant', true));
CREATE POLICY tenant_isolation ON ingest_job_chunks
    USING (tenant = current_setting('ragbot.tenant', true))
    WITH CHECK (tenant = current_setting('ragbot.tenant', true));

-- Pending chunks reach `ingest_job_chunks` through the staging table too (no COPY into tables
-- under row-level security), before they have an embedding.
ALTER TABLE chunk_staging ALTER COLUMN embedding DROP NOT NULL;
