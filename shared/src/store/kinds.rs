//! The closed sets of values stored as text: a document's status, an ingestion job's status, a
//! document's source, an S3 record's result. JSON and the database spell them the same way.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        /// Compares with the text form (`status == "ready"`).
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            /// The message names the accepted values: `'x' is not one of a, b, c`.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| {
                        let all: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        format!("'{s}' is not one of {}", all.join(", "))
                    })
            }
        }
    };
}

text_enum! {
    /// Where a document stands.
    DocumentStatus {
        /// Written, not yet ingested.
        Pending => "pending",
        /// A large document's workers are embedding it (its previous chunks are still served).
        Processing => "processing",
        Ready => "ready",
        /// Rejected (`failure_reason` says why); the previous chunks, if any, are gone.
        Failed => "failed",
    }
}

text_enum! {
    /// Where an ingestion job stands.
    JobStatus {
        Running => "running",
        Done => "done",
        Failed => "failed",
    }
}

text_enum! {
    /// How a document came in.
    Source {
        /// Uploaded through `POST /documents`.
        Api => "api",
        /// Put into the documents bucket directly.
        S3 => "s3",
        /// Question/answer pairs (`POST /embed/qa`).
        Qa => "qa",
    }
}

text_enum! {
    /// What handling one object notification record did (kept in the ingestion ledger).
    RecordResult {
        Ingested => "ingested",
        /// A large document: its workers embed it (see the report's `job_id`).
        Processing => "processing",
        Unchanged => "unchanged",
        Failed => "failed",
        Removed => "removed",
        NotFound => "not_found",
        Duplicate => "duplicate",
        Skipped => "skipped",
    }
}

/// A text column read as one of these enums (an unknown value is a store error).
pub(crate) fn column<T: FromStr<Err = String>>(
    row: &tokio_postgres::Row,
    index: usize,
) -> Result<T, super::StoreError> {
    let text: String = row.try_get(index)?;
    text.parse()
        .map_err(|e: String| super::StoreError::Config(format!("stored value: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_unknown_values_name_the_accepted_ones() {
        for s in DocumentStatus::ALL {
            assert_eq!(s.as_str().parse::<DocumentStatus>(), Ok(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(
            "x".parse::<Source>(),
            Err("'x' is not one of api, s3, qa".to_string())
        );
        assert_eq!(JobStatus::Done.to_string(), "done");
    }
}
