//! `#key` and JSON Pointer selection inside a JSON secret. No I/O.
//!
//! Navigation works on `serde_json::value::RawValue`, which borrows slices of the secret's
//! own text. Numbers therefore keep the text they were written with, object members keep
//! their order, and no parsed copy of the whole secret is built.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::de::{
    self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;
use zeroize::Zeroizing;

use crate::reference::Selector;

/// Selects part of a JSON secret. A string gives its text, a number or bool its JSON text,
/// an object or array its compact JSON with members in their original order.
///
/// When an object has the same member name twice, the last one wins, as in JavaScript's
/// `JSON.parse`.
pub fn select(document: &SecretString, selector: &Selector) -> Result<SecretString, SelectError> {
    let target = Target::from(selector);
    let root: &RawValue =
        // The error's line and column are dropped: where parsing stopped reveals how the
        // secret begins.
        serde_json::from_str(document.expose_secret()).map_err(|_| SelectError::NotJson {
            target: target.clone(),
        })?;

    let found = match selector {
        Selector::Member(name) => find_top_level_member(root, name),
        Selector::Pointer(pointer) => follow_pointer(root, pointer),
    };
    let value = match found {
        Ok(value) => value,
        Err(Failure::Missing(missing)) => return Err(SelectError::NotFound { target, missing }),
        Err(Failure::InvalidPointer(reason)) => {
            return Err(SelectError::InvalidPointer { target, reason })
        }
        Err(Failure::Unicode) => return Err(SelectError::Unicode { target }),
    };

    render(value, target)
}

/// The reason a selection failed. Messages never contain any part of the secret: they name the
/// key or pointer from the reference and describe what was found by kind and size only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("the secret is not valid JSON, so {target} cannot be selected")]
    NotJson { target: Target },
    #[error("{target} not found; {missing}")]
    NotFound { target: Target, missing: Missing },
    #[error(
        "{target} is null, but a selected value must be a string, number, boolean, object or array"
    )]
    Null { target: Target },
    #[error("invalid {target}: {reason}")]
    InvalidPointer {
        target: Target,
        reason: &'static str,
    },
    #[error(
        "{target} cannot be selected: a string in the secret has a \\u escape that is not \
         valid Unicode (an unpaired surrogate)"
    )]
    Unicode { target: Target },
}

/// The key or pointer of a reference, as named in error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target(Selector);

impl From<&Selector> for Target {
    fn from(selector: &Selector) -> Self {
        Target(selector.clone())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Selector::Member(name) => write!(f, "member {name:?}"),
            Selector::Pointer(pointer) => write!(f, "JSON Pointer {pointer:?}"),
        }
    }
}

/// The place where a lookup stopped and what the secret has there, by kind and size only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The object at `parent` has no member of the requested name.
    Member { parent: Location, members: usize },
    /// The array at `parent` is too short for the requested index.
    Index { parent: Location, elements: usize },
    /// The pointer uses `-`, the position after the last element of an array.
    PastEnd { parent: Location },
    /// A token that is not an array index (digits without leading zeros) on an array.
    NotIndex { parent: Location, token: String },
    /// A string, number, boolean or null where an object or array was needed.
    NotContainer { parent: Location, found: JsonKind },
    /// A top-level value other than an object, for a `#name` member key.
    NotObject { found: JsonKind },
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Member { parent, members } => write!(f, "{parent} has {members} members"),
            Missing::Index { parent, elements } => {
                write!(f, "{parent} is an array of {elements} elements")
            }
            Missing::PastEnd { parent } => write!(
                f,
                "\"-\" refers to the position after the last element of the array at {parent}"
            ),
            Missing::NotIndex { parent, token } => write!(
                f,
                "{parent} is an array, and {token:?} is not an array index (digits without leading zeros)"
            ),
            Missing::NotContainer { parent, found } => {
                write!(f, "{parent} is {found}, not an object or array")
            }
            Missing::NotObject { found } => write!(f, "the top level is {found}, not an object"),
        }
    }
}

/// A position in the secret, written as the JSON Pointer prefix that leads there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location(String);

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("the top level")
        } else {
            write!(f, "{:?}", self.0)
        }
    }
}

/// The kind of a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    Object,
    Array,
    String,
    Number,
    Boolean,
    Null,
}

