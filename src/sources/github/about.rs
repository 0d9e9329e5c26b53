//! What a delivery is about — its repository, issue or pull request number,
//! sender and action — for the events log, read from a body that routing
//! ignored without decoding it.
//!
//! A typed decode would scan the whole body (10–30 KB for most events, and
//! as long as the HMAC over it) for four small values. [`about`] reads the
//! top-level object's keys instead and skips every other value by its
//! structure alone — strings by a search for their closing quote,
//! containers by their brackets — without validating or materialising it.
//! The four values themselves are decoded by `serde_json`, so an escaped
//! string reads as it does everywhere else.
//!
//! What it gives on valid JSON is what a typed decode would: `action` and
//! top-level `number` when they have the right type, `repository.full_name`,
//! `sender.login`, and the number of `issue`, else of `pull_request`, else
//! the top-level one (a value of another type counts as absent; a key given
//! twice counts its last value). On text that is not a JSON object it gives
//! nothing; on other malformed text it may give part of the answer. It
//! never fails, allocates only the values it returns, and takes time linear
//! in the body whatever its nesting.

use serde::de::DeserializeOwned;

/// The subject of a delivery (each part when the payload has it):
/// `repository.full_name`; `issue.number`, else `pull_request.number`, else
/// `number`; `sender.login`; `action`.
pub type About = crate::events::Subject;

/// Reads what `body` is about; see the module documentation (an
/// [`crate::events::ReadSubject`]).
pub fn about(body: &[u8]) -> About {
    let mut skim = Skim { b: body, i: 0 };
    skim.top().unwrap_or_default()
}

/// The top-level keys [`about`] reads.
#[derive(Clone, Copy)]
enum Key {
    Action,
    Repository,
    Sender,
    Issue,
    PullRequest,
    Number,
    Other,
}

impl Key {
    fn of(name: &[u8]) -> Key {
        match name {
            b"action" => Key::Action,
            b"repository" => Key::Repository,
            b"sender" => Key::Sender,
            b"issue" => Key::Issue,
            b"pull_request" => Key::PullRequest,
            b"number" => Key::Number,
            _ => Key::Other,
        }
    }
}

/// A cursor over the body.
struct Skim<'a> {
    b: &'a [u8],
    i: usize,
}

/// A string's place in the body: its text between the quotes, and whether
/// it has escapes.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    escaped: bool,
}

