//! What parsing yields (sections of text, Q&A pairs) and how it fails.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Text,
    Markdown,
    Html,
    Csv,
    Json,
    Pdf,
}

impl Format {
    pub fn mime(self) -> &'static str {
        match self {
            Format::Text => "text/plain",
            Format::Markdown => "text/markdown",
            Format::Html => "text/html",
            Format::Csv => "text/csv",
            Format::Json => "application/json",
            Format::Pdf => "application/pdf",
        }
    }

    /// From the content type when it names a supported format, else from the key's extension.
    pub fn detect(content_type: Option<&str>, key: &str) -> Result<Format, ParseError> {
        let ct = content_type
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let by_type = match ct.as_str() {
            "text/plain" => Some(Format::Text),
            "text/markdown" | "text/x-markdown" => Some(Format::Markdown),
            "text/html" | "application/xhtml+xml" => Some(Format::Html),
            "text/csv" | "application/csv" => Some(Format::Csv),
            "application/json" => Some(Format::Json),
            "application/pdf" => Some(Format::Pdf),
            _ => None,
        };
        if let Some(f) = by_type {
            return Ok(f);
        }
        let ext = key
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "txt" | "text" => Ok(Format::Text),
            "md" | "markdown" => Ok(Format::Markdown),
            "html" | "htm" => Ok(Format::Html),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "pdf" => Ok(Format::Pdf),
            _ => Err(ParseError::Unsupported(format!(
                "unsupported document type (content type '{}', name '{key}'): use txt, md, html, csv, json or pdf",
                if ct.is_empty() { "none" } else { &ct }
            ))),
        }
    }
}

/// A run of text under one heading path (and on one page for PDFs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub text: String,
    pub headings: Vec<String>,
    pub page: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// A title found in the content (HTML `<title>`, first markdown H1, Q&A `document_title`).
    pub title: Option<String>,
    pub sections: Vec<Section>,
    pub qa_pairs: Vec<QaPair>,
    /// Whether sections are markdown (split with the markdown-aware splitter).
    pub markdown: bool,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// Not a format we read (415 on the API).
    #[error("{0}")]
    Unsupported(String),
    /// A supported format that is broken or empty (422 on the API).
    #[error("{0}")]
    Corrupt(String),
}

/// Q&A pairs under one title: the body of `POST /embed/qa`, and a JSON file's content.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"document_title": "Staff FAQ", "question_answer_data": [
    {"question": "How do I reset my password?", "answer": "Open Settings, then Security, then Reset password."}]}))]
pub struct QaBody {
    pub document_title: String,
    pub question_answer_data: Vec<QaPair>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QaPair {
    pub question: String,
    pub answer: String,
}