impl JsonKind {
    /// Reads the kind from the first character, which decides it in valid JSON.
    fn of(value: &RawValue) -> JsonKind {
        match value.get().trim_ascii_start().as_bytes().first() {
            Some(b'{') => JsonKind::Object,
            Some(b'[') => JsonKind::Array,
            Some(b'"') => JsonKind::String,
            Some(b't' | b'f') => JsonKind::Boolean,
            Some(b'n') => JsonKind::Null,
            _ => JsonKind::Number,
        }
    }
}

impl fmt::Display for JsonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonKind::Object => "an object",
            JsonKind::Array => "an array",
            JsonKind::String => "a string",
            JsonKind::Number => "a number",
            JsonKind::Boolean => "a boolean",
            JsonKind::Null => "null",
        })
    }
}

enum Failure {
    Missing(Missing),
    InvalidPointer(&'static str),
    /// serde_json accepts an unpaired `\uD800` escape while skipping over a value, but not
    /// when it decodes the string, which selection does for member names and results.
    Unicode,
}

impl From<serde_json::Error> for Failure {
    // The secret was validated as JSON before navigation, so decoding a string is the
    // only step that can still fail.
    fn from(_: serde_json::Error) -> Self {
        Failure::Unicode
    }
}

fn find_top_level_member<'a>(root: &'a RawValue, name: &str) -> Result<&'a RawValue, Failure> {
    match JsonKind::of(root) {
        JsonKind::Object => {
            let (found, members) = find_member(root, name)?;
            found.ok_or(Failure::Missing(Missing::Member {
                parent: Location(String::new()),
                members,
            }))
        }
        found => Err(Failure::Missing(Missing::NotObject { found })),
    }
}

/// Follows an RFC 6901 JSON Pointer from `root`.
fn follow_pointer<'a>(root: &'a RawValue, pointer: &str) -> Result<&'a RawValue, Failure> {
    if pointer.is_empty() {
        return Ok(root);
    }
    let Some(tokens) = pointer.strip_prefix('/') else {
        return Err(Failure::InvalidPointer(
            "a JSON Pointer must start with \"/\"",
        ));
    };

    let mut current = root;
    let mut parent_end = 0;
    for raw_token in tokens.split('/') {
        let parent = || Location(pointer[..parent_end].to_owned());
        let token = unescape_token(raw_token)?;

        current = match JsonKind::of(current) {
            JsonKind::Object => match find_member(current, &token)? {
                (Some(value), _) => value,
                (None, members) => {
                    return Err(Failure::Missing(Missing::Member {
                        parent: parent(),
                        members,
                    }))
                }
            },
            JsonKind::Array => {
                let index = parse_index(&token).map_err(|()| {
                    Failure::Missing(if token == "-" {
                        Missing::PastEnd { parent: parent() }
                    } else {
                        Missing::NotIndex {
                            parent: parent(),
                            token: token.clone(),
                        }
                    })
                })?;
                match find_element(current, index)? {
                    (Some(value), _) => value,
                    (None, elements) => {
                        return Err(Failure::Missing(Missing::Index {
                            parent: parent(),
                            elements,
                        }))
                    }
                }
            }
            found => {
                return Err(Failure::Missing(Missing::NotContainer {
                    parent: parent(),
                    found,
                }))
            }
        };
        parent_end += 1 + raw_token.len();
    }
    Ok(current)
}

/// Decodes `~1` to `/` and `~0` to `~` in one reference token.
fn unescape_token(raw_token: &str) -> Result<String, Failure> {
    let mut token = String::with_capacity(raw_token.len());
    let mut characters = raw_token.chars();
    while let Some(character) = characters.next() {
        if character != '~' {
            token.push(character);
            continue;
        }
        match characters.next() {
            Some('0') => token.push('~'),
            Some('1') => token.push('/'),
            _ => {
                return Err(Failure::InvalidPointer(
                    "\"~\" must be followed by 0 or 1 (\"~0\" is \"~\", \"~1\" is \"/\")",
                ))
            }
        }
    }
    Ok(token)
}

/// Parses an RFC 6901 array index: `0`, or digits without a leading zero. `Ok(None)` is an
/// index too large for `usize`, which no array reaches.
fn parse_index(token: &str) -> Result<Option<usize>, ()> {
    let digits_only = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (token.len() > 1 && token.starts_with('0')) {
        return Err(());
    }
    Ok(token.parse().ok())
}

