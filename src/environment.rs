//! The environment as read (process environment plus env files) and the child's
//! environment as built. Names and values stay `OsString`; nothing is re-encoded.
//!
//! Env files are parsed by dotenvy 0.15, so they follow its dotenv syntax: `KEY=value`,
//! an optional `export ` prefix, `#` comments, single quotes (literal) and double quotes
//! (with `\n`, `\"`, `\\` and `\$` escapes, and values spanning several lines). A
//! single-quoted value that ends in a backslash is rejected, because dotenvy 0.15 reads
//! the lines after it into the value.
//!
//! dotenvy also expands `$NAME` and `${NAME}` outside single quotes. It looks the name up
//! in the real process environment of kvexec first and only then among the earlier lines of
//! the same file, and an unknown name expands to nothing. So a file cannot see the variables
//! of an earlier `--env-file`, and `A=1` followed by `B=$A` gives `B` the inherited value of
//! `A` when the process has one. `$NAME` ends at the first character that is not a letter or
//! a digit (`$MY_VAR` is `$MY` followed by `_VAR`), so write `${MY_VAR}`. Write `'...'` or
//! `\$` for a literal `$`.

use secrecy::{ExposeSecret, SecretString};
use std::cell::Cell;
use std::ffi::{CStr, OsStr, OsString};
use std::fmt;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Variables in their original order; a later assignment of a name replaces the value in place.
///
/// `Debug` shows the names only, because inherited values include credentials such as
/// AZURE_CLIENT_SECRET.
#[derive(Default, Clone)]
pub struct Environment {
    vars: Vec<(OsString, OsString)>,
}

impl Environment {
    pub fn new(vars: Vec<(OsString, OsString)>) -> Self {
        Environment { vars }
    }

    /// Reads the process environment with `vars_os`, which keeps non-UTF-8 bytes.
    pub fn from_process() -> Self {
        Environment::new(std::env::vars_os().collect())
    }

    /// Applies one dotenv file: its variables override inherited ones and earlier files.
    ///
    /// An overridden variable keeps its position and takes the new value (every copy of
    /// it, when the inherited environment has the name twice). New names are appended in
    /// file order. The file is applied entirely or, on error, not at all.
    pub fn load_env_file(&mut self, path: &Path) -> Result<(), EnvFileError> {
        let assignments = parse_env_file(path)?;
        for (name, value) in assignments {
            self.set(OsString::from(name), OsString::from(value));
        }
        Ok(())
    }

    /// Returns the value of the last variable named `name`. Names compare byte for byte.
    pub fn get(&self, name: &str) -> Option<&OsStr> {
        let name = OsStr::new(name);
        self.vars
            .iter()
            .rev()
            .find(|(candidate, _)| candidate.as_os_str() == name)
            .map(|(_, value)| value.as_os_str())
    }

    /// Returns the value of `name` when it is set and valid UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(OsStr::to_str)
    }

    pub fn vars(&self) -> &[(OsString, OsString)] {
        &self.vars
    }

    /// Replaces the value of every variable named `name`, or appends the variable.
    fn set(&mut self, name: OsString, value: OsString) {
        let mut replaced = false;
        for (existing, existing_value) in &mut self.vars {
            if *existing == name {
                existing_value.clone_from(&value);
                replaced = true;
            }
        }
        if !replaced {
            self.vars.push((name, value));
        }
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&OsStr> = self.vars.iter().map(|(name, _)| name.as_os_str()).collect();
        f.debug_struct("Environment")
            .field("names", &names)
            .finish_non_exhaustive()
    }
}

/// An env file that could not be read or parsed. No variant contains text from the file,
/// because its values may be secrets.
#[derive(Debug, thiserror::Error)]
pub enum EnvFileError {
    #[error("env file {} not found; check the --env-file path", .path.display())]
    NotFound { path: PathBuf },

