//! Personal data inside free text: what is found and what it becomes.
//!
//! Two finders run over the original text, and their matches are replaced in one pass (so a
//! pseudonym is never scrubbed again):
//! - **patterns**: URLs with credentials, emails (Unicode local parts and domains), IBANs,
//!   IPv4 and IPv6 addresses, and runs of digits with phone punctuation (`+49 (30) 4477-88`,
//!   `030/4477/8812`, `555.013.4477`): a run of 13 to 19 digits that passes the Luhn check is a
//!   card number, any other run of 7 or more digits a phone number;
//! - **the dictionary**: every value the same copy pseudonymizes in a mapped column (names
//!   and their parts, emails, phones, addresses, ids), replaced by the same pseudonym that
//!   column gets, wherever it stands in the text, as a whole word.
//!
//! Everything here is a pure function of the key and the text.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::LazyLock;

use fake::locales::{Data, EN};
use regex::Regex;

use super::{Anonymizer, Rule};

/// The patterns over ASCII digits and letters, alternatives in priority order (at one
/// position the first that matches wins): IBANs, IPv4, IPv6, digit runs (phones and cards).
/// Emails and URL credentials are found around their `@` and `://` instead, which is much
/// faster than a pattern with Unicode classes. Word boundaries are ASCII ones: Unicode ones
/// would stop the DFA on non-ASCII text.
static PATTERNS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}(?-u:\b)",
        r"|(?-u:\b)[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?-u:\b)",
        r"|(?i:(?-u:\b)[0-9a-f]{1,4}(?::[0-9a-f]{0,4}){2,7}(?-u:\b)|::[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6}(?-u:\b))",
        r"|\+?\(?[0-9][0-9\-./ ()]{5,}[0-9]",
    ))
    .expect("the free-text patterns are valid")
});

/// What a found piece of text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// `scheme://user:password@`.
    UrlCredentials,
    /// An email address.
    Email,
    /// An IBAN.
    Iban,
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// A card number (Luhn-valid, 13 to 19 digits).
    Card,
    /// A phone number (7 or more digits).
    Phone,
}

/// The spans of personal data the patterns find in `text`, in order, not overlapping.
pub(crate) fn find(text: &str) -> Vec<(usize, usize, Found)> {
    let mut out = Vec::new();
    if text.contains("://") {
        url_credentials(text, &mut out);
    }
    if text.contains('@') {
        emails(text, &mut out);
    }
    if text.bytes().any(|b| b.is_ascii_digit()) {
        for m in PATTERNS.find_iter(text) {
            let s = m.as_str();
            let bytes = s.as_bytes();
            let kind = if bytes[..2].iter().all(u8::is_ascii_uppercase) {
                Found::Iban
            } else if Ipv4Addr::from_str(s).is_ok() {
                Found::Ipv4
            } else if s.contains(':') {
                if Ipv6Addr::from_str(s).is_err() {
                    continue;
                }
                Found::Ipv6
            } else {
                let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect();
                if (13..=19).contains(&digits.len()) && luhn_ok(&digits) {
                    Found::Card
                } else if digits.len() >= 7 {
                    Found::Phone
                } else {
                    continue;
                }
            };
            out.push((m.start(), m.end(), kind));
        }
    }
    // Earliest first, then longest; drop what overlaps an earlier span.
    out.sort_by_key(|&(s, e, _)| (s, std::cmp::Reverse(e)));
    let mut end = 0;
    out.retain(|&(s, e, _)| {
        let keep = s >= end;
        if keep {
            end = e;
        }
        keep
    });
    out
}

fn email_local(c: char) -> bool {
    c.is_alphanumeric() || "._%+-".contains(c)
}

fn email_domain(c: char) -> bool {
    c.is_alphanumeric() || c == '.' || c == '-'
}

