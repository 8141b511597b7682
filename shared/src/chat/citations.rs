//! `[n]` markers in a generated answer: which passages it cites and which characters of the answer
//! each supports. Markers that point at no passage are removed from the text and never become
//! citations.

use crate::llm::CitedSpans;

/// A marker group found in the text: `[1]`, `[1, 2]` or `[1][2]` (char positions).
struct Marker {
    start: usize,
    end: usize,
    indices: Vec<usize>,
}

/// Parses `[n]` markers in `text`, keeping those with `1 <= n <= passages`. Returns the text with
/// invalid markers removed and, per cited index (in order of first use), the character spans it
/// supports: the sentence (or clause since the previous marker) the marker follows.
pub fn parse(text: &str, passages: usize) -> (String, CitedSpans) {
    let chars: Vec<char> = text.chars().collect();
    // 1. Drop indices that point at nothing; rebuild the text without empty marker groups.
    let mut clean: Vec<char> = Vec::with_capacity(chars.len());
    let mut markers: Vec<Marker> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '[' {
            if let Some((end, indices)) = marker_at(&chars, i) {
                let valid: Vec<usize> = indices
                    .into_iter()
                    .filter(|n| (1..=passages).contains(n))
                    .collect();
                if valid.is_empty() {
                    // Remove the marker and the space before it.
                    while clean.last().is_some_and(|c| *c == ' ') {
                        clean.pop();
                    }
                } else {
                    let rendered = valid.iter().map(|n| format!("[{n}]")).collect::<String>();
                    let start = clean.len();
                    clean.extend(rendered.chars());
                    markers.push(Marker {
                        start,
                        end: clean.len(),
                        indices: valid,
                    });
                }
                i = end;
                continue;
            }
        }
        clean.push(chars[i]);
        i += 1;
    }
    // 2. Each marker supports the text from the previous boundary up to it; a marker that opens
    //    its line (small models write "[1] text") supports the text after it, to the line's end.
    let mut cited: CitedSpans = Vec::new();
    let mut previous_end = 0;
    for (k, m) in markers.iter().enumerate() {
        let line_start = clean[..m.start]
            .iter()
            .rev()
            .find(|c| !matches!(c, ' ' | '\t'))
            .is_none_or(|c| *c == '\n');
        if line_start {
            let limit = markers.get(k + 1).map_or(clean.len(), |n| n.start);
            let mut start = m.end;
            while start < limit && clean[start].is_whitespace() {
                start += 1;
            }
            let mut end = (start..limit).find(|&i| clean[i] == '\n').unwrap_or(limit);
            while end > start && clean[end - 1].is_whitespace() {
                end -= 1;
            }
            previous_end = m.end;
            if start < end {
                add(&mut cited, &m.indices, (start, end));
            }
            continue;
        }
        let mut end = m.start;
        while end > previous_end && clean[end - 1].is_whitespace() {
            end -= 1;
        }
        let mut start = end;
        // Back to the previous sentence end (not counting the sentence's own final stop).
        let scan_to = end.saturating_sub(1);
        start = (previous_end..scan_to)
            .rev()
            .find(|&k| {
                matches!(clean[k], '.' | '!' | '?' | '\n')
                    && clean.get(k + 1).is_some_and(|c| c.is_whitespace())
            })
            .map(|k| k + 1)
            .unwrap_or(previous_end)
            .min(start);
        while start < end && clean[start].is_whitespace() {
            start += 1;
        }
        previous_end = m.end;
        if start < end {
            add(&mut cited, &m.indices, (start, end));
        }
    }
    (clean.into_iter().collect(), cited)
}

fn add(cited: &mut CitedSpans, indices: &[usize], span: (usize, usize)) {
    for &n in indices {
        match cited.iter_mut().find(|(i, _)| *i == n) {
            Some((_, spans)) => {
                if !spans.contains(&span) {
                    spans.push(span);
                }
            }
            None => cited.push((n, vec![span])),
        }
    }
}

