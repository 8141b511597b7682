-- Hybrid retrieval's keyword half, through the full-text index again.
--
-- Under row-level security the planner may not evaluate a non-leakproof operator such as
-- `tsvector @@ tsquery` ahead of the tenant policy, so the match could not be an index condition:
-- every hybrid query read all of the tenant's chunks (a sequential scan: ~10 ms at 10k chunks,
-- growing linearly beyond; seen with EXPLAIN ANALYZE as the app role).
--
-- This function runs as the owner, which the policies do not bind (no FORCE), so the GIN index
-- serves the match; it applies the policy's own predicate itself, so a caller still sees only the
-- tenant named by its transaction's `ragbot.tenant`, and nothing when none is set. It returns up
-- to `max_rows` matches with their rank; the caller joins them back to `chunks` (under RLS) for
-- filters and columns.
CREATE FUNCTION ragbot_keyword_matches(query tsquery, max_rows integer)
    RETURNS TABLE (id uuid, rank real)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
        SELECT m.id, ts_rank_cd(m.tsv, query) FROM (
            SELECT c.id, c.tsv FROM chunks c
            WHERE c.tenant = current_setting('ragbot.tenant', true) AND c.tsv @@ query
            LIMIT max_rows) m
    $$;