/// Emails: a local part and a domain with a dot and a top-level domain of two or more
/// letters around each `@` (any script).
fn emails(text: &str, out: &mut Vec<(usize, usize, Found)>) {
    for (at, _) in text.match_indices('@') {
        let start = text[..at].char_indices().rev().take_while(|&(_, c)| email_local(c)).last().map(|(i, _)| i);
        let Some(start) = start else { continue };
        let rest = &text[at + 1..];
        let mut end = at + 1 + rest.find(|c: char| !email_domain(c)).unwrap_or(rest.len());
        while end > at + 1 && text[..end].ends_with(['.', '-']) {
            end -= 1;
        }
        let domain = &text[at + 1..end];
        let Some((host, tld)) = domain.rsplit_once('.') else { continue };
        if !host.is_empty() && tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic) {
            out.push((start, end, Found::Email));
        }
    }
}

/// `scheme://user:password@`: credentials in a URL.
fn url_credentials(text: &str, out: &mut Vec<(usize, usize, Found)>) {
    for (sep, _) in text.match_indices("://") {
        let scheme_start = text[..sep]
            .char_indices()
            .rev()
            .take_while(|&(_, c)| c.is_ascii_alphanumeric() || "+.-".contains(c))
            .last()
            .map(|(i, _)| i);
        let Some(start) = scheme_start.filter(|&i| text[i..].starts_with(|c: char| c.is_ascii_alphabetic())) else {
            continue;
        };
        let rest = &text[sep + 3..];
        let Some(stop) = rest.find(|c: char| c.is_whitespace() || c == '/' || c == '@') else { continue };
        if rest[stop..].starts_with('@') && stop > 0 {
            out.push((start, sep + 3 + stop + 1, Found::UrlCredentials));
        }
    }
}

fn luhn_ok(digits: &[u8]) -> bool {
    luhn_sum(digits).is_multiple_of(10)
}

fn luhn_sum(digits: &[u8]) -> u32 {
    digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum()
}

/// The most words a dictionary entry spans (a long address); longer ones are not looked for.
const MAX_WORDS: usize = 8;

/// Values of mapped columns to find in free text, with what each becomes. A value is found
/// as whole words: the text is split into words (runs of letters and digits), and a run of
/// words, with what stands between them, is looked up when its first word starts an entry.
#[derive(Default)]
pub(crate) struct Dictionary {
    /// Each value to find, with what it is; its pseudonym is made when it is found, so
    /// building the dictionary costs no hashing.
    entries: HashMap<String, Entry, ahash::RandomState>,
    starts: HashSet<String, ahash::RandomState>,
    /// The first bytes of the entries: most words of a text are skipped on this alone.
    first_bytes: [u64; 4],
    /// Int ids of mapped columns, found in text as whole numbers.
    ids: HashSet<i64, ahash::RandomState>,
}

/// What a dictionary entry is, which decides its pseudonym.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A whole value of a column under this rule (Name, Address or Hash).
    Value(TextRule),
    /// The first word of a name.
    FirstName,
    /// A later word of a name.
    LastName,
}

/// The text rules whose values the dictionary holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextRule {
    Name,
    Address,
    Hash,
}

#[derive(Debug)]
struct Entry {
    kind: Kind,
    /// The value as the column has it, when the entry is another form of it (upper case).
    original: Option<Box<str>>,
}

/// What the dictionary found at a place in a text.
pub(crate) enum Hit<'d> {
    /// A value, with what it is and the text its pseudonym is made from.
    Value(Kind, &'d str),
    /// An Int id.
    Id(i64),
}

impl Dictionary {
    /// Adds `original` (as written, and in upper case when it is one word of 4 characters or
    /// more) as a `kind`. The first kind given for a text wins.
    pub(crate) fn add(&mut self, original: &str, kind: Kind) {
        let original = original.trim();
        if original.len() < 2 || self.entries.contains_key(original) || original.chars().count() < 2 {
            return;
        }
        // Names are capitalized in text, or shouted; their lower-case forms are words too
        // often ("will", "rose", "mark") to be replaced everywhere. A shouted value of several
        // words is found word by word (each word of a name is an entry of its own).
        let mut words = Words::new(original);
        let Some((start, first_end)) = words.next() else { return };
        let (count, end) = words.fold((1, first_end), |(n, _), (_, e)| (n + 1, e));
        if start != 0 || end != original.len() || count > MAX_WORDS {
            return; // starts or ends with punctuation, or too long: never found as words
        }
        self.insert(original.to_string(), first_end, Entry { kind, original: None });
        if count == 1 && original.chars().count() >= 4 {
            let upper = original.to_uppercase();
            if upper != original && !self.entries.contains_key(&upper) {
                let first_end = upper.len();
                self.insert(upper, first_end, Entry { kind, original: Some(original.into()) });
            }
        }
    }

