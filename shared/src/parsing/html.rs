//! HTML: visible text only (no script, style, head, template, noscript), sections by h1–h6.

use scraper::{node::Node, ElementRef, Html};

use super::{Parsed, Section};

const SKIP: [&str; 7] = [
    "script", "style", "head", "template", "noscript", "svg", "iframe",
];
const BLOCK: [&str; 22] = [
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "nav",
    "aside",
    "li",
    "ul",
    "ol",
    "table",
    "tr",
    "br",
    "blockquote",
    "pre",
    "dt",
    "dd",
    "figcaption",
    "form",
    "hr",
];

pub fn parse(source: &str) -> Parsed {
    let doc = Html::parse_document(source);
    let title = doc
        .root_element()
        .descendants()
        .filter_map(ElementRef::wrap)
        .find(|e| e.value().name() == "title")
        .map(|e| e.text().collect::<String>().trim().to_string())
        .filter(|t| !t.is_empty());
    let mut walker = Walker::default();
    walker.walk(doc.root_element());
    walker.flush();
    Parsed {
        title,
        sections: walker.sections,
        qa_pairs: Vec::new(),
        markdown: false,
    }
}

#[derive(Default)]
struct Walker {
    sections: Vec<Section>,
    path: Vec<(usize, String)>,
    text: String,
}

impl Walker {
    fn walk(&mut self, el: ElementRef<'_>) {
        let name = el.value().name();
        if SKIP.contains(&name) {
            return;
        }
        if let Some(level) = heading_level(name) {
            self.flush();
            let heading = normalise(&el.text().collect::<String>());
            self.path.retain(|(l, _)| *l < level);
            self.path.push((level, heading.clone()));
            self.text.push_str(&heading);
            self.text.push_str("\n\n");
            return;
        }
        let block = BLOCK.contains(&name);
        for child in el.children() {
            match child.value() {
                // Raw text; whitespace is normalised per paragraph at flush.
                Node::Text(t) => self.text.push_str(&t.replace("\n\n", "\n")),
                Node::Element(_) => {
                    if let Some(child_el) = ElementRef::wrap(child) {
                        self.walk(child_el);
                    }
                }
                _ => {}
            }
        }
        if block && !self.text.ends_with("\n\n") && !self.text.is_empty() {
            self.text.push_str("\n\n");
        }
    }

    fn flush(&mut self) {
        let text = self
            .text
            .split("\n\n")
            .map(normalise)
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n");
        if !text.is_empty() {
            self.sections.push(Section {
                text: text.to_string(),
                headings: self.path.iter().map(|(_, h)| h.clone()).collect(),
                page: None,
            });
        }
        self.text.clear();
    }
}

fn heading_level(name: &str) -> Option<usize> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

fn normalise(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_visible_text_and_headings_only() {
        let p = parse(
            "<html><head><title>Guide</title><style>p{color:red}</style></head><body>\
             <script>alert('x')</script><h1>Intro</h1><p>Hello <b>world</b>.</p>\
             <h2>Details</h2><p>More</p><noscript>enable js</noscript></body></html>",
        );
        assert_eq!(p.title.as_deref(), Some("Guide"));
        let all: String = p
            .sections
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join("|");
        assert!(all.contains("Hello world."), "{all}");
        assert!(
            !all.contains("alert") && !all.contains("color") && !all.contains("enable js"),
            "{all}"
        );
        assert_eq!(
            p.sections.last().map(|s| s.headings.clone()),
            Some(vec!["Intro".into(), "Details".into()])
        );
    }
}
