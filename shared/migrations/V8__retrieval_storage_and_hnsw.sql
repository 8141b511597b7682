-- Retrieval speed at 100k+ chunks, measured with `BENCH=retrieve make bench` and pgbench on 2 cores
-- (see the README's HNSW_EF_SEARCH row).
--
-- 1. Keep each chunk's embedding and tsvector inline in its heap row. pgvector's `vector` type
--    defaults to EXTERNAL storage, and a chunk row (text + tsvector + a 1.5 kB vector at 384
--    dimensions) is over the 2 kB TOAST threshold, so every vector was moved out of line and each
--    exact distance paid a TOAST lookup. Exact search is what the planner picks for small tenants
--    and selective filters: 29.7 ms → 8.0 ms over 10k chunks. With MAIN, the text is the column
--    compressed and moved out instead (read only for the few rows returned); the tsvector stays
--    inline, compressed, for hybrid ranking. A MAIN column only goes out of line when a row could
--    not fit a page at all (≥ ~2000 dimensions), so no dimension fails to store.
--    Rows stored before this keep their layout until rewritten (re-ingesting does so, or
--    `VACUUM FULL chunks`, which locks the table while it runs).
ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE MAIN;
ALTER TABLE chunks ALTER COLUMN tsv SET STORAGE MAIN;

-- 2. A better-connected graph for the same build time: at 100k chunks, (m = 16,
--    ef_construction = 200) reaches recall@10 0.98 at ef_search 200 in 3.7 ms, where (m = 24,
--    ef_construction = 128) needed ef_search 300 and 4.9 ms for 0.97; the build takes 40 s
--    instead of 36–39 s. Rebuilding locks writes to `chunks` for the build's duration.
DROP INDEX IF EXISTS chunks_embedding_hnsw_idx;
CREATE INDEX chunks_embedding_hnsw_idx ON chunks
    USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 200);
