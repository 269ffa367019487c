//! Sets KVEXEC_VERSION for `kvexec --version`: the crate version followed by the git commit
//! it was built from, or the crate version alone when no commit can be found.
//!
//! The first of these that gives a commit wins:
//! 1. the KVEXEC_GIT_COMMIT variable, for builds from a copy without `.git` such as a
//!    container build context;
//! 2. `git rev-parse`, when the crate is the root of a git work tree;
//! 3. the `.cargo_vcs_info.json` that `cargo package` writes into a crates.io package.
//!
//! Uncommitted changes are not marked.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=KVEXEC_GIT_COMMIT");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION");

    let commit = std::env::var("KVEXEC_GIT_COMMIT")
        .ok()
        .filter(|commit| !commit.trim().is_empty())
        .map(|commit| commit.trim().to_string())
        .or_else(|| commit_from_git(&manifest_dir))
        .or_else(|| commit_from_package(&manifest_dir));

    match commit {
        Some(commit) => println!("cargo:rustc-env=KVEXEC_VERSION={version} (commit {commit})"),
        None => println!("cargo:rustc-env=KVEXEC_VERSION={version}"),
    }
}

/// Returns the abbreviated HEAD commit when `dir` is the top of a git work tree. Prints the
/// `rerun-if-changed` lines that make cargo rerun this script when HEAD moves.
fn commit_from_git(dir: &Path) -> Option<String> {
    // A crate unpacked inside some other repository (a vendor directory, say) must not
    // report that repository's commit.
    let top = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    let commit = git(dir, &["rev-parse", "--short=12", "HEAD"])?;

    // A commit, checkout or reset in this work tree changes HEAD or the branch's ref file,
    // and appends to HEAD's reflog (logs/HEAD) when reflogs are on, as git sets them in a
    // work tree by default. Only existing paths are listed, because cargo reruns the
    // script on every build for a missing one.
    let mut watched = Vec::new();
    for path in ["HEAD", "logs/HEAD", "packed-refs"] {
        watched.extend(git(dir, &["rev-parse", "--git-path", path]));
    }
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.extend(git(dir, &["rev-parse", "--git-path", &branch]));
    }
    for path in watched {
        let path = dir.join(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Some(commit)
}

/// Runs git in `dir` and returns its trimmed stdout, or `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).current_dir(dir).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// Reads the commit from `.cargo_vcs_info.json`, which holds `"sha1": "<40 hex digits>"`.
/// Searched as text because a JSON parser here would be a build dependency for one field.
fn commit_from_package(dir: &Path) -> Option<String> {
    let path = dir.join(".cargo_vcs_info.json");
    let text = std::fs::read_to_string(&path).ok()?;
    println!("cargo:rerun-if-changed={}", path.display());
    let after_key = &text[text.find("\"sha1\"")? + "\"sha1\"".len()..];
    let value = after_key.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let sha1 = &value[..value.find('"')?];
    let valid = sha1.len() == 40 && sha1.bytes().all(|byte| byte.is_ascii_hexdigit());
    valid.then(|| sha1[..12].to_string())
}