impl<'a> Skim<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte after whitespace (not consumed).
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// Consumes `c` (after whitespace), or fails.
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A string, the cursor on its opening quote.
    fn string(&mut self) -> Option<Span> {
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            self.i = quote_or_backslash(self.b, self.i)?;
            if self.b[self.i] == b'"' {
                let end = self.i;
                self.i += 1;
                return Some(Span {
                    start,
                    end,
                    escaped,
                });
            }
            escaped = true;
            self.i += 2;
        }
    }

    /// A key's name as a [`Key`] (an escaped name decoded first).
    fn key(&mut self) -> Option<Key> {
        if self.peek()? != b'"' {
            return None;
        }
        let s = self.string()?;
        let key = if s.escaped {
            Key::of(self.decode::<String>(s)?.as_bytes())
        } else {
            Key::of(&self.b[s.start..s.end])
        };
        self.eat(b':')?;
        Some(key)
    }

    /// Decodes the string `s` with `serde_json`.
    fn decode<T: DeserializeOwned>(&self, s: Span) -> Option<T> {
        serde_json::from_slice(&self.b[s.start - 1..=s.end]).ok()
    }

    /// Skips one value, whatever it is: a string by its closing quote, a
    /// container by counting brackets (outside strings), anything else up
    /// to the next delimiter.
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match *self.b.get(self.i)? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            b'}' | b']' | b',' | b':' => return None,
            _ => {
                while !matches!(
                    self.b.get(self.i),
                    None | Some(b',' | b':' | b'}' | b']' | b'"' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    self.i += 1;
                }
            }
        }
        Some(())
    }

    /// A string value (`None` for another type, skipped).
    fn string_value(&mut self) -> Option<Option<String>> {
        if self.peek()? != b'"' {
            self.skip()?;
            return Some(None);
        }
        let s = self.string()?;
        Some(self.decode(s))
    }

    /// An unsigned integer value (`None` for another type, skipped).
    fn number_value(&mut self) -> Option<Option<u64>> {
        self.ws();
        let start = self.i;
        self.skip()?;
        let text = self.b[start..self.i].trim_ascii_end();
        Some(serde_json::from_slice(text).ok())
    }

    /// The value of `member` in an object value (`None` when the value is
    /// not an object or has no such member; the whole value is consumed).
    fn member<T>(
        &mut self,
        member: &[u8],
        value: impl Fn(&mut Self) -> Option<Option<T>>,
    ) -> Option<Option<T>> {
        if self.peek()? != b'{' {
            self.skip()?;
            return Some(None);
        }
        self.i += 1;
        let mut found = None;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(None);
        }
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let s = self.string()?;
            let is_member = if s.escaped {
                self.decode::<String>(s)?.as_bytes() == member
            } else {
                &self.b[s.start..s.end] == member
            };
            self.eat(b':')?;
            if is_member {
                found = value(self)?;
            } else {
                self.skip()?;
            }
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(found);
                }
                _ => return None,
            }
        }
    }

    /// The top-level object.
    fn top(&mut self) -> Option<About> {
        self.eat(b'{')?;
        let mut about = About::default();
        let (mut issue, mut pull_request, mut number) = (None, None, None);
        if self.peek()? != b'}' {
            loop {
                match self.key()? {
                    Key::Action => about.action = self.string_value()?,
                    Key::Repository => {
                        about.repository = self.member(b"full_name", Self::string_value)?;
                    }
                    Key::Sender => about.sender = self.member(b"login", Self::string_value)?,
                    Key::Issue => issue = self.member(b"number", Self::number_value)?,
                    Key::PullRequest => {
                        pull_request = self.member(b"number", Self::number_value)?;
                    }
                    Key::Number => number = self.number_value()?,
                    Key::Other => self.skip()?,
                }
                match self.peek()? {
                    b',' => self.i += 1,
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        about.number = issue.or(pull_request).or(number);
        Some(about)
    }
}

/// The index of the first `"` or `\\` in `b` from `at`: eight bytes at a
/// time over the first [`WORDS`] words (a string is searched for its end at
/// each of the hundreds of strings of a payload, most of them 10–60 bytes: a
/// call into a vectorised search costs more than it saves on those), then
/// by `memchr` (a long text, a comment's body).
fn quote_or_backslash(b: &[u8], mut at: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const QUOTES: u64 = ONES * b'"' as u64;
    const BACKSLASHES: u64 = ONES * b'\\' as u64;
    const WORDS: usize = 8;
    for _ in 0..WORDS {
        let Some(word) = b.get(at..).and_then(<[u8]>::first_chunk::<8>) else {
            break;
        };
        let w = u64::from_le_bytes(*word);
        // A zero byte in `x` sets its high bit in `zero(x)` (and may set
        // bits above it, never below: the lowest set bit is exact).
        let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
        let found = zero(w ^ QUOTES) | zero(w ^ BACKSLASHES);
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    memchr::memchr2(b'"', b'\\', b.get(at..)?).map(|p| at + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_four_values_and_skips_the_rest() {
        let body =
            br#" { "zen": "a \"quoted\" {[ text", "issue": {"user": {"login": "x", "number": 9},
            "labels": [{"name": "a,b"}, [], {}], "number": 12, "body": null},
            "act\u0069on": "created", "big": [1, -2.5e3, true, false, null, {"a": [[]]}],
            "repository": {"id": 1, "full_name": "acme\/widgets"},
            "sender": {"login": "octo\u00e9"}, "number": 3 } "#;
        assert_eq!(
            about(body),
            About {
                repository: Some("acme/widgets".into()),
                number: Some(12),
                sender: Some("octoé".into()),
                action: Some("created".into()),
            }
        );
    }

    #[test]
    fn wrong_types_count_as_absent_and_numbers_fall_back_in_order() {
        let body = br#"{"action": 5, "repository": "acme/widgets", "sender": {"login": null},
            "issue": {"number": "7"}, "pull_request": {"number": 8}, "number": 9}"#;
        assert_eq!(
            about(body),
            About {
                number: Some(8),
                ..About::default()
            }
        );
        let body = br#"{"issue": null, "pull_request": {"number": -1}, "number": 9}"#;
        assert_eq!(about(body).number, Some(9));
        let body = br#"{"number": 1.5}"#;
        assert_eq!(about(body).number, None);
    }

    #[test]
    fn the_word_search_finds_the_first_quote_or_backslash_wherever_it_is() {
        for len in (0..40).chain([63, 64, 65, 66, 100, 200]) {
            for at in 0..len {
                for c in [b'"', b'\\'] {
                    let mut b = vec![b'a'; len];
                    b[at] = c;
                    // A second one later, and bytes one away from each.
                    if at + 3 < len {
                        b[at + 3] = b'"';
                    }
                    if at > 0 {
                        b[at - 1] = b'#';
                    }
                    for from in 0..=at {
                        assert_eq!(quote_or_backslash(&b, from), Some(at), "{len} {at} {from}");
                    }
                }
            }
            assert_eq!(quote_or_backslash(&vec![0xff; len], 0), None);
        }
        assert_eq!(quote_or_backslash(b"ab", 5), None);
    }

    #[test]
    fn a_key_given_twice_counts_its_last_value() {
        let body = br#"{"sender": {"login": "a", "login": 5}, "action": "x", "action": "y",
            "repository": {"full_name": "a/b"}, "repository": {}}"#;
        assert_eq!(
            about(body),
            About {
                action: Some("y".into()),
                ..About::default()
            }
        );
    }

    #[test]
    fn routing_s_decode_reads_the_same_on_every_fixture() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github");
        let mut compared = 0;
        for dir in std::fs::read_dir(root).expect("fixtures") {
            let dir = dir.expect("entry").path();
            if !dir.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&dir).expect("fixture directory") {
                let path = file.expect("entry").path();
                let body = std::fs::read(&path).expect("fixture");
                let Ok(p) = serde_json::from_slice::<super::super::payload::Payload<'_>>(&body)
                else {
                    continue;
                };
                assert_eq!(p.about(), about(&body), "{}", path.display());
                compared += 1;
            }
        }
        assert!(compared >= 15, "{compared}");
    }

    #[test]
    fn text_that_is_not_an_object_gives_nothing_and_never_fails() {
        for body in [
            &b""[..],
            b"[]",
            b"\"x\"",
            b"{",
            b"{\"action\"",
            b"{\"action\":",
            b"{\"action\": \"open",
            b"{\"a\": \"\\",
            b"{\"a\": [[[[[[",
            b"{\"a\": ]}",
            b"{\"a\" 1}",
            b"{1: 2}",
            b"}{",
        ] {
            let _ = about(body);
        }
        assert_eq!(about(b"[{\"action\": \"x\"}]"), About::default());
        // Nesting costs no stack: 100,000 levels are skipped like one.
        let mut deep = b"{\"a\": ".to_vec();
        deep.extend(std::iter::repeat_n(b'[', 100_000));
        deep.extend(std::iter::repeat_n(b']', 100_000));
        deep.extend(b", \"action\": \"x\"}");
        assert_eq!(about(&deep).action.as_deref(), Some("x"));
        deep.truncate(deep.len() - 20);
        assert_eq!(about(&deep), About::default());
    }
}