    fn insert(&mut self, form: String, first_end: usize, entry: Entry) {
        let b = form.as_bytes()[0];
        self.first_bytes[usize::from(b >> 6)] |= 1 << (b & 63);
        if !self.starts.contains(&form[..first_end]) {
            self.starts.insert(form[..first_end].to_string());
        }
        self.entries.insert(form, entry);
    }

    /// Adds an Int id (5 digits or more: shorter numbers are any number).
    pub(crate) fn add_id(&mut self, id: i64) {
        if id.unsigned_abs() >= 10_000 {
            self.ids.insert(id);
        }
    }

    /// How many values it watches for.
    pub(crate) fn len(&self) -> usize {
        self.entries.len() + self.ids.len()
    }

    /// Finds entries in `text`, the longest at each word.
    fn find<'d>(&'d self, text: &'d str, out: &mut Vec<(usize, usize, Hit<'d>)>) {
        if self.entries.is_empty() && self.ids.is_empty() {
            return;
        }
        let mut words = Words::new(text);
        while let Some((start, end)) = words.next() {
            let b = text.as_bytes()[start];
            if b.is_ascii_digit() && !self.ids.is_empty() && end - start >= 5 {
                if let Some(id) = text[start..end].parse().ok().filter(|id| self.ids.contains(id)) {
                    out.push((start, end, Hit::Id(id)));
                    continue;
                }
            }
            if self.first_bytes[usize::from(b >> 6)] & (1 << (b & 63)) == 0 || !self.starts.contains(&text[start..end])
            {
                continue;
            }
            let mut ends = [end; MAX_WORDS];
            let mut n = 1;
            for (_, e) in words.clone().take(MAX_WORDS - 1) {
                ends[n] = e;
                n += 1;
            }
            let hit = ends[..n]
                .iter()
                .enumerate()
                .rev()
                .find_map(|(k, &e)| self.entries.get(&text[start..e]).map(|entry| (k, e, entry)));
            if let Some((k, e, entry)) = hit {
                let source = entry.original.as_deref().unwrap_or(&text[start..e]);
                out.push((start, e, Hit::Value(entry.kind, source)));
                for _ in 0..k {
                    words.next();
                }
            }
        }
    }
}

/// The words of a text (runs of letters and digits), as byte ranges.
#[derive(Clone)]
struct Words<'t> {
    text: &'t str,
    at: usize,
}

impl<'t> Words<'t> {
    fn new(text: &'t str) -> Words<'t> {
        Words { text, at: 0 }
    }
}

impl Iterator for Words<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        // Bytes below 0x80 are ASCII and tested directly; others decode their character.
        let bytes = self.text.as_bytes();
        let alnum_at = |i: usize| -> (bool, usize) {
            match bytes[i] {
                b if b < 0x80 => (b.is_ascii_alphanumeric(), 1),
                _ => self.text[i..].chars().next().map_or((false, 1), |c| (c.is_alphanumeric(), c.len_utf8())),
            }
        };
        let mut i = self.at;
        while i < bytes.len() {
            let (alnum, len) = alnum_at(i);
            if alnum {
                break;
            }
            i += len;
        }
        if i >= bytes.len() {
            self.at = bytes.len();
            return None;
        }
        let start = i;
        while i < bytes.len() {
            let (alnum, len) = alnum_at(i);
            if !alnum {
                break;
            }
            i += len;
        }
        self.at = i;
        Some((start, i))
    }
}

