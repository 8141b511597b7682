-- A denser HNSW graph for recall at 100k+ chunks (pgvector's defaults are m = 16,
-- ef_construction = 64). Measured with `BENCH=retrieve make bench` at 100k chunks: recall@10
-- against exact search rises at the same ef_search, for a longer index build (see the README).
-- Rebuilding the index locks writes to `chunks` for the build's duration (seconds for 100k rows).
DROP INDEX IF EXISTS chunks_embedding_hnsw_idx;
CREATE INDEX chunks_embedding_hnsw_idx ON chunks
    USING hnsw (embedding vector_cosine_ops) WITH (m = 24, ef_construction = 128);