/// Finds member `name` in a JSON object. Returns the last member of that name, if any,
/// and the number of members.
fn find_member<'a>(
    object: &'a RawValue,
    name: &str,
) -> Result<(Option<&'a RawValue>, usize), serde_json::Error> {
    serde_json::Deserializer::from_str(object.get()).deserialize_map(MemberFinder { name })
}

/// Finds element `index` in a JSON array (`None` matches no element). Returns it, if any,
/// and the number of elements.
fn find_element(
    array: &RawValue,
    index: Option<usize>,
) -> Result<(Option<&RawValue>, usize), serde_json::Error> {
    serde_json::Deserializer::from_str(array.get()).deserialize_seq(ElementFinder { index })
}

/// Walks an object's members, borrowing the value of the requested one and skipping the rest,
/// so no member name or value is copied except while it is compared.
struct MemberFinder<'n> {
    name: &'n str,
}

impl<'de> Visitor<'de> for MemberFinder<'_> {
    type Value = (Option<&'de RawValue>, usize);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut members = 0;
        while let Some(is_wanted) = map.next_key_seed(NameEquals(self.name))? {
            members += 1;
            if is_wanted {
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok((found, members))
    }
}

/// Compares a member name with the requested name while it is being read.
struct NameEquals<'n>(&'n str);

impl<'de> DeserializeSeed<'de> for NameEquals<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for NameEquals<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<bool, E> {
        Ok(name == self.0)
    }
}

/// Walks an array to its end, borrowing element `index` and skipping the rest.
struct ElementFinder {
    index: Option<usize>,
}

impl<'de> Visitor<'de> for ElementFinder {
    type Value = (Option<&'de RawValue>, usize);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut elements = 0;
        loop {
            if Some(elements) == self.index {
                match seq.next_element::<&'de RawValue>()? {
                    Some(value) => found = Some(value),
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            elements += 1;
        }
        Ok((found, elements))
    }
}

/// Turns the selected JSON value into the variable's value.
fn render(value: &RawValue, target: Target) -> Result<SecretString, SelectError> {
    let text = value.get().trim_ascii();
    match JsonKind::of(value) {
        JsonKind::Null => Err(SelectError::Null { target }),
        JsonKind::String => {
            // NOTE: serde_json decodes a string that has escapes in an internal buffer, which
            // it frees without zeroing.
            let decoded = serde_json::from_str::<String>(text)
                .map(Zeroizing::new)
                .map_err(|_| SelectError::Unicode { target })?;
            Ok(SecretString::from(decoded.as_str()))
        }
        JsonKind::Number | JsonKind::Boolean => Ok(SecretString::from(text)),
        JsonKind::Object | JsonKind::Array => Ok(SecretString::from(compact_json(text).as_str())),
    }
}

/// Removes the whitespace between the tokens of valid JSON text. serde_json can only
/// compact by parsing and serializing again, which would re-format numbers such as `1.0`
/// or `12345678901234567890123`, so this walks the raw text instead.
fn compact_json(json: &str) -> Zeroizing<String> {
    // The output is never longer than the input, so the buffer never reallocates and
    // leaves no copy behind that Zeroizing would miss.
    let mut compact = Zeroizing::new(String::with_capacity(json.len()));
    let mut in_string = false;
    let mut after_backslash = false;
    for character in json.chars() {
        if in_string {
            compact.push(character);
            if after_backslash {
                after_backslash = false;
            } else if character == '\\' {
                after_backslash = true;
            } else if character == '"' {
                in_string = false;
            }
        } else if character == '"' {
            in_string = true;
            compact.push(character);
        } else if !matches!(character, ' ' | '\t' | '\n' | '\r') {
            compact.push(character);
        }
    }
    compact
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn member(name: &str) -> Selector {
        Selector::Member(name.to_owned())
    }

    fn pointer(text: &str) -> Selector {
        Selector::Pointer(text.to_owned())
    }

    fn select_text(document: &str, selector: &Selector) -> Result<String, SelectError> {
        select(&SecretString::from(document), selector)
            .map(|value| value.expose_secret().to_owned())
    }

    const NESTED: &str = r#"{
        "db": { "user": "app", "password": "hunter2", "port": 5432 },
        "items": [ "zero", { "name": "one" }, [ 2 ] ],
        "a/b": "slash",
        "m~n": "tilde",
        "": "empty name",
        " ": "space"
    }"#;

