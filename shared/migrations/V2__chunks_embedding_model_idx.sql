-- Lets the start-up check "is any chunk embedded with another model?" answer from the index
-- instead of scanning every chunk at cold start.
CREATE INDEX chunks_embedding_model_idx ON chunks (embedding_model);
