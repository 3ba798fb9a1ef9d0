//! `strategies/README.md` lists exactly what scripts can use: every function and property the
//! engine registers is documented in its section, every documented one exists, and the field
//! tables of the values scripts are handed are the fields of the Rust types behind them.

use std::collections::BTreeSet;
use std::path::Path;

use bugsmith::script::data::{CandidateData, ChangeData, Combo, InstanceData, Mirrored, field_names};

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("strategies/README.md")).unwrap()
}

/// The text from `heading` to the next heading of the same level.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text.find(heading).unwrap_or_else(|| panic!("README has no `{heading}`"));
    let rest = &text[start + heading.len()..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// The contents of every `code span`.
fn spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

fn words(text: &str) -> BTreeSet<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect()
}

/// Registered types, the README section that documents each, and the name scripts call a value of it.
const TYPES: [(&str, &str, &str); 5] = [
    ("Entity", "## `entity`", "entity"),
    ("Node", "## Nodes", "node"),
    ("Rng", "## `rng`", "rng"),
    ("Repo", "## Combine and mirror scripts", "repo"),
    ("Edit", "## Hooks", "edit"),
];

const NAMESPACES: [&str; 3] = ["ast", "patch", "lm"];

#[test]
fn every_function_scripts_can_call_is_documented_and_every_documented_one_exists() {
    let text = readme();
    let members = bugsmith::script::api_members();
    assert!(members.iter().any(|(o, n)| o == "patch" && n == "swap"), "the scan sees the API: {members:?}");
    let mut undocumented = Vec::new();
    for (owner, name) in &members {
        let documented = if NAMESPACES.contains(&owner.as_str()) {
            text.contains(&format!("`{owner}::{name}(")) || text.contains(&format!("`{owner}::{name}`"))
        } else if let Some((_, heading, _)) = TYPES.iter().find(|(t, _, _)| t == owner) {
            spans(section(&text, heading)).iter().any(|span| words(span).contains(name.as_str()))
        } else {
            false
        };
        if !documented {
            undocumented.push(format!("{owner}: {name}"));
        }
    }
    assert!(undocumented.is_empty(), "registered but not in strategies/README.md: {undocumented:#?}");

    let exists = |owner: &str, name: &str| members.iter().any(|(o, n)| o == owner && n == name);
    let mut phantom = Vec::new();
    for span in spans(&text) {
        for namespace in NAMESPACES {
            for (at, _) in span.match_indices(&format!("{namespace}::")) {
                let name: String = span[at + namespace.len() + 2..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && !exists(namespace, &name) {
                    phantom.push(format!("{namespace}::{name}"));
                }
            }
        }
        for (owner, _, variable) in TYPES {
            for (at, _) in span.match_indices(&format!("{variable}.")) {
                let before = span[..at].chars().next_back();
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    continue;
                }
                let name: String = span[at + variable.len() + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                // A node's children are read by field name (`node.body`): only the others are members.
                if !name.is_empty() && owner != "Node" && !exists(owner, &name) {
                    phantom.push(format!("{variable}.{name}"));
                }
            }
        }
    }
    let table = section(&text, "## `entity`");
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).unwrap_or("");
        for span in spans(first) {
            let name: String = span.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if name != "entity" && !exists("Entity", &name) {
                phantom.push(format!("entity.{name}"));
            }
        }
    }
    assert!(phantom.is_empty(), "documented in strategies/README.md but not registered: {phantom:#?}");
}

/// The names in the first column of the table headed `| `name` field |`.
fn documented_fields(text: &str, name: &str) -> BTreeSet<String> {
    let header = format!("| `{name}` field |");
    let start = text.find(&header).unwrap_or_else(|| panic!("README has no table `{header}`"));
    text[start..]
        .lines()
        .skip(2)
        .map(str::trim)
        .take_while(|l| l.starts_with('|'))
        .flat_map(|row| spans(row.split('|').nth(1).unwrap_or("")).into_iter().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

#[test]
fn the_field_tables_of_script_data_are_the_fields_of_its_types() {
    let text = readme();
    let types: [(&str, Vec<String>); 5] = [
        ("candidate", field_names::<CandidateData>()),
        ("combo", field_names::<Combo>()),
        ("change", field_names::<ChangeData>()),
        ("mirrored", field_names::<Mirrored>()),
        ("instance", field_names::<InstanceData>()),
    ];
    for (name, fields) in types {
        let fields: BTreeSet<String> = fields.into_iter().collect();
        assert_eq!(documented_fields(&text, name), fields, "the `{name}` table of strategies/README.md");
    }
}
