//! Catalog paths: `dir/sub/table`, optionally pinned to a version with `dir/table:3`.
//!
//! Pure parsing and display; nothing here touches storage.

use std::fmt;

use crate::error::{err, shown, Result};
use crate::types::Version;

/// The longest name a path segment may have.
pub const MAX_SEGMENT_LEN: usize = 63;
/// The deepest a path may nest.
pub const MAX_DEPTH: usize = 32;

/// A parsed catalog path. The empty path is the root directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path {
    segments: Vec<String>,
    version: Option<Version>,
}

impl Path {
    /// The root directory.
    pub fn root() -> Path {
        Path { segments: Vec::new(), version: None }
    }

    /// Parses `a/b/c` or `a/b/c:N`. Each segment is an identifier: it starts with an ASCII
    /// letter, goes on with ASCII letters, digits or `_`, and is at most 63 characters long.
    pub fn parse(text: &str) -> Result<Path> {
        let (body, version) = match text.rsplit_once(':') {
            Some((body, v)) => {
                // Plain decimal only: `:+1` or `:01` would name version 1 by another spelling.
                let plain = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && (v == "0" || !v.starts_with('0'));
                let version = v.parse::<u64>().ok().filter(|_| plain).ok_or_else(|| {
                    err!(
                        InvalidPath,
                        "path {}: {} after ':' is not a version number (write plain decimal, e.g. 'dir/table:3')",
                        shown(text),
                        shown(v)
                    )
                })?;
                (body, Some(Version(version)))
            }
            None => (text, None),
        };
        if body.is_empty() {
            if version.is_some() {
                return Err(err!(InvalidPath, "path {}: a version needs a table path before ':'", shown(text)));
            }
            return Ok(Path::root());
        }
        let mut segments = Vec::new();
        for segment in body.split('/') {
            validate_name(segment).map_err(|why| err!(InvalidPath, "path {}: {why}", shown(text)))?;
            segments.push(segment.to_owned());
        }
        if segments.len() > MAX_DEPTH {
            return Err(err!(
                InvalidPath,
                "path {} nests {} deep; the limit is {MAX_DEPTH}",
                shown(text),
                segments.len()
            ));
        }
        Ok(Path { segments, version })
    }

    /// True for the root directory.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// The last segment (empty for the root).
    pub fn name(&self) -> &str {
        self.segments.last().map(String::as_str).unwrap_or("")
    }

    /// The directory holding this path; `None` for the root.
    pub fn parent(&self) -> Option<Path> {
        if self.is_root() {
            return None;
        }
        Some(Path { segments: self.segments[..self.segments.len() - 1].to_vec(), version: None })
    }

    /// Every ancestor from the first segment down to the parent (the root is left out).
    pub fn ancestors(&self) -> impl Iterator<Item = Path> + '_ {
        (1..self.segments.len()).map(|n| Path { segments: self.segments[..n].to_vec(), version: None })
    }

    /// The version this path is pinned to, if any (`dir/table:3`).
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The same path without a version.
    pub fn unversioned(&self) -> Path {
        Path { segments: self.segments.clone(), version: None }
    }

    /// This path with `name` appended.
    pub fn join(&self, name: &str) -> Result<Path> {
        validate_name(name).map_err(|why| err!(InvalidPath, "name {}: {why}", shown(name)))?;
        let mut segments = self.segments.clone();
        segments.push(name.to_owned());
        Ok(Path { segments, version: None })
    }

    /// This path with a relative path of one or more names appended: `ns.join_relative("a/b")`.
    pub fn join_relative(&self, relative: &str) -> Result<Path> {
        let mut out = self.clone();
        for name in relative.split('/') {
            out = out.join(name)?;
        }
        Ok(out)
    }

    /// True when `self` is `other` or lies inside it.
    pub fn starts_with(&self, other: &Path) -> bool {
        self.segments.len() >= other.segments.len() && self.segments[..other.segments.len()] == other.segments[..]
    }

    /// The number of segments.
    pub fn depth(&self) -> usize {
        self.segments.len()
    }
}

