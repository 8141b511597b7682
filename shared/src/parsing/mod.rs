//! Document parsing: bytes of a supported format → sections of text (with heading path and page)
//! or question/answer pairs. Pure functions; no I/O.
//!
//! txt, md, html (text only: no scripts, styles or head), csv (a question/answer column pair
//! becomes Q&A pairs; other CSVs become rows of text), json (the Q&A body or an array of them),
//! pdf (pdf-extract, page numbers kept).

#[cfg(feature = "parsers")]
mod html;
mod markdown;
mod types;

pub use types::{Format, ParseError, Parsed, QaBody, QaPair, Section};

pub fn parse(format: Format, bytes: &[u8]) -> Result<Parsed, ParseError> {
    let parsed = match format {
        Format::Text => Parsed {
            sections: vec![section(utf8(bytes, "text")?.to_string())],
            ..Default::default()
        },
        Format::Markdown => markdown::parse(utf8(bytes, "markdown")?),
        #[cfg(feature = "parsers")]
        Format::Html => html::parse(&String::from_utf8_lossy(bytes)),
        #[cfg(feature = "parsers")]
        Format::Csv => csv_rows(bytes)?,
        Format::Json => json_qa(bytes)?,
        #[cfg(feature = "parsers")]
        Format::Pdf => pdf(bytes)?,
        #[cfg(not(feature = "parsers"))]
        Format::Html | Format::Csv | Format::Pdf => {
            return Err(ParseError::Unsupported(format!(
                "{} files are parsed by the embed function (this one is built without parsers)",
                format.mime()
            )))
        }
    };
    let has_text = parsed.sections.iter().any(|s| !s.text.trim().is_empty());
    if !has_text && parsed.qa_pairs.is_empty() {
        return Err(ParseError::Corrupt(format!(
            "the {} document contains no text",
            format.mime()
        )));
    }
    Ok(parsed)
}

fn section(text: String) -> Section {
    Section {
        text,
        headings: Vec::new(),
        page: None,
    }
}

fn utf8<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, ParseError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        ParseError::Corrupt(format!(
            "the {what} document is not valid UTF-8 (byte {})",
            e.valid_up_to()
        ))
    })
}

#[cfg(feature = "parsers")]
const QUESTION_COLUMNS: [&str; 4] = ["question", "questions", "q", "pregunta"];
#[cfg(feature = "parsers")]
const ANSWER_COLUMNS: [&str; 4] = ["answer", "answers", "a", "respuesta"];

#[cfg(feature = "parsers")]
fn csv_rows(bytes: &[u8]) -> Result<Parsed, ParseError> {
    let text = utf8(bytes, "CSV")?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| ParseError::Corrupt(format!("CSV header: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let find = |names: &[&str]| {
        headers
            .iter()
            .position(|h| names.contains(&h.to_ascii_lowercase().as_str()))
    };
    let qa_columns = find(&QUESTION_COLUMNS).zip(find(&ANSWER_COLUMNS));
    let mut parsed = Parsed::default();
    let mut rows = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(|e| ParseError::Corrupt(format!("CSV row {}: {e}", n + 2)))?;
        match qa_columns {
            Some((q, a)) => {
                let question = record.get(q).unwrap_or("").trim();
                let answer = record.get(a).unwrap_or("").trim();
                if question.is_empty() && answer.is_empty() {
                    continue;
                }
                if question.is_empty() || answer.is_empty() {
                    return Err(ParseError::Corrupt(format!(
                        "CSV row {}: a question/answer row needs both a question and an answer",
                        n + 2
                    )));
                }
                parsed.qa_pairs.push(QaPair {
                    question: question.to_string(),
                    answer: answer.to_string(),
                });
            }
            None => {
                let cells: Vec<String> = headers
                    .iter()
                    .zip(record.iter())
                    .filter(|(_, v)| !v.trim().is_empty())
                    .map(|(h, v)| format!("{h}: {}", v.trim()))
                    .collect();
                if !cells.is_empty() {
                    rows.push(cells.join("; "));
                }
            }
        }
    }
    if !rows.is_empty() {
        // One row per paragraph: the splitter packs whole rows into chunks.
        parsed.sections.push(section(rows.join("\n\n")));
    }
    Ok(parsed)
}