    #[test]
    fn select_scalars() {
        let cases = [
            (r#"{"password":"hunter2"}"#, member("password"), "hunter2"),
            (r#"{"s":"a\"b\\c\u00e9\n"}"#, member("s"), "a\"b\\cé\n"),
            (r#"{"s":""}"#, member("s"), ""),
            (r#"{"n":5432}"#, member("n"), "5432"),
            (r#"{"n":1.0}"#, member("n"), "1.0"),
            (r#"{"n":-0.5e+10}"#, member("n"), "-0.5e+10"),
            (
                r#"{"n":12345678901234567890123}"#,
                member("n"),
                "12345678901234567890123",
            ),
            (
                r#"{"n":0.1000000000000000000000001}"#,
                member("n"),
                "0.1000000000000000000000001",
            ),
            (r#"{"b":true}"#, member("b"), "true"),
            (r#"{"b":false}"#, member("b"), "false"),
            ("  {\n \"n\" :\t 1.50 \r\n}\n", member("n"), "1.50"),
            (r#"{"a":1,"a":2}"#, member("a"), "2"),
            (r#"{"pass word":"x"}"#, member("pass word"), "x"),
            (r#"{"caf\u00e9":"x"}"#, member("café"), "x"),
        ];
        for (document, selector, expected) in cases {
            assert_eq!(
                select_text(document, &selector).as_deref(),
                Ok(expected),
                "{document} {selector:?}"
            );
        }
    }

    #[test]
    fn select_containers_compact() {
        let cases = [
            (
                r#"{"o": { "b" : 2 , "a" : [ 1 , 2.50, 1e3 ] } }"#,
                member("o"),
                r#"{"b":2,"a":[1,2.50,1e3]}"#,
            ),
            (
                "{\"o\": {\"k\": \"a b  c\", \"e\": \"x\\\" y\\\\\", \"t\": \"\\t\"}}",
                member("o"),
                "{\"k\":\"a b  c\",\"e\":\"x\\\" y\\\\\",\"t\":\"\\t\"}",
            ),
            (
                "{\"z\": 1, \"a\": 2, \"m\": 3}",
                pointer(""),
                r#"{"z":1,"a":2,"m":3}"#,
            ),
            (r#"{"e":{}}"#, member("e"), "{}"),
            (r#"{"e":[ ]}"#, member("e"), "[]"),
            (
                r#"{"n":[12345678901234567890123, -0.0]}"#,
                member("n"),
                "[12345678901234567890123,-0.0]",
            ),
        ];
        for (document, selector, expected) in cases {
            assert_eq!(
                select_text(document, &selector).as_deref(),
                Ok(expected),
                "{document} {selector:?}"
            );
        }
    }

    #[test]
    fn select_pointers() {
        let cases = [
            ("/db/password", "hunter2"),
            ("/db/port", "5432"),
            ("/items/0", "zero"),
            ("/items/1/name", "one"),
            ("/items/2", "[2]"),
            ("/items/2/0", "2"),
            ("/a~1b", "slash"),
            ("/m~0n", "tilde"),
            ("/", "empty name"),
            ("/ ", "space"),
            ("/db", r#"{"user":"app","password":"hunter2","port":5432}"#),
        ];
        for (text, expected) in cases {
            assert_eq!(
                select_text(NESTED, &pointer(text)).as_deref(),
                Ok(expected),
                "{text}"
            );
        }
    }

    #[test]
    fn select_missing_values() {
        let top = Location(String::new());
        let location = |text: &str| Location(text.to_owned());
        let cases = [
            (
                pointer("/db/secret"),
                Missing::Member {
                    parent: location("/db"),
                    members: 3,
                },
            ),
            (
                pointer("/nothing/x"),
                Missing::Member {
                    parent: top.clone(),
                    members: 6,
                },
            ),
            (
                pointer("/items/3"),
                Missing::Index {
                    parent: location("/items"),
                    elements: 3,
                },
            ),
            (
                pointer("/items/99999999999999999999999"),
                Missing::Index {
                    parent: location("/items"),
                    elements: 3,
                },
            ),
            (
                pointer("/items/-"),
                Missing::PastEnd {
                    parent: location("/items"),
                },
            ),
            (
                pointer("/items/01"),
                Missing::NotIndex {
                    parent: location("/items"),
                    token: "01".into(),
                },
            ),
            (
                pointer("/items/+1"),
                Missing::NotIndex {
                    parent: location("/items"),
                    token: "+1".into(),
                },
            ),
            (
                pointer("/items/name"),
                Missing::NotIndex {
                    parent: location("/items"),
                    token: "name".into(),
                },
            ),
            (
                pointer("/db/password/x"),
                Missing::NotContainer {
                    parent: location("/db/password"),
                    found: JsonKind::String,
                },
            ),
            (
                pointer("/items/2/0/x"),
                Missing::NotContainer {
                    parent: location("/items/2/0"),
                    found: JsonKind::Number,
                },
            ),
            (
                member("password"),
                Missing::Member {
                    parent: top.clone(),
                    members: 6,
                },
            ),
        ];
        for (selector, missing) in cases {
            let target = Target::from(&selector);
            assert_eq!(
                select_text(NESTED, &selector),
                Err(SelectError::NotFound { target, missing }),
                "{selector:?}"
            );
        }
    }

    #[test]
    fn select_member_needs_object() {
        let cases = [
            ("[1, 2]", JsonKind::Array),
            ("\"text\"", JsonKind::String),
            ("42", JsonKind::Number),
            ("true", JsonKind::Boolean),
            ("null", JsonKind::Null),
        ];
        for (document, found) in cases {
            let selector = member("password");
            assert_eq!(
                select_text(document, &selector),
                Err(SelectError::NotFound {
                    target: Target::from(&selector),
                    missing: Missing::NotObject { found },
                }),
                "{document}"
            );
        }
    }

    #[test]
    fn select_null_rejected() {
        let cases = [
            (r#"{"password":null}"#, member("password")),
            (r#"{"a":[null]}"#, pointer("/a/0")),
            ("null", pointer("")),
        ];
        for (document, selector) in cases {
            let target = Target::from(&selector);
            assert_eq!(
                select_text(document, &selector),
                Err(SelectError::Null { target }),
                "{document}"
            );
        }
    }

    #[test]
    fn select_invalid_pointers() {
        for text in ["/a~2", "/a~", "/~", "db/password"] {
            let result = select_text(NESTED, &pointer(text));
            assert!(
                matches!(result, Err(SelectError::InvalidPointer { .. })),
                "{text}: {result:?}"
            );
        }
    }

    #[test]
    fn select_rejects_non_json() {
        let cases = [
            "hunter2",
            "",
            "   ",
            "{\"password\": \"hunter2\"",
            "{\"password\": \"hunter2\"} trailing",
            "{'password': 'hunter2'}",
            "{\"password\": hunter2}",
            "\u{FEFF}{\"password\":\"hunter2\"}",
        ];
        for document in cases {
            let result = select_text(document, &member("password"));
            let Err(error) = result else {
                panic!("{document:?} should not be valid JSON");
            };
            assert!(matches!(error, SelectError::NotJson { .. }), "{error:?}");
            let message = error.to_string();
            assert!(
                message.starts_with("the secret is not valid JSON"),
                "{message}"
            );
            assert!(!message.contains("hunter2"), "{message}");
        }
    }

    #[test]
    fn select_unpaired_surrogate() {
        let cases = [
            (r#"{"s":"\ud800"}"#, member("s")),
            (r#"{"\ud800":1,"s":2}"#, member("s")),
        ];
        for (document, selector) in cases {
            let target = Target::from(&selector);
            assert_eq!(
                select_text(document, &selector),
                Err(SelectError::Unicode { target }),
                "{document}"
            );
        }
    }

    #[test]
    fn select_deep_nesting() {
        let depth = 100_000;
        let document = format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));

        let selected = select_text(&document, &pointer("/a/0/0"));

        let expected = format!("{}{}", "[".repeat(depth - 2), "]".repeat(depth - 2));
        assert_eq!(selected.as_deref(), Ok(expected.as_str()));
    }

    #[test]
    fn error_messages_read() {
        let cases = [
            (
                select_text(r#"{"a":1,"b":2,"c":3}"#, &member("password")),
                "member \"password\" not found; the top level has 3 members",
            ),
            (
                select_text(NESTED, &pointer("/items/5")),
                "JSON Pointer \"/items/5\" not found; \"/items\" is an array of 3 elements",
            ),
            (
                select_text(r#"{"password":null}"#, &member("password")),
                "member \"password\" is null, but a selected value must be a string, number, \
                 boolean, object or array",
            ),
            (
                select_text("[1]", &member("password")),
                "member \"password\" not found; the top level is an array, not an object",
            ),
            (
                select_text("hunter2", &member("password")),
                "the secret is not valid JSON, so member \"password\" cannot be selected",
            ),
        ];
        for (result, expected) in cases {
            assert_eq!(result.unwrap_err().to_string(), expected);
        }
    }

    /// Text that marks secret content: it must never appear in an error message.
    const CANARY: &str = "cnry";

    /// JSON documents whose strings start with the canary and whose numbers start with 777.
    /// Member names are short and free of the canary, so selectors can name them.
    fn document_strategy() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            "777[0-9]{0,20}(\\.[0-9]{1,4})?"
                .prop_map(|number| serde_json::from_str::<Value>(&number).unwrap()),
            "[a-z \"\\\\/\u{e9}\n]{0,8}".prop_map(|text| Value::String(format!("{CANARY}{text}"))),
        ];
        leaf.prop_recursive(4, 48, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((member_name_strategy(), inner), 0..4)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    fn member_name_strategy() -> impl Strategy<Value = String> {
        "[ab~/]{0,2}"
    }

    fn selector_strategy() -> impl Strategy<Value = Selector> {
        let token = prop_oneof![
            member_name_strategy(),
            proptest::sample::select(vec!["0", "1", "3", "-", "01"]).prop_map(str::to_owned),
        ];
        prop_oneof![
            member_name_strategy().prop_map(Selector::Member),
            proptest::collection::vec(token, 0..4).prop_map(|tokens| {
                let escaped: String = tokens
                    .iter()
                    .map(|token| format!("/{}", token.replace('~', "~0").replace('/', "~1")))
                    .collect();
                Selector::Pointer(escaped)
            }),
        ]
    }

    /// Returns what serde_json's own navigation finds for a selector, as the expected result.
    fn expected_value<'a>(document: &'a Value, selector: &Selector) -> Option<&'a Value> {
        match selector {
            Selector::Member(name) => document.as_object()?.get(name),
            Selector::Pointer(text) => document.pointer(text),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn select_never_panics(document in any::<String>(), key in any::<String>()) {
            let _ = select_text(&document, &Selector::Member(key.clone()));
            let _ = select_text(&document, &Selector::Pointer(key));
        }

        #[test]
        fn select_matches_serde_json(
            document in document_strategy(),
            selector in selector_strategy(),
            pretty in any::<bool>(),
        ) {
            let text = if pretty {
                serde_json::to_string_pretty(&document).unwrap()
            } else {
                serde_json::to_string(&document).unwrap()
            };

            let result = select_text(&text, &selector);

            match (expected_value(&document, &selector), result) {
                (Some(Value::String(expected)), Ok(selected)) => {
                    prop_assert_eq!(&selected, expected);
                }
                (Some(Value::Null), Err(SelectError::Null { .. })) => {}
                // Compacting the document's text gives what serde_json writes for the value.
                // Parsing the selected text instead would compare floats that serde_json
                // parses to within one unit in the last place only.
                (Some(expected), Ok(selected)) => {
                    prop_assert_eq!(selected, serde_json::to_string(expected).unwrap());
                }
                (None, Err(SelectError::NotFound { .. })) => {}
                (expected, result) => {
                    prop_assert!(false, "expected {expected:?}, got {result:?}");
                }
            }
        }

        #[test]
        fn errors_never_quote_secret(
            document in document_strategy(),
            selector in selector_strategy(),
            garbage in "[a-z{}\\[\\]\":, ]{0,20}",
        ) {
            let valid = serde_json::to_string(&document).unwrap();
            let broken = format!("{valid}{CANARY}{garbage}");
            for text in [valid, broken] {
                if let Err(error) = select_text(&text, &selector) {
                    let message = error.to_string();
                    prop_assert!(!message.contains(CANARY), "{message}");
                    prop_assert!(!message.contains("777"), "{message}");
                    prop_assert!(!message.contains("true"), "{message}");
                    prop_assert!(!message.contains("false"), "{message}");
                    prop_assert!(!format!("{error:?}").contains(CANARY), "{error:?}");
                }
            }
        }
    }
}
