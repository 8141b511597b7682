//! Reading the retrieval settings (`RETRIEVE_*`, `HNSW_EF_SEARCH`, `FALLBACK_*`).

use super::RetrieveSettings;
use crate::env::{ConfigError, Env};

impl RetrieveSettings {
    pub(crate) fn read<F: Fn(&str) -> Option<String>>(
        env: &Env<'_, F>,
    ) -> Result<Self, ConfigError> {
        let defaults = RetrieveSettings::default();
        let retrieve = RetrieveSettings {
            default_top_k: env.parse_or("RETRIEVE_TOP_K", defaults.default_top_k)?,
            max_top_k: env.parse_or("RETRIEVE_MAX_TOP_K", defaults.max_top_k)?,
            default_threshold: env.parse_or("RETRIEVE_THRESHOLD", defaults.default_threshold)?,
            max_query_chars: env.parse_or("RETRIEVE_MAX_QUERY_CHARS", defaults.max_query_chars)?,
            ef_search: env.parse_or("HNSW_EF_SEARCH", defaults.ef_search)?,
            fallback_questions: env
                .parse_or("FALLBACK_SAMPLE_QUESTIONS", defaults.fallback_questions)?,
            disclaimer: env
                .string("FALLBACK_DISCLAIMER")
                .unwrap_or(defaults.disclaimer),
        };
        if retrieve.default_top_k == 0 || retrieve.default_top_k > retrieve.max_top_k {
            return Err(ConfigError::Invalid {
                name: "RETRIEVE_TOP_K",
                reason: format!(
                    "must be between 1 and RETRIEVE_MAX_TOP_K ({})",
                    retrieve.max_top_k
                ),
            });
        }
        if !(-1.0..=1.0).contains(&retrieve.default_threshold) {
            return Err(ConfigError::Invalid {
                name: "RETRIEVE_THRESHOLD",
                reason: "a cosine similarity between -1 and 1".into(),
            });
        }
        if !(1..=1000).contains(&retrieve.ef_search) {
            return Err(ConfigError::Invalid {
                name: "HNSW_EF_SEARCH",
                reason: "must be between 1 and 1000 (pgvector's range)".into(),
            });
        }
        Ok(retrieve)
    }
}