    #[error(
        "cannot read env file {}: {source}; check the --env-file path and its permissions",
        .path.display()
    )]
    Read { path: PathBuf, source: io::Error },

    #[error(
        "env file {} is not valid UTF-8 on line {line}; save it as UTF-8 text",
        .path.display()
    )]
    NotUtf8 { path: PathBuf, line: usize },

    #[error(
        "invalid dotenv syntax in env file {} on {}; check quoting there: quote values that \
         contain spaces, close every quote, and use only the escapes \\n \\\\ \\\" \\' \\$",
        .path.display(),
        LineSpan(*.first_line, *.last_line)
    )]
    Syntax {
        path: PathBuf,
        first_line: usize,
        last_line: usize,
    },

    #[error(
        "env file {} on line {line} has a backslash right before the closing single quote, \
         which dotenvy 0.15 misreads as an escaped quote; use double quotes and write the \
         backslash as \\\\",
        .path.display()
    )]
    BackslashBeforeQuote { path: PathBuf, line: usize },
}

/// Formats "line 3" or "lines 3-5".
struct LineSpan(usize, usize);

impl fmt::Display for LineSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == self.1 {
            write!(f, "line {}", self.0)
        } else {
            write!(f, "lines {}-{}", self.0, self.1)
        }
    }
}

/// Parses a whole env file with dotenvy into its assignments, in file order.
fn parse_env_file(path: &Path) -> Result<Vec<(String, String)>, EnvFileError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => Zeroizing::new(bytes),
        Err(source) if source.kind() == io::ErrorKind::NotFound => {
            return Err(EnvFileError::NotFound {
                path: path.to_owned(),
            })
        }
        Err(source) => {
            return Err(EnvFileError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };

    // dotenvy reads lines into `String`s, so checking here gives the line of the first bad byte.
    if let Err(error) = std::str::from_utf8(&bytes) {
        let line = line_number_at(&bytes, error.valid_up_to());
        return Err(EnvFileError::NotUtf8 {
            path: path.to_owned(),
            line,
        });
    }

    // dotenvy strips a UTF-8 byte order mark only when it loads into the process
    // environment, not in the iterator used here.
    let content = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);

    // The check above makes this conversion succeed.
    let text = std::str::from_utf8(content).unwrap_or_default();
    if let Some(line) = backslash_before_closing_quote(text) {
        return Err(EnvFileError::BackslashBeforeQuote {
            path: path.to_owned(),
            line,
        });
    }

    let last_line = Cell::new(0);
    let reader = LineByLineReader {
        rest: content,
        lines_completed: 0,
        last_line: &last_line,
    };

    let mut assignments = Vec::new();
    for item in dotenvy::from_read_iter(reader) {
        match item {
            Ok(assignment) => assignments.push(assignment),
            Err(dotenvy::Error::LineParse(text, _)) => {
                // `text` is the failing line or its value part: it may contain a secret, so
                // only its line count is used. dotenvy has then read up to the line's end.
                let text = Zeroizing::new(text);
                let end = last_line.get();
                let trimmed = text.strip_suffix('\n').unwrap_or(&text);
                let extra_lines = trimmed.matches('\n').count();
                return Err(EnvFileError::Syntax {
                    path: path.to_owned(),
                    first_line: end.saturating_sub(extra_lines).max(1),
                    last_line: end.max(1),
                });
            }
            Err(dotenvy::Error::Io(source)) => {
                return Err(EnvFileError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
            // dotenvy 0.15 returns no other error from its iterator, but the enum is non-exhaustive.
            Err(_) => {
                let end = last_line.get().max(1);
                return Err(EnvFileError::Syntax {
                    path: path.to_owned(),
                    first_line: end,
                    last_line: end,
                });
            }
        }
    }
    Ok(assignments)
}

/// Returns the 1-based number of the first line where a single-quoted value has a
/// backslash right before its closing quote.
///
/// dotenvy 0.15 disagrees with itself there. Its value parser keeps a backslash inside
/// single quotes and ends the value at the quote. The code that joins the lines of a
/// multi-line value reads `\'` as an escaped quote, though, and reads on. So
/// `A='C:\'` followed by `A='D:\'` gives A both lines as its value, a wrong value with
/// no error. This function mirrors that line joiner (`eval_end_state` and `QuotedLines` in
/// dotenvy 0.15's `iter.rs`) to find the spot before dotenvy reads the file.
fn backslash_before_closing_quote(content: &str) -> Option<usize> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum State {
        Complete,
        WhiteSpace,
        Escape,
        Single,
        SingleEscape,
        Double,
        DoubleEscape,
    }

    let mut state = State::Complete;
    for (index, line) in content.split_inclusive('\n').enumerate() {
        // The joiner skips a line that starts a record with '#', so quotes there do not count.
        if state == State::Complete && line.trim_start().starts_with('#') {
            continue;
        }
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            state = match (state, c) {
                (State::WhiteSpace, '#') => {
                    // A comment ends the record at the end of this line.
                    state = State::Complete;
                    break;
                }
                (State::Complete | State::WhiteSpace, '\\') => State::Escape,
                (State::Complete | State::WhiteSpace, '"') => State::Double,
                (State::Complete | State::WhiteSpace, '\'') => State::Single,
                (State::Complete, c) if c.is_whitespace() && c != '\n' && c != '\r' => State::WhiteSpace,
                (State::Complete | State::WhiteSpace | State::Escape, _) => State::Complete,
                (State::Double, '\\') => State::DoubleEscape,
                (State::Double, '"') => State::Complete,
                (State::Double, _) | (State::DoubleEscape, _) => State::Double,
                (State::Single, '\\') => {
                    if chars.peek() == Some(&'\'') {
                        return Some(index + 1);
                    }
                    State::SingleEscape
                }
                (State::Single, '\'') => State::Complete,
                (State::Single, _) | (State::SingleEscape, _) => State::Single,
            };
        }
    }
    None
}

