-- PostgreSQL refuses `COPY FROM` into a table under row-level security for roles it applies to.
-- Chunks are therefore streamed by binary COPY into this staging table and moved into `chunks`
-- with one INSERT .. SELECT (checked by the tenant policy) in the same transaction, then removed:
-- staged rows are never committed, so no other transaction ever sees them.
CREATE TABLE chunk_staging (
    batch           uuid NOT NULL,
    document_id     uuid NOT NULL,
    tenant          text NOT NULL,
    ordinal         integer NOT NULL,
    text            text NOT NULL,
    question        text,
    answer          text,
    metadata        jsonb NOT NULL,
    embedding       vector(384) NOT NULL,
    embedding_model text NOT NULL,
    token_count     integer
);
CREATE INDEX chunk_staging_batch_idx ON chunk_staging (batch);
