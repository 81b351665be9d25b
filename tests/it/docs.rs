//! The docs as a reader follows them: README.md and the pages of `docs/` (and any Markdown in
//! `deploy/`). Every relative link leads to a file that exists, and every `#anchor` into a
//! Markdown file to a heading of that file, as GitHub names headings.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, then every Markdown file in `docs/` and `deploy/`.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    for dir in ["docs", "deploy"] {
        let Ok(entries) = std::fs::read_dir(root().join(dir)) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
            .collect();
        found.sort();
        pages.extend(found);
    }
    pages
}

/// The lines of a Markdown text that are not inside a fenced code block.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            lines.push(line);
        }
    }
    lines
}

/// A line with its code spans (`` `…` ``) blanked out, so that brackets in code are not links.
/// `in_code` says whether the line starts inside a span (one may go on over lines of a
/// paragraph), and is left saying whether it ends inside one.
fn without_code_spans(line: &str, in_code: &mut bool) -> String {
    let mut shown = String::new();
    for (i, part) in line.split('`').enumerate() {
        if i > 0 {
            *in_code = !*in_code;
        }
        shown.push_str(if *in_code { "code" } else { part });
    }
    shown
}

/// The targets of a text's links: inline ones, `[text](target)`, and reference definitions,
/// `[label]: target`.
fn links(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_code = false;
    for line in prose(text) {
        if line.trim().is_empty() {
            in_code = false;
        }
        let line = without_code_spans(line, &mut in_code);
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix('[') {
            if let Some((_, target)) = rest.split_once("]:") {
                targets.push(target.split_whitespace().next().unwrap_or("").to_owned());
                continue;
            }
        }
        for (_, after) in line.match_indices("](").map(|(i, _)| line.split_at(i + 2)) {
            let target = after.split(')').next().unwrap_or("");
            targets.push(target.split_whitespace().next().unwrap_or("").to_owned());
        }
    }
    targets
}

/// GitHub's anchor for a heading's text: lowercase, punctuation other than `-` and `_` dropped,
/// each space a `-`.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown text's headings; a repeated one gets `-1`, `-2`, … as on GitHub.
fn anchors(text: &str) -> HashSet<String> {
    let mut anchors = HashSet::new();
    for line in prose(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        let Some(heading) = line[hashes..].strip_prefix(' ') else {
            continue;
        };
        if hashes == 0 || hashes > 6 {
            continue;
        }
        // A link in a heading shows its text only.
        let shown: String = heading
            .split("](")
            .enumerate()
            .map(|(i, part)| match i {
                0 => part,
                _ => part.split_once(')').map_or("", |(_, rest)| rest),
            })
            .collect();
        let base = slug(shown.trim().trim_end_matches('#').trim());
        let mut anchor = base.clone();
        let mut n = 0;
        while !anchors.insert(anchor.clone()) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
    }
    anchors
}

/// A path as the repository names it.
fn shown(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// What is wrong with one link of `page`, if anything.
fn broken(page: &Path, target: &str) -> Option<String> {
    if target.is_empty() {
        return Some("an empty target".into());
    }
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (target, None),
    };
    let file = match path {
        "" => page.to_path_buf(),
        path => page.parent().unwrap().join(path),
    };
    if !file.exists() {
        return Some(format!("{} does not exist", shown(&file)));
    }
    let anchor = anchor?;
    if file.extension().is_none_or(|ext| ext != "md") {
        return Some("an anchor into a file that is not Markdown".into());
    }
    let text = std::fs::read_to_string(&file).unwrap();
    if anchors(&text).contains(anchor) {
        None
    } else {
        Some(format!(
            "no heading of {} has the anchor #{anchor}",
            shown(&file)
        ))
    }
}

#[test]
fn every_relative_link_in_the_docs_leads_to_a_file_and_heading_that_exist() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for target in links(&text) {
            checked += 1;
            if let Some(why) = broken(&page, &target) {
                problems.push(format!("{}: ({target}): {why}", shown(&page)));
            }
        }
    }
    assert!(checked > 0, "no link found in {:?}", pages());
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn anchors_follow_githubs_rules_for_headings() {
    let text = "# pgsse\n## Two commands\n```sh\n# not a heading\n```\n\
                ## What no grant can take away: `NOTIFY`, locks\n## Two commands\n\
                ### `RING_BYTES` and [slow clients](delivery.md)\n";
    let found = anchors(text);
    let expected = [
        "pgsse",
        "two-commands",
        "what-no-grant-can-take-away-notify-locks",
        "two-commands-1",
        "ring_bytes-and-slow-clients",
    ];
    assert_eq!(found, expected.iter().map(|a| a.to_string()).collect());
}

#[test]
fn the_readmes_map_links_every_page_of_docs() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let linked = links(&readme);
    let docs = root().join("docs");
    let unlinked: Vec<String> = pages()
        .iter()
        .filter(|page| page.starts_with(&docs))
        .map(|page| format!("docs/{}", page.file_name().unwrap().to_str().unwrap()))
        .filter(|page| {
            !linked
                .iter()
                .any(|target| target.split('#').next() == Some(page))
        })
        .collect();
    assert!(unlinked.is_empty(), "not on README.md's map: {unlinked:?}");
}

#[test]
fn the_architecture_codemap_links_every_module_of_the_crate() {
    let lib = include_str!("../../src/lib.rs");
    let map = include_str!("../../docs/ARCHITECTURE.md");
    let modules: Vec<&str> = lib
        .lines()
        .filter_map(|line| line.strip_prefix("pub mod ")?.strip_suffix(';'))
        .collect();
    assert!(modules.len() > 10, "{modules:?}");
    let missing: Vec<&&str> = modules
        .iter()
        .filter(|m| {
            !map.contains(&format!("(../src/{m}.rs)")) && !map.contains(&format!("(../src/{m})"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/ARCHITECTURE.md's codemap: {missing:?}"
    );
}