/// Returns the 1-based number of the line that contains byte `offset`.
fn line_number_at(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset]
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count()
        + 1
}

/// A reader that returns at most one line per `read` call, so that the `BufReader` inside
/// dotenvy never contains more than the line it parses, and `last_line` is the number of the
/// line dotenvy read last. dotenvy reports no line numbers itself.
struct LineByLineReader<'a> {
    rest: &'a [u8],
    lines_completed: usize,
    last_line: &'a Cell<usize>,
}

impl Read for LineByLineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let line_length = match self.rest.iter().position(|&byte| byte == b'\n') {
            Some(newline) => newline + 1,
            None => self.rest.len(),
        };
        let count = line_length.min(buf.len());
        if count == 0 {
            return Ok(0);
        }

        buf[..count].copy_from_slice(&self.rest[..count]);
        self.last_line.set(self.lines_completed + 1);
        if self.rest[count - 1] == b'\n' {
            self.lines_completed += 1;
        }
        self.rest = &self.rest[count..];
        Ok(count)
    }
}

/// The child's environment: `NAME=VALUE` byte strings in the original order.
///
/// Each entry is stored with its terminating NUL, ready for execve, and is zeroized on
/// drop. `Debug` shows the names only.
pub struct ChildEnvironment {
    entries: Vec<Zeroizing<Vec<u8>>>,
}

impl ChildEnvironment {
    /// Builds the child environment: resolved values replace the variables at the given
    /// indexes of `env.vars()`, and variables named in `remove` are left out.
    ///
    /// Returns every problem found, not only the first: a name that is empty or contains
    /// `=` or NUL, and a value (resolved or not) that contains NUL. A removed variable is
    /// not checked.
    ///
    /// # Panics
    /// When an index in `values` is outside `env.vars()`, which is a bug in the caller.
    pub fn build(
        env: &Environment,
        values: Vec<(usize, SecretString)>,
        remove: &[&str],
    ) -> Result<ChildEnvironment, Vec<ChildEnvironmentError>> {
        let vars = env.vars();
        let mut resolved: Vec<Option<SecretString>> = vars.iter().map(|_| None).collect();
        for (index, value) in values {
            assert!(
                index < vars.len(),
                "resolved value for index {index}, but the environment has {} variables",
                vars.len()
            );
            resolved[index] = Some(value);
        }

        let mut entries = Vec::with_capacity(vars.len());
        let mut errors = Vec::new();
        for ((name, inherited), secret) in vars.iter().zip(resolved) {
            if remove
                .iter()
                .any(|removed| name.as_os_str() == OsStr::new(removed))
            {
                continue;
            }

            let name_bytes = name.as_bytes();
            if name_bytes.is_empty() || name_bytes.contains(&b'=') || name_bytes.contains(&0) {
                errors.push(ChildEnvironmentError::InvalidName { name: name.clone() });
                continue;
            }

            let value = match &secret {
                Some(secret) => secret.expose_secret().as_bytes(),
                None => inherited.as_bytes(),
            };
            if value.contains(&0) {
                let name = name.clone();
                errors.push(match secret {
                    Some(_) => ChildEnvironmentError::SecretContainsNul { name },
                    None => ChildEnvironmentError::ValueContainsNul { name },
                });
                continue;
            }

            entries.push(encode_entry(name_bytes, value));
        }

        if errors.is_empty() {
            Ok(ChildEnvironment { entries })
        } else {
            Err(errors)
        }
    }