impl Anonymizer {
    /// `text` with everything the patterns and the dictionary find replaced.
    pub(crate) fn scrub(&self, text: String, dictionary: &Dictionary) -> String {
        let mut words = Vec::new();
        dictionary.find(&text, &mut words);
        let patterns = find(&text);
        if words.is_empty() && patterns.is_empty() {
            return text;
        }
        // Merge by start; on overlap the earlier (then the longer) match wins.
        let mut spans: Vec<(usize, usize, Result<Hit, Found>)> = words
            .into_iter()
            .map(|(s, e, p)| (s, e, Ok(p)))
            .chain(patterns.into_iter().map(|(s, e, k)| (s, e, Err(k))))
            .collect();
        spans.sort_by_key(|(s, e, _)| (*s, std::cmp::Reverse(*e)));
        let mut out = String::with_capacity(text.len() + 16);
        let mut at = 0;
        for (s, e, what) in spans {
            if s < at {
                continue;
            }
            out.push_str(&text[at..s]);
            let piece = &text[s..e];
            match what {
                Ok(Hit::Value(kind, source)) => out.push_str(&self.entry_pseudonym(kind, source)),
                Ok(Hit::Id(id)) => out.push_str(&self.hash_int(id).to_string()),
                Err(kind) => out.push_str(&self.found(kind, piece)),
            }
            at = e;
        }
        out.push_str(&text[at..]);
        out
    }

    /// The pseudonym of a dictionary entry: what its column gives the value, or for a word
    /// of a name, a keyed name of its own.
    pub(crate) fn entry_pseudonym(&self, kind: Kind, source: &str) -> String {
        match kind {
            Kind::Value(TextRule::Name) => self.pseudonym(&Rule::Name, source),
            Kind::Value(TextRule::Address) => self.pseudonym(&Rule::Address, source),
            Kind::Value(TextRule::Hash) => self.pseudonym(&Rule::Hash, source),
            Kind::FirstName => {
                self.pick(EN::NAME_FIRST_NAME, &self.hash("name-part", source.as_bytes()), 0).to_string()
            }
            Kind::LastName => self.pick(EN::NAME_LAST_NAME, &self.hash("name-part", source.as_bytes()), 0).to_string(),
        }
    }

    /// The pseudonym of one piece of text the patterns found.
    fn found(&self, kind: Found, piece: &str) -> String {
        match kind {
            Found::Email => self.pseudonym(&Rule::Email, piece),
            Found::Phone => self.pseudonym(&Rule::Phone, piece),
            Found::UrlCredentials => {
                let (scheme, rest) = piece.split_once("://").unwrap_or(("", piece));
                let user = rest.trim_end_matches('@').split(':').next().unwrap_or("");
                let h = self.hash("url-user", user.as_bytes());
                let password = if rest.contains(':') { ":redacted" } else { "" };
                format!("{scheme}://u{}{password}@", super::hex(&h[..8]))
            }
            Found::Ipv4 => {
                let h = self.hash("ipv4", piece.as_bytes());
                format!("10.{}.{}.{}", h[0], h[1], h[2])
            }
            Found::Ipv6 => {
                let h = self.hash("ipv6", piece.to_ascii_lowercase().as_bytes());
                let g = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
                format!("fd00::{:x}:{:x}:{:x}:{:x}", g(0), g(2), g(4), g(6))
            }
            Found::Card => {
                let digits: String = piece.chars().filter(char::is_ascii_digit).collect();
                let h = self.hash("card", digits.as_bytes());
                let n = digits.len();
                let mut new: Vec<u8> = (0..n).map(|i| h[i % 32] % 10).collect();
                new[0] = new[0].max(1);
                // Fix the check digit so the pseudonym is a well-formed card number.
                new[n - 1] = 0;
                new[n - 1] = ((10 - luhn_sum(&new) % 10) % 10) as u8;
                refill(piece, new.iter().map(|d| char::from(b'0' + d)), char::is_ascii_digit)
            }
            Found::Iban => self.iban(piece),
        }
    }

    fn iban(&self, piece: &str) -> String {
        let compact: String = piece.chars().filter(|c| !c.is_whitespace()).collect();
        let h = self.hash("iban", compact.as_bytes());
        let country = &compact[..2];
        let body: String = compact[4..]
            .chars()
            .enumerate()
            .map(|(i, c)| match c.is_ascii_digit() {
                true => char::from(b'0' + h[i % 32] % 10),
                false => char::from(b'A' + h[(i + 7) % 32] % 26),
            })
            .collect();
        // Check digits per ISO 13616: the account moved behind the country, letters as numbers.
        let digits: String = format!("{body}{country}00")
            .chars()
            .map(|c| if c.is_ascii_digit() { c.to_string() } else { (c as u32 - 'A' as u32 + 10).to_string() })
            .collect();
        let rem = digits.bytes().fold(0u32, |acc, b| (acc * 10 + u32::from(b - b'0')) % 97);
        let new = format!("{country}{:02}{body}", 98 - rem);
        refill(piece, new.chars(), |c| !c.is_whitespace())
    }

