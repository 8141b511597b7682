//! Realistic generated knowledge for demos, tests and benchmarks: company-handbook style markdown
//! documents (headings, paragraphs of ~150–250 tokens) and question/answer pairs. Deterministic.

use super::qa::{QaBody, QaPair};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Small,
    Medium,
    Large,
}

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "small" => Ok(Size::Small),
            "medium" => Ok(Size::Medium),
            "large" => Ok(Size::Large),
            other => Err(format!("'{other}' is not one of small, medium, large")),
        }
    }
}

impl Size {
    /// (documents, sections per document, Q&A pairs)
    pub fn shape(self) -> (usize, usize, usize) {
        match self {
            // ≈ 5 documents × 50 chunks + 20 pairs
            Size::Small => (5, 50, 20),
            Size::Medium => (25, 50, 100),
            Size::Large => (100, 50, 500),
        }
    }
}

const TOPICS: [&str; 10] = [
    "Travel",
    "Security",
    "Onboarding",
    "Benefits",
    "Facilities",
    "Expenses",
    "Remote work",
    "Equipment",
    "Data protection",
    "Incident response",
];
const SUBJECTS: [&str; 12] = [
    "Employees",
    "Contractors",
    "Team leads",
    "New joiners",
    "Visitors",
    "Managers",
    "The finance team",
    "The IT service desk",
    "Department heads",
    "Interns",
    "Auditors",
    "The facilities team",
];
const VERBS: [&str; 10] = [
    "must submit",
    "should review",
    "are expected to confirm",
    "may request",
    "need to document",
    "are responsible for approving",
    "must never share",
    "can update",
    "should archive",
    "are asked to report",
];
const OBJECTS: [&str; 12] = [
    "travel requests",
    "access badges",
    "expense receipts",
    "laptop upgrades",
    "security incidents",
    "visitor registrations",
    "parking permits",
    "training records",
    "software licences",
    "customer data exports",
    "meeting room bookings",
    "overtime claims",
];
const WHEN: [&str; 10] = [
    "at least two weeks in advance",
    "within five working days",
    "before the end of each quarter",
    "through the self-service portal",
    "using the official template",
    "after written approval",
    "during the first week of employment",
    "whenever a policy changes",
    "as soon as the issue is noticed",
    "once a year",
];
const WHY: [&str; 8] = [
    "so that budgets can be planned accurately",
    "to keep the audit trail complete",
    "because regulators require it",
    "to protect customer information",
    "so that nobody is left without support",
    "to avoid duplicate payments",
    "to keep the office safe for everyone",
    "so that costs stay predictable",
];

/// A small deterministic generator (no RNG dependency needed for seed data).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.next() % items.len()]
    }
}

fn sentence(rng: &mut Lcg) -> String {
    format!(
        "{} {} {} {}, {}.",
        rng.pick(&SUBJECTS),
        rng.pick(&VERBS),
        rng.pick(&OBJECTS),
        rng.pick(&WHEN),
        rng.pick(&WHY)
    )
}

/// A paragraph of about `words` words.
pub fn paragraph(seed: u64, words: usize) -> String {
    let mut rng = Lcg(seed);
    let mut out = String::new();
    while out.split_whitespace().count() < words {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&sentence(&mut rng));
    }
    out
}

/// `(file name, markdown)` documents of the given size.
pub fn documents(size: Size) -> Vec<(String, String)> {
    let (docs, sections, _) = size.shape();
    (0..docs)
        .map(|d| {
            let topic = TOPICS[d % TOPICS.len()];
            let title = format!("{topic} handbook, part {}", d / TOPICS.len() + 1);
            let mut md =
                format!("# {title}\n\nThis handbook describes how {topic} works in practice.\n\n");
            for s in 0..sections {
                md.push_str(&format!("## {topic} rule {}\n\n", s + 1));
                md.push_str(&paragraph((d * 1000 + s) as u64, 140));
                md.push_str("\n\n");
            }
            let slug = title
                .to_lowercase()
                .replace([' ', ','], "-")
                .replace("--", "-");
            (format!("{slug}.md"), md)
        })
        .collect()
}

/// Question/answer documents (25 pairs per document).
/// How many two-turn conversations `ragbot seed` creates.
pub fn conversations(size: Size) -> usize {
    match size {
        Size::Small => 3,
        Size::Medium => 15,
        Size::Large => 60,
    }
}

pub fn qa_bodies(size: Size) -> Vec<QaBody> {
    let (_, _, pairs) = size.shape();
    let mut rng = Lcg(42);
    let mut all: Vec<QaPair> = (0..pairs)
        .map(|i| {
            let object = OBJECTS[i % OBJECTS.len()];
            let subject = rng.pick(&SUBJECTS).to_lowercase();
            QaPair {
                question: format!("How do {subject} handle {object} (case {})?", i + 1),
                answer: format!(
                    "{} {} {} {}.",
                    rng.pick(&SUBJECTS),
                    rng.pick(&VERBS),
                    object,
                    rng.pick(&WHEN)
                ),
            }
        })
        .collect();
    let mut bodies = Vec::new();
    let mut n = 1;
    while !all.is_empty() {
        let take = all.len().min(25);
        bodies.push(QaBody {
            document_title: format!("Frequently asked questions {n}"),
            question_answer_data: all.drain(..take).collect(),
        });
        n += 1;
    }
    bodies
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_seed_has_the_documented_shape() {
        let docs = documents(Size::Small);
        assert_eq!(docs.len(), 5);
        assert!(docs[0].1.matches("\n## ").count() == 50);
        let pairs: usize = qa_bodies(Size::Small)
            .iter()
            .map(|b| b.question_answer_data.len())
            .sum();
        assert_eq!(pairs, 20);
        assert_eq!(
            documents(Size::Small),
            documents(Size::Small),
            "deterministic"
        );
        assert!(qa_bodies(Size::Small).iter().all(|b| b.validate().is_ok()));
    }
}