fn json_qa(bytes: &[u8]) -> Result<Parsed, ParseError> {
    let hint = "a JSON document must be the Q&A body {\"document_title\", \"question_answer_data\": [{\"question\", \"answer\"}]} or an array of them";
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ParseError::Corrupt(format!("malformed JSON: {e}")))?;
    let bodies: Vec<QaBody> =
        match value {
            serde_json::Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    serde_json::from_value(v)
                        .map_err(|e| ParseError::Corrupt(format!("[{i}]: {e}; {hint}")))
                })
                .collect::<Result<_, _>>()?,
            v => vec![serde_json::from_value(v)
                .map_err(|e| ParseError::Corrupt(format!("{e}; {hint}")))?],
        };
    let mut parsed = Parsed {
        title: bodies.first().map(|b| b.document_title.trim().to_string()),
        ..Default::default()
    };
    for body in bodies {
        body.validate()
            .map_err(|e| ParseError::Corrupt(e.to_string()))?;
        parsed.qa_pairs.extend(body.question_answer_data);
    }
    Ok(parsed)
}

#[cfg(feature = "parsers")]
fn pdf(bytes: &[u8]) -> Result<Parsed, ParseError> {
    if !bytes.starts_with(b"%PDF") {
        return Err(ParseError::Corrupt(
            "not a PDF file (no %PDF header)".into(),
        ));
    }
    // pdf-extract can panic on malformed files: contain it, a panic must not kill the invocation.
    let pages = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem_by_pages(bytes))
        .map_err(|_| ParseError::Corrupt("the PDF could not be read (malformed file)".into()))?
        .map_err(|e| ParseError::Corrupt(format!("the PDF could not be read: {e}")))?;
    let sections = pages
        .into_iter()
        .enumerate()
        .filter(|(_, text)| !text.trim().is_empty())
        .map(|(i, text)| Section {
            text: normalise_pdf_text(&text),
            headings: Vec::new(),
            page: Some(i as u32 + 1),
        })
        .collect();
    Ok(Parsed {
        sections,
        ..Default::default()
    })
}

/// pdf-extract keeps the layout's line breaks: join lines of a paragraph, keep blank lines.
#[cfg(feature = "parsers")]
fn normalise_pdf_text(text: &str) -> String {
    text.split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[cfg(all(test, feature = "parsers"))]
mod tests {
    use super::*;

    #[test]
    fn detects_by_content_type_then_extension() {
        assert_eq!(
            Format::detect(Some("text/markdown; charset=utf-8"), "x"),
            Ok(Format::Markdown)
        );
        assert_eq!(
            Format::detect(Some("application/octet-stream"), "a/b.PDF"),
            Ok(Format::Pdf)
        );
        assert_eq!(Format::detect(None, "notes.txt"), Ok(Format::Text));
        assert!(matches!(
            Format::detect(None, "photo.png"),
            Err(ParseError::Unsupported(_))
        ));
    }

    #[test]
    fn csv_with_question_and_answer_columns_gives_pairs() -> Result<(), ParseError> {
        let p = parse(
            Format::Csv,
            b"Question,Answer\nWhen?,Now\n\"Where, exactly?\",Here\n",
        )?;
        assert_eq!(p.qa_pairs.len(), 2);
        assert_eq!(p.qa_pairs[1].question, "Where, exactly?");
        assert!(p.sections.is_empty());
        let p = parse(Format::Csv, b"name,city\nAda,London\nAlan,Wilmslow\n")?;
        assert_eq!(
            p.sections[0].text,
            "name: Ada; city: London\n\nname: Alan; city: Wilmslow"
        );
        assert!(matches!(
            parse(Format::Csv, b"question,answer\nonly a question,\n"),
            Err(ParseError::Corrupt(m)) if m.contains("row 2")
        ));
        Ok(())
    }

    #[test]
    fn json_must_be_the_qa_body() -> Result<(), ParseError> {
        let p = parse(
            Format::Json,
            br#"[{"document_title":"T","question_answer_data":[{"question":"q","answer":"a"}]}]"#,
        )?;
        assert_eq!((p.title.as_deref(), p.qa_pairs.len()), (Some("T"), 1));
        assert!(matches!(
            parse(Format::Json, br#"{"x":1}"#),
            Err(ParseError::Corrupt(_))
        ));
        assert!(matches!(
            parse(Format::Json, b"{nope"),
            Err(ParseError::Corrupt(_))
        ));
        Ok(())
    }

    #[test]
    fn empty_invalid_and_fake_inputs_are_corrupt() {
        assert!(matches!(
            parse(Format::Text, b"  \n "),
            Err(ParseError::Corrupt(_))
        ));
        assert!(matches!(
            parse(Format::Text, b"\xff\xfe"),
            Err(ParseError::Corrupt(_))
        ));
        assert!(matches!(
            parse(Format::Pdf, b"hello"),
            Err(ParseError::Corrupt(_))
        ));
        assert!(matches!(
            parse(Format::Pdf, b"%PDF-1.4 garbage"),
            Err(ParseError::Corrupt(_))
        ));
    }
}
