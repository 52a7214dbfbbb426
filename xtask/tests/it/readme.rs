//! The README's "Use Tabula in your project" blocks are the files of `examples/downstream`
//! (which CI builds, tests and runs), so the README cannot rot.

/// The lines of `file` between `// README: NAME` and `// README: end`, or the whole file.
fn source(root: &std::path::Path, reference: &str) -> String {
    let (file, region) = reference.split_once('#').map_or((reference, None), |(f, r)| (f, Some(r)));
    let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let Some(region) = region else { return text };
    let start = format!("// README: {region}");
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.iter().position(|l| l.trim() == start).unwrap_or_else(|| panic!("{file}: no '{start}'"));
    let to = from
        + lines[from..].iter().position(|l| l.trim() == "// README: end").unwrap_or_else(|| panic!("{file}: no end"));
    lines[from + 1..to].iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn the_readme_shows_the_downstream_project_as_it_is() {
    let root = xtask::workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut checked = 0;
    let mut rest = readme.as_str();
    while let Some(at) = rest.find("<!-- from ") {
        let after = &rest[at + "<!-- from ".len()..];
        let reference = &after[..after.find(" -->").unwrap()];
        let block = &after[after.find("```").unwrap()..];
        let body_start = block.find('\n').unwrap() + 1;
        let body_end = block[body_start..].find("```\n").unwrap() + body_start;
        assert_eq!(&block[body_start..body_end], source(&root, reference), "README block from {reference} differs");
        checked += 1;
        rest = &block[body_end..];
    }
    assert_eq!(checked, 4, "the README shows four files of the downstream project");
}