    /// Returns the child's PATH, used to find the command. With several PATH entries, the
    /// last one wins, as in [`Environment::get`].
    pub fn path(&self) -> Option<&OsStr> {
        self.entries
            .iter()
            .rev()
            .find_map(|entry| entry_content(entry).strip_prefix(b"PATH="))
            .map(OsStr::from_bytes)
    }

    /// Returns the number of variables.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Returns the variable names, in order.
    pub fn names(&self) -> impl Iterator<Item = &OsStr> {
        self.entries.iter().map(|entry| entry_name(entry))
    }

    /// Returns the size in bytes of all `NAME=VALUE` strings, each counted with its
    /// terminating NUL, as execve copies them. The kernel also counts one pointer per
    /// string, which is not included here.
    pub fn size_bytes(&self) -> usize {
        self.entries.iter().map(|entry| entry.len()).sum()
    }

    /// Returns the name and size in bytes (with its NUL) of the longest `NAME=VALUE` string.
    pub fn largest_entry(&self) -> Option<(&OsStr, usize)> {
        self.entries
            .iter()
            .max_by_key(|entry| entry.len())
            .map(|entry| (entry_name(entry), entry.len()))
    }

    /// Returns the entries as C strings for execve, borrowed without a copy.
    pub(crate) fn as_c_strs(&self) -> Vec<&CStr> {
        self.entries
            .iter()
            .map(|entry| {
                CStr::from_bytes_with_nul(entry)
                    .expect("build() stores each entry with one NUL, at its end")
            })
            .collect()
    }
}

impl fmt::Debug for ChildEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&OsStr> = self.names().collect();
        f.debug_struct("ChildEnvironment")
            .field("names", &names)
            .finish_non_exhaustive()
    }
}

/// Builds `NAME=VALUE\0` in a buffer allocated once at its final size, so that no
/// reallocation leaves an unzeroized copy of the value behind.
fn encode_entry(name: &[u8], value: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut entry = Zeroizing::new(Vec::with_capacity(name.len() + 1 + value.len() + 1));
    entry.extend_from_slice(name);
    entry.push(b'=');
    entry.extend_from_slice(value);
    entry.push(0);
    entry
}

fn entry_content(entry: &[u8]) -> &[u8] {
    &entry[..entry.len() - 1]
}

fn entry_name(entry: &[u8]) -> &OsStr {
    let content = entry_content(entry);
    let name_length = content
        .iter()
        .position(|&byte| byte == b'=')
        .unwrap_or(content.len());
    OsStr::from_bytes(&content[..name_length])
}

/// A variable that cannot be passed to the child. No variant contains a value.
#[derive(Debug, thiserror::Error)]
pub enum ChildEnvironmentError {
    #[error(
        "the secret resolved for variable {} contains a NUL byte, which an environment \
         variable cannot hold; store the secret without NUL bytes, for example base64-encoded",
        .name.to_string_lossy()
    )]
    SecretContainsNul { name: OsString },

    #[error(
        "the value of variable {} contains a NUL byte, which an environment variable cannot \
         hold; remove the NUL byte from the env file that sets it",
        .name.to_string_lossy()
    )]
    ValueContainsNul { name: OsString },

    #[error(
        "invalid environment variable name {:?}: a name must be non-empty and contain no `=` \
         or NUL byte; remove that variable from the environment",
        .name
    )]
    InvalidName { name: OsString },
}

