//! Markdown: sections by ATX heading (outside code fences), each carrying its heading path.

use super::{Parsed, Section};

pub fn parse(text: &str) -> Parsed {
    let mut sections = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut current = String::new();
    let mut in_fence = false;
    let mut title = None;
    let flush = |current: &mut String, path: &[(usize, String)], sections: &mut Vec<Section>| {
        if !current.trim().is_empty() {
            sections.push(Section {
                text: current.trim().to_string(),
                headings: path.iter().map(|(_, h)| h.clone()).collect(),
                page: None,
            });
        }
        current.clear();
    };
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
        }
        let level = if in_fence {
            0
        } else {
            trimmed.chars().take_while(|c| *c == '#').count()
        };
        let is_heading = (1..=6).contains(&level) && trimmed[level..].starts_with([' ', '\t']);
        if is_heading {
            flush(&mut current, &path, &mut sections);
            let heading = trimmed[level..]
                .trim()
                .trim_end_matches('#')
                .trim()
                .to_string();
            if level == 1 && title.is_none() {
                title = Some(heading.clone());
            }
            path.retain(|(l, _)| *l < level);
            path.push((level, heading));
        }
        current.push_str(line);
        current.push('\n');
    }
    flush(&mut current, &path, &mut sections);
    Parsed {
        title,
        sections,
        qa_pairs: Vec::new(),
        markdown: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_become_paths_and_fences_are_not_headings() {
        let p = parse("intro\n# Guide\ntext\n## Install\n```\n# not a heading\n```\n## Use\nrun it\n# Other\nx");
        let paths: Vec<Vec<String>> = p.sections.iter().map(|s| s.headings.clone()).collect();
        assert_eq!(
            paths,
            vec![
                vec![],
                vec!["Guide".to_string()],
                vec!["Guide".into(), "Install".into()],
                vec!["Guide".into(), "Use".into()],
                vec!["Other".into()],
            ]
        );
        assert!(p.sections[2].text.contains("# not a heading"));
        assert_eq!(p.title.as_deref(), Some("Guide"));
    }
}