/// A marker group starting at `chars[at] == '['`: its end and indices.
fn marker_at(chars: &[char], at: usize) -> Option<(usize, Vec<usize>)> {
    let mut indices = Vec::new();
    let mut i = at;
    // `[1][2]` is one group; `[1, 2]` and `[1,2]` too.
    while chars.get(i) == Some(&'[') {
        let mut j = i + 1;
        let mut group: Vec<usize> = Vec::new();
        loop {
            let digits_start = j;
            while chars.get(j).is_some_and(|c| c.is_ascii_digit()) {
                j += 1;
            }
            if j == digits_start || j - digits_start > 3 {
                return if indices.is_empty() {
                    None
                } else {
                    Some((i, indices))
                };
            }
            let n: String = chars[digits_start..j].iter().collect();
            group.push(n.parse().ok()?);
            match chars.get(j) {
                Some(']') => {
                    j += 1;
                    break;
                }
                Some(',') => {
                    j += 1;
                    while chars.get(j) == Some(&' ') {
                        j += 1;
                    }
                }
                _ => {
                    return if indices.is_empty() {
                        None
                    } else {
                        Some((i, indices))
                    }
                }
            }
        }
        indices.extend(group);
        i = j;
    }
    Some((i, indices))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span_text(text: &str, span: (usize, usize)) -> String {
        text.chars().skip(span.0).take(span.1 - span.0).collect()
    }

    #[test]
    fn markers_become_citations_with_their_sentence() {
        let (text, cited) = parse("Staff get 25 days. [1] Carry-over is five days [2].", 2);
        assert_eq!(text, "Staff get 25 days. [1] Carry-over is five days [2].");
        assert_eq!(cited.len(), 2);
        assert_eq!(span_text(&text, cited[0].1[0]), "Staff get 25 days.");
        assert_eq!(span_text(&text, cited[1].1[0]), "Carry-over is five days");
    }

    #[test]
    fn invented_indices_are_dropped_from_text_and_citations() {
        let (text, cited) = parse("Yes [7]. No [1][9]. Maybe [3, 2].", 2);
        assert_eq!(text, "Yes. No [1]. Maybe [2].");
        let indices: Vec<usize> = cited.iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, vec![1, 2]);
        assert_eq!(span_text(&text, cited[0].1[0]), "No");
    }

    #[test]
    fn grouped_markers_cite_every_index_and_brackets_that_are_not_markers_stay() {
        let (text, cited) = parse("See [a] and arrays [0..2]. Both apply [1, 2].", 2);
        assert_eq!(text, "See [a] and arrays [0..2]. Both apply [1][2].");
        assert_eq!(cited.len(), 2);
        assert_eq!(cited[0].1, cited[1].1);
        assert_eq!(span_text(&text, cited[0].1[0]), "Both apply");
    }

    #[test]
    fn spans_count_characters_not_bytes() {
        let (text, cited) = parse("Café ouvert à 9 h [1]", 1);
        assert_eq!(span_text(&text, cited[0].1[0]), "Café ouvert à 9 h");
        assert_eq!(cited[0].1[0], (0, 17));
    }

    #[test]
    fn a_marker_opening_its_line_cites_the_text_after_it() {
        let (text, cited) = parse(
            "[1] Archive them in the portal.\n[2] Approve two weeks ahead.",
            2,
        );
        assert_eq!(cited.len(), 2);
        assert_eq!(
            span_text(&text, cited[0].1[0]),
            "Archive them in the portal."
        );
        assert_eq!(span_text(&text, cited[1].1[0]), "Approve two weeks ahead.");
    }

    #[test]
    fn no_markers_no_citations() {
        let (text, cited) = parse("The knowledge base does not cover it.", 3);
        assert_eq!(text, "The knowledge base does not cover it.");
        assert!(cited.is_empty());
    }
}