impl ChildEnvironmentError {
    /// Returns the name of the variable the error is about.
    pub fn name(&self) -> &OsStr {
        match self {
            ChildEnvironmentError::SecretContainsNul { name }
            | ChildEnvironmentError::ValueContainsNul { name }
            | ChildEnvironmentError::InvalidName { name } => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::ffi::OsStringExt;

    fn os(text: &str) -> OsString {
        OsString::from(text)
    }

    fn bytes(raw: &[u8]) -> OsString {
        OsString::from_vec(raw.to_vec())
    }

    fn environment(pairs: &[(&str, &str)]) -> Environment {
        Environment::new(pairs.iter().map(|(n, v)| (os(n), os(v))).collect())
    }

    fn names_and_values(env: &Environment) -> Vec<(String, String)> {
        env.vars()
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn env_file(content: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(content).unwrap();
        file.flush().unwrap();
        file
    }

    fn load(env: &mut Environment, content: &[u8]) -> Result<(), EnvFileError> {
        let file = env_file(content);
        env.load_env_file(file.path())
    }

    fn entries(child: &ChildEnvironment) -> Vec<Vec<u8>> {
        child.entries.iter().map(|entry| entry.to_vec()).collect()
    }

    #[test]
    fn from_process_matches_vars_os() {
        let env = Environment::from_process();
        let expected: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        assert_eq!(env.vars(), expected.as_slice());
    }

    #[test]
    fn get_returns_last_value_byte_exact() {
        let env = Environment::new(vec![
            (os("A"), os("first")),
            (os("a"), os("lower")),
            (bytes(b"\xffX"), os("raw")),
            (os("A"), bytes(b"second\xfe")),
        ]);
        assert_eq!(env.get("A"), Some(bytes(b"second\xfe").as_os_str()));
        assert_eq!(env.get("a"), Some(OsStr::new("lower")));
        assert_eq!(env.get("B"), None);
        assert_eq!(env.get_str("A"), None, "non-UTF-8 value is not a str");
        assert_eq!(env.get_str("a"), Some("lower"));
    }

    #[test]
    fn env_file_overrides_in_place() {
        let mut env = environment(&[("A", "1"), ("B", "2"), ("C", "3")]);
        load(&mut env, b"NEW1=n1\nB=file\nNEW2=n2\n").unwrap();
        assert_eq!(
            names_and_values(&env),
            pairs(&[
                ("A", "1"),
                ("B", "file"),
                ("C", "3"),
                ("NEW1", "n1"),
                ("NEW2", "n2")
            ])
        );
    }

    #[test]
    fn later_env_file_wins() {
        let mut env = environment(&[("A", "inherited")]);
        load(&mut env, b"A=first\nB=first\n").unwrap();
        load(&mut env, b"B=second\nC=second\n").unwrap();
        assert_eq!(
            names_and_values(&env),
            pairs(&[("A", "first"), ("B", "second"), ("C", "second")])
        );
    }

    #[test]
    fn env_file_repeated_name_takes_last() {
        let mut env = Environment::default();
        load(&mut env, b"X=1\nY=2\nX=3\n").unwrap();
        assert_eq!(names_and_values(&env), pairs(&[("X", "3"), ("Y", "2")]));
    }

    #[test]
    fn env_file_overrides_every_duplicate() {
        let mut env = environment(&[("P", "a"), ("Q", "b"), ("P", "c")]);
        load(&mut env, b"P=new\n").unwrap();
        assert_eq!(
            names_and_values(&env),
            pairs(&[("P", "new"), ("Q", "b"), ("P", "new")])
        );
    }

    #[test]
    fn env_file_keeps_non_utf8_inherited_values() {
        let mut env = Environment::new(vec![(bytes(b"R\xff"), bytes(b"\x80\x81"))]);
        load(&mut env, b"S=plain\n").unwrap();
        assert_eq!(env.vars()[0], (bytes(b"R\xff"), bytes(b"\x80\x81")));
        assert_eq!(env.get("S"), Some(OsStr::new("plain")));
    }

    #[test]
    fn env_file_dotenv_syntax() {
        let content = b"# comment\n\
            export EXPORTED=yes\n\
            SINGLE='a b $HOME'\n\
            DOUBLE=\"line1\\nline2 \\\"q\\\"\"\n\
            MULTI=\"first\nsecond\"\n\
            SPACED = value # trailing comment\n\
            EMPTY=\n\
            URL=https://v.vault.azure.net/secrets/s#key\n";
        let mut env = Environment::default();
        load(&mut env, content).unwrap();
        assert_eq!(
            names_and_values(&env),
            pairs(&[
                ("EXPORTED", "yes"),
                ("SINGLE", "a b $HOME"),
                ("DOUBLE", "line1\nline2 \"q\""),
                ("MULTI", "first\nsecond"),
                ("SPACED", "value"),
                ("EMPTY", ""),
                ("URL", "https://v.vault.azure.net/secrets/s#key"),
            ])
        );
    }

    #[test]
    fn env_file_byte_order_mark_ignored() {
        let mut env = Environment::default();
        load(&mut env, b"\xEF\xBB\xBFFIRST=1\n").unwrap();
        assert_eq!(names_and_values(&env), pairs(&[("FIRST", "1")]));
    }

    #[test]
    fn env_file_substitutes_from_process() {
        // PATH is set for every cargo test run; the file's own PATH line does not count,
        // because dotenvy looks in the process environment first.
        let process_path = std::env::var("PATH").expect("tests run with PATH set");
        let mut env = Environment::default();
        load(&mut env, b"PATH=/file/bin\nBRACED=${PATH}\nPLAIN=$PATH\n").unwrap();
        assert_eq!(env.get_str("PATH"), Some("/file/bin"));
        assert_eq!(env.get_str("BRACED"), Some(process_path.as_str()));
        assert_eq!(env.get_str("PLAIN"), Some(process_path.as_str()));
    }

    #[test]
    fn env_file_substitutes_earlier_lines() {
        let mut env = Environment::default();
        let content = b"KVEXECTESTA1=one\n\
            WHOLE=${KVEXECTESTA1}\n\
            STOPS=$KVEXECTESTA1_tail\n\
            QUOTED='$KVEXECTESTA1'\n\
            ESCAPED=\\$KVEXECTESTA1\n\
            UNKNOWN=[${KVEXECTESTNOTSET9}]\n";
        load(&mut env, content).unwrap();
        assert_eq!(env.get_str("WHOLE"), Some("one"));
        assert_eq!(env.get_str("STOPS"), Some("one_tail"));
        assert_eq!(env.get_str("QUOTED"), Some("$KVEXECTESTA1"));
        assert_eq!(env.get_str("ESCAPED"), Some("$KVEXECTESTA1"));
        assert_eq!(env.get_str("UNKNOWN"), Some("[]"));
    }

    #[test]
    fn env_file_cannot_see_earlier_files() {
        let mut env = Environment::default();
        load(&mut env, b"KVEXECTESTB1=from-first-file\n").unwrap();
        load(&mut env, b"COPY=[${KVEXECTESTB1}]\n").unwrap();
        assert_eq!(env.get_str("COPY"), Some("[]"));
    }

    #[test]
    fn env_file_missing_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.env");
        let error = Environment::default().load_env_file(&path).unwrap_err();
        assert!(matches!(error, EnvFileError::NotFound { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("--env-file"), "{message}");
    }

    #[test]
    fn env_file_directory_is_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = Environment::default()
            .load_env_file(dir.path())
            .unwrap_err();
        assert!(matches!(error, EnvFileError::Read { .. }), "{error:?}");
        assert!(error
            .to_string()
            .contains(&dir.path().display().to_string()));
    }

    #[test]
    fn syntax_error_names_line_not_value() {
        let file = env_file(b"GOOD=1\n\n# note\nBAD=canary secret value\nLATER=2\n");
        let mut env = environment(&[("KEEP", "k")]);
        let error = env.load_env_file(file.path()).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(
                error,
                EnvFileError::Syntax {
                    first_line: 4,
                    last_line: 4,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(message.contains("on line 4"), "{message}");
        assert!(
            message.contains(&file.path().display().to_string()),
            "{message}"
        );
        assert!(!message.contains("canary"), "{message}");
        assert!(!format!("{error:?}").contains("canary"));
        assert_eq!(
            names_and_values(&env),
            pairs(&[("KEEP", "k")]),
            "nothing applied"
        );
    }

    #[test]
    fn syntax_error_in_key_names_line() {
        let error = load(&mut Environment::default(), b"A=1\n1BAD=canary\n").unwrap_err();
        assert!(
            matches!(
                error,
                EnvFileError::Syntax {
                    first_line: 2,
                    last_line: 2,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(!error.to_string().contains("canary"));
    }

    #[test]
    fn syntax_error_bad_escape_in_multiline_value() {
        let content = b"A=1\nB=\"canary\nsecret \\q end\"\nC=3\n";
        let error = load(&mut Environment::default(), content).unwrap_err();
        assert!(
            matches!(
                error,
                EnvFileError::Syntax {
                    first_line: 2,
                    last_line: 3,
                    ..
                }
            ),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("lines 2-3"), "{message}");
        assert!(!message.contains("canary"), "{message}");
    }

    #[test]
    fn syntax_error_unclosed_quote() {
        let content = b"A=1\nB=\"canary\nsecret\n";
        let error = load(&mut Environment::default(), content).unwrap_err();
        assert!(
            matches!(
                error,
                EnvFileError::Syntax {
                    first_line: 2,
                    last_line: 3,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(!error.to_string().contains("canary"));
    }

    #[test]
    fn syntax_error_last_line_without_newline() {
        let error = load(&mut Environment::default(), b"A=1\nB='canary").unwrap_err();
        assert!(
            matches!(
                error,
                EnvFileError::Syntax {
                    first_line: 2,
                    last_line: 2,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn env_file_not_utf8_names_line() {
        let error = load(&mut Environment::default(), b"A=1\nB=2\nC=canary\xff\n").unwrap_err();
        assert!(
            matches!(error, EnvFileError::NotUtf8 { line: 3, .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("line 3"), "{message}");
        assert!(!message.contains("canary"), "{message}");
    }

    #[test]
    fn backslash_before_closing_quote_found() {
        for (content, expected) in [
            ("A='C:\\'\nB=1\n", Some(1)),
            ("A=1\nB='x\\'\n", Some(2)),
            ("A='multi\nline\\'\n", Some(2)),
            ("A='C:\\dir\\file'\n", None),
            ("A='even\\\\'\n", None),
            ("A=\"C:\\\\\"\n", None),
            ("A=\"it\\'s\"\n", None),
            ("# A='x\\'\nB=1\n", None),
            ("A=1 # 'x\\'\n", None),
            ("A=plain\\'\n", None),
        ] {
            assert_eq!(backslash_before_closing_quote(content), expected, "{content:?}");
        }
    }

    #[test]
    fn env_file_backslash_before_quote_rejected() {
        let mut env = Environment::default();
        let error = load(&mut env, b"A='C:\\'\nA='D:\\'\n").unwrap_err();
        assert!(matches!(error, EnvFileError::BackslashBeforeQuote { line: 1, .. }), "{error}");
        assert!(env.vars().is_empty());
    }

    #[test]
    fn environment_debug_hides_values() {
        let env = environment(&[("AZURE_CLIENT_SECRET", "canary-secret")]);
        let debug = format!("{env:?}");
        assert!(debug.contains("AZURE_CLIENT_SECRET"), "{debug}");
        assert!(!debug.contains("canary"), "{debug}");
    }

    #[test]
    fn child_replaces_in_place_and_removes() {
        let env = Environment::new(vec![
            (os("A"), os("a")),
            (os("REF"), os("akv://s")),
            (os("AZURE_CLIENT_SECRET"), os("credential")),
            (bytes(b"RAW\xff"), bytes(b"\xfe")),
            (os("PATH"), os("/usr/bin:/bin")),
        ]);
        let child = ChildEnvironment::build(
            &env,
            vec![(1, SecretString::from("plain=text"))],
            &["AZURE_CLIENT_SECRET"],
        )
        .unwrap();
        assert_eq!(
            entries(&child),
            vec![
                b"A=a\0".to_vec(),
                b"REF=plain=text\0".to_vec(),
                b"RAW\xff=\xfe\0".to_vec(),
                b"PATH=/usr/bin:/bin\0".to_vec(),
            ]
        );
        assert_eq!(child.len(), 4);
        assert_eq!(child.path(), Some(OsStr::new("/usr/bin:/bin")));
        assert_eq!(
            child.names().collect::<Vec<_>>(),
            vec![
                OsStr::new("A"),
                OsStr::new("REF"),
                bytes(b"RAW\xff").as_os_str(),
                OsStr::new("PATH")
            ]
        );
    }

    #[test]
    fn child_removes_resolved_variable() {
        let env = environment(&[("AZURE_CLIENT_SECRET", "akv://s"), ("B", "b")]);
        let child = ChildEnvironment::build(
            &env,
            vec![(0, SecretString::from("resolved"))],
            &["AZURE_CLIENT_SECRET"],
        )
        .unwrap();
        assert_eq!(entries(&child), vec![b"B=b\0".to_vec()]);
    }

    #[test]
    fn child_path_absent_or_last() {
        let env = environment(&[("A", "1")]);
        let child = ChildEnvironment::build(&env, Vec::new(), &[]).unwrap();
        assert_eq!(child.path(), None);

        let env = environment(&[("PATH", "/first"), ("PATHX", "/no"), ("PATH", "/second")]);
        let child = ChildEnvironment::build(&env, Vec::new(), &[]).unwrap();
        assert_eq!(child.path(), Some(OsStr::new("/second")));

        let env = environment(&[("PATH", "/first"), ("PATH", "/second")]);
        let child =
            ChildEnvironment::build(&env, vec![(1, SecretString::from("/resolved"))], &[]).unwrap();
        assert_eq!(child.path(), Some(OsStr::new("/resolved")));
    }

    #[test]
    fn child_collects_every_error() {
        let env = Environment::new(vec![
            (os("FIRST"), os("akv://one")),
            (os("OK"), os("fine")),
            (os("SECOND"), os("akv://two")),
            (os("=BAD"), os("x")),
            (bytes(b"NUL\0NAME"), os("x")),
            (os(""), os("x")),
            (os("FROMFILE"), os("a\0b")),
            (os("REMOVED"), os("nul\0ignored")),
        ]);
        let errors = ChildEnvironment::build(
            &env,
            vec![
                (0, SecretString::from("canary\0one")),
                (2, SecretString::from("canary\0two")),
            ],
            &["REMOVED"],
        )
        .unwrap_err();

        assert_eq!(errors.len(), 6, "{errors:?}");
        assert!(
            matches!(&errors[0], ChildEnvironmentError::SecretContainsNul { name } if name == "FIRST")
        );
        assert!(
            matches!(&errors[1], ChildEnvironmentError::SecretContainsNul { name } if name == "SECOND")
        );
        assert!(
            matches!(&errors[2], ChildEnvironmentError::InvalidName { name } if name == "=BAD")
        );
        assert!(matches!(
            &errors[3],
            ChildEnvironmentError::InvalidName { .. }
        ));
        assert_eq!(errors[3].name().as_bytes(), b"NUL\0NAME");
        assert!(
            matches!(&errors[4], ChildEnvironmentError::InvalidName { name } if name.is_empty())
        );
        assert!(
            matches!(&errors[5], ChildEnvironmentError::ValueContainsNul { name } if name == "FROMFILE")
        );

        let first = errors[0].to_string();
        assert!(first.contains("variable FIRST"), "{first}");
        assert!(first.contains("NUL"), "{first}");
        for error in &errors {
            let text = format!("{error} {error:?}");
            assert!(!text.contains("canary"), "{text}");
            assert!(!text.contains('\n'), "one line: {text}");
        }
    }

    #[test]
    fn child_size_counts_nul_terminators() {
        let env = environment(&[("A", "1"), ("LONGER", "value")]);
        let child = ChildEnvironment::build(&env, Vec::new(), &[]).unwrap();
        assert_eq!(child.size_bytes(), "A=1\0".len() + "LONGER=value\0".len());
        assert_eq!(child.largest_entry(), Some((OsStr::new("LONGER"), 13)));

        let empty = ChildEnvironment::build(&Environment::default(), Vec::new(), &[]).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.size_bytes(), 0);
        assert_eq!(empty.largest_entry(), None);
    }

    #[test]
    fn child_debug_hides_values() {
        let env = environment(&[("DB_PASSWORD", "akv://db"), ("PLAIN", "canary-plain")]);
        let child =
            ChildEnvironment::build(&env, vec![(0, SecretString::from("canary-secret"))], &[])
                .unwrap();
        let debug = format!("{child:?}");
        assert!(debug.contains("DB_PASSWORD"), "{debug}");
        assert!(!debug.contains("canary"), "{debug}");
    }

    #[test]
    fn child_c_strs_match_entries() {
        let env = environment(&[("A", "1"), ("B", "")]);
        let child = ChildEnvironment::build(&env, Vec::new(), &[]).unwrap();
        let c_strs: Vec<&[u8]> = child.as_c_strs().iter().map(|c| c.to_bytes()).collect();
        assert_eq!(c_strs, vec![b"A=1".as_slice(), b"B=".as_slice()]);
    }

    #[test]
    #[should_panic(expected = "resolved value for index 5")]
    fn child_index_out_of_range_panics() {
        let env = environment(&[("A", "1")]);
        let _ = ChildEnvironment::build(&env, vec![(5, SecretString::from("x"))], &[]);
    }
}