    /// Text of the same length and shape as `text`, with no word of it: letters become keyed
    /// letters (case kept), digits keyed digits, everything else stays.
    pub(crate) fn synthetic(&self, text: &str) -> String {
        const CONSONANTS: &[u8] = b"bcdfghklmnprstvz";
        const VOWELS: &[u8] = b"aeiou";
        let h = self.hash("synthetic", text.as_bytes());
        let mut state = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]) | 1;
        let mut in_word = 0usize;
        text.chars()
            .map(|c| {
                // xorshift: cheap, keyed through its seed; quality does not matter here.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if c.is_alphabetic() {
                    let pool = if in_word.is_multiple_of(2) { CONSONANTS } else { VOWELS };
                    in_word += 1;
                    let l = char::from(pool[(state % pool.len() as u64) as usize]);
                    if c.is_uppercase() {
                        l.to_ascii_uppercase()
                    } else {
                        l
                    }
                } else {
                    in_word = 0;
                    if c.is_ascii_digit() {
                        char::from(b'0' + (state % 10) as u8)
                    } else {
                        c
                    }
                }
            })
            .collect()
    }
}

/// `template` with the characters that pass `keep_shape` replaced, in order, by `new`.
fn refill(template: &str, mut new: impl Iterator<Item = char>, slot: impl Fn(&char) -> bool) -> String {
    template.chars().map(|c| if slot(&c) { new.next().unwrap_or(c) } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(String, Found)> {
        find(text).into_iter().map(|(s, e, k)| (text[s..e].to_string(), k)).collect()
    }

    #[test]
    fn the_patterns_find_each_kind_and_leave_ordinary_text() {
        let text = "Mail jürgen.weißkopf@straße.example or call 030/4477/8812, +49 (30) 4477-8812, \
                    card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, from 192.168.10.20 \
                    and 2001:db8::8a2e:370:7334, db https://admin:hunter2@db.internal/x. \
                    At 10:30:00 on 2024 we sold 12 units.";
        let found = kinds(text);
        let want = [
            ("jürgen.weißkopf@straße.example", Found::Email),
            ("030/4477/8812", Found::Phone),
            ("+49 (30) 4477-8812", Found::Phone),
            ("4111 1111 1111 1111", Found::Card),
            ("DE89 3704 0044 0532 0130 00", Found::Iban),
            ("192.168.10.20", Found::Ipv4),
            ("2001:db8::8a2e:370:7334", Found::Ipv6),
            ("https://admin:hunter2@", Found::UrlCredentials),
        ];
        assert_eq!(found.len(), want.len(), "{found:?}");
        for ((got, kind), (text, want_kind)) in found.iter().zip(want) {
            assert_eq!((got.as_str(), *kind), (text, want_kind));
        }
    }

    #[test]
    fn pseudonyms_keep_their_format() {
        let a = Anonymizer::new("k");
        let card = a.found(Found::Card, "4111 1111 1111 1111");
        let digits: Vec<u8> = card.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect();
        assert!(luhn_ok(&digits) && card.len() == 19 && card != "4111 1111 1111 1111", "{card}");
        let iban = a.found(Found::Iban, "DE89 3704 0044 0532 0130 00");
        assert!(iban.starts_with("DE") && iban.len() == 27 && !iban.contains("3704"), "{iban}");
        assert_eq!(kinds(&iban).first().map(|k| k.1), Some(Found::Iban));
        assert!(Ipv6Addr::from_str(&a.found(Found::Ipv6, "2001:db8::1")).is_ok());
        let synthetic = a.synthetic("Ada met Bob at 10:30, room 4B.");
        assert_eq!(synthetic.chars().count(), 30);
        assert!(synthetic.ends_with('.') && synthetic.contains(':') && !synthetic.contains("Ada"), "{synthetic}");
    }
}
