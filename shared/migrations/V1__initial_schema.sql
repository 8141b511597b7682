-- ragbot schema v1. Applied by the migrator role (owner of the schema); the app role gets DML only
-- through the default privileges set up by `ragbot db bootstrap`.

CREATE TABLE documents (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant          text NOT NULL CHECK (tenant <> ''),
    title           text NOT NULL,
    source          text NOT NULL CHECK (source IN ('api', 's3', 'qa')),
    -- identity of the document inside its tenant (S3 key, Q&A title, upload name)
    source_key      text NOT NULL,
    s3_bucket       text,
    s3_key          text,
    s3_version      text,
    content_sha256  text NOT NULL,
    mime            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'ready', 'failed')),
    failure_reason  text,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    chunk_count     integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, source_key),
    UNIQUE (id, tenant)
);
CREATE INDEX documents_tenant_created_idx ON documents (tenant, created_at DESC);

CREATE TABLE chunks (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    document_id     uuid NOT NULL,
    tenant          text NOT NULL,
    ordinal         integer NOT NULL CHECK (ordinal >= 0),
    text            text NOT NULL,
    question        text,
    answer          text,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    embedding       vector(384) NOT NULL,
    embedding_model text NOT NULL,
    token_count     integer,
    tsv             tsvector GENERATED ALWAYS AS
                    (to_tsvector('english', coalesce(question, '') || ' ' || text)) STORED,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (document_id, ordinal),
    -- a chunk always belongs to a document of the same tenant
    FOREIGN KEY (document_id, tenant) REFERENCES documents (id, tenant) ON DELETE CASCADE
);
CREATE INDEX chunks_embedding_hnsw_idx ON chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX chunks_tsv_gin_idx ON chunks USING gin (tsv);
CREATE INDEX chunks_tenant_document_idx ON chunks (tenant, document_id);

CREATE TABLE conversations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant          text NOT NULL CHECK (tenant <> ''),
    subject         text NOT NULL,
    title           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, tenant)
);
CREATE INDEX conversations_tenant_subject_idx ON conversations (tenant, subject, updated_at DESC);

CREATE TABLE messages (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id   uuid NOT NULL,
    tenant            text NOT NULL,
    role              text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content           text NOT NULL,
    citations         jsonb NOT NULL DEFAULT '[]'::jsonb,
    provider          text,
    model             text,
    latency_ms        integer,
    prompt_tokens     integer,
    completion_tokens integer,
    created_at        timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (conversation_id, tenant) REFERENCES conversations (id, tenant) ON DELETE CASCADE
);
CREATE INDEX messages_conversation_idx ON messages (tenant, conversation_id, created_at);