/// Checks a directory, table or column name; the error says what is wrong with it.
pub(crate) fn validate_name(name: &str) -> std::result::Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("a name is empty (check for '//' or a trailing '/')".into()),
        Some(c) if !c.is_ascii_alphabetic() => {
            return Err(format!("{} must start with an ASCII letter", shown(name)));
        }
        Some(_) => {}
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
        return Err(format!("{} contains {bad:?}; names use ASCII letters, digits and '_'", shown(name)));
    }
    if name.len() > MAX_SEGMENT_LEN {
        return Err(format!("{} is {} characters long; the limit is {MAX_SEGMENT_LEN}", shown(name), name.len()));
    }
    Ok(())
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segments.join("/"))?;
        if let Some(v) = self.version {
            write!(f, ":{}", v.0)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Path {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Path> {
        Path::parse(s)
    }
}

/// Anything that can name a path: `&str`, `String`, or a [`Path`].
pub trait IntoPath {
    /// Parses or passes through the path.
    fn into_path(self) -> Result<Path>;
}

impl IntoPath for &str {
    fn into_path(self) -> Result<Path> {
        Path::parse(self)
    }
}
impl IntoPath for &String {
    fn into_path(self) -> Result<Path> {
        Path::parse(self)
    }
}
impl IntoPath for String {
    fn into_path(self) -> Result<Path> {
        Path::parse(&self)
    }
}
impl IntoPath for Path {
    fn into_path(self) -> Result<Path> {
        Ok(self)
    }
}
impl IntoPath for &Path {
    fn into_path(self) -> Result<Path> {
        Ok(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn parses_and_displays_round_trip() {
        for text in ["", "a", "a/b", "app/documents", "a/b_2/C3:17"] {
            assert_eq!(Path::parse(text).map(|p| p.to_string()), Ok(text.to_string()));
        }
    }

    #[test]
    fn version_and_parent() {
        let p = Path::parse("app/docs:3").unwrap();
        assert_eq!(p.version(), Some(Version(3)));
        assert_eq!(p.name(), "docs");
        assert_eq!(p.parent().unwrap().to_string(), "app");
        assert_eq!(p.ancestors().map(|a| a.to_string()).collect::<Vec<_>>(), vec!["app"]);
    }

    #[test]
    fn rejects_bad_paths_with_the_reason() {
        let check = |text: &str, needle: &str| {
            let e = Path::parse(text).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidPath, "{text}");
            assert!(e.message().contains(needle), "{text}: {e}");
        };
        check("a//b", "empty");
        check("a/", "empty");
        check("/a", "empty");
        check("1abc", "start with");
        check("_tabula_meta", "start with");
        check("a b", "contains ' '");
        check("a'; drop table x; --", "contains '\\''");
        check("a\u{7}b", "contains '\\u{7}'");
        check("dir/é", "start with");
        check("a:x", "not a version");
        check(":3", "needs a table");
        check(&"a".repeat(64), "limit is 63");
        check(&vec!["a"; 33].join("/"), "limit is 32");
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any text either parses, and then displays back to itself, or is refused with
        /// an InvalidPath error; the parser never panics.
        #[test]
        fn any_text_parses_or_is_refused(text in "\\PC{0,40}|[a-z/:0-9_]{0,30}") {
            match Path::parse(&text) {
                Ok(p) => prop_assert_eq!(p.to_string(), text),
                Err(e) => prop_assert_eq!(e.code(), crate::error::ErrorCode::InvalidPath),
            }
        }

        /// Valid paths round-trip through their display, with or without a version.
        #[test]
        fn valid_paths_round_trip(segs in proptest::collection::vec("[A-Za-z][A-Za-z0-9_]{0,10}", 1..6), v in proptest::option::of(0u64..1000)) {
            let text = match v {
                Some(v) => format!("{}:{v}", segs.join("/")),
                None => segs.join("/"),
            };
            let p = Path::parse(&text).unwrap();
            prop_assert_eq!(p.depth(), segs.len());
            prop_assert_eq!(Path::parse(&p.to_string()).unwrap(), p.clone());
            // Joining the same names one by one or as a relative path is the same path.
            let (first, rest) = segs.split_first().unwrap();
            let joined = Path::parse(first).unwrap();
            if !rest.is_empty() {
                prop_assert_eq!(joined.join_relative(&rest.join("/")).unwrap(), p.unversioned());
            }
        }
    }
}
