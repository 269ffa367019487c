//! The `--check` report: one row per variable holding a reference, as an aligned table or
//! a JSON array, and never any value.

use crate::config::{Config, Mode};
use crate::diagnose::{self, Context, Diagnosis, EXIT_CHECK_FAILED, EXIT_FAILURE};
use crate::environment::Environment;
use crate::reference::Vault;
use crate::resolve::{self, FetchSettings, Planned, Probe, Session};
use serde::Serialize;
use std::io::Write;

/// Status text of a row that resolved.
const OK: &str = "ok";
/// Status text of a row that failed.
const ERROR: &str = "error";

/// One row of the report. The JSON field names are part of the interface.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Row {
    /// The variable, or `null` for the connection probe when there are no references.
    pub variable: Option<String>,
    /// The reference in canonical form, or the vault URL (or `null`) for the probe.
    pub reference: Option<String>,
    /// `ok` or `error`.
    pub status: &'static str,
    /// Version id of the resolved secret.
    pub version: Option<String>,
    /// Last update of the resolved version, RFC 3339 in UTC.
    pub updated: Option<String>,
    pub content_type: Option<String>,
    /// The failure, with the service's code.
    pub reason: Option<String>,
    /// The fix.
    pub hint: Option<String>,
    /// The credential used, e.g. `client secret of application … in tenant …`.
    pub credential: Option<String>,
}

impl Row {
    fn failed(variable: Option<String>, reference: Option<String>, diagnosis: Diagnosis, credential: Option<String>) -> Row {
        Row {
            variable,
            reference,
            status: ERROR,
            version: None,
            updated: None,
            content_type: None,
            reason: Some(diagnosis.reason),
            hint: diagnosis.hint,
            credential,
        }
    }
}

/// Runs the check and returns the exit status: 0 when every row is ok, 1 when any failed,
/// 125 when the configuration is unusable.
pub fn run(config: Config, env: &Environment) -> i32 {
    let Mode::Check { json } = config.mode else {
        unreachable!("check::run is only called with --check")
    };
    let settings = FetchSettings {
        concurrency: config.concurrency,
        timeout: config.timeout,
    };
    let (planned, malformed) = resolve::plan(env, config.default_vault.as_ref());

    let session = match Session::new(&config.transport, config.credential) {
        Ok(session) => session,
        Err(resolve::SetupError::Credential(error)) => {
            eprintln!("kvexec: {}", diagnose::credential_error(&error));
            return EXIT_FAILURE;
        }
        Err(error) => {
            eprintln!("kvexec: {error}");
            return EXIT_FAILURE;
        }
    };
    let credential = session.credential().describe();
    let context = Context {
        tenant_id: session.credential().tenant_id().map(str::to_string),
    };

    // Rows keep the order of the variables in the environment.
    let mut rows: Vec<(usize, Row)> = malformed
        .iter()
        .map(|entry| {
            let diagnosis = Diagnosis {
                reason: entry.error.to_string(),
                hint: None,
            };
            let variable = Some(entry.variable.to_string_lossy().into_owned());
            (entry.index, Row::failed(variable, None, diagnosis, Some(credential.clone())))
        })
        .collect();
    rows.extend(reference_rows(&session, &planned, settings, &context, &credential));
    rows.sort_by_key(|(index, _)| *index);
    let mut rows: Vec<Row> = rows.into_iter().map(|(_, row)| row).collect();

    if planned.is_empty() && malformed.is_empty() {
        rows.push(probe_row(&session, config.default_vault.as_ref(), settings, &context, &credential));
    }

    let output = if json { render_json(&rows) } else { render_table(&rows, &credential) };
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(output.as_bytes()).and_then(|()| stdout.flush()).is_err() {
        return EXIT_FAILURE;
    }
    if rows.iter().all(|row| row.status == OK) {
        0
    } else {
        EXIT_CHECK_FAILED
    }
}

/// Resolves every planned reference and returns one row per variable, keyed by its index
/// in the environment.
fn reference_rows(
    session: &Session,
    planned: &[Planned],
    settings: FetchSettings,
    context: &Context,
    credential: &str,
) -> Vec<(usize, Row)> {
    if planned.is_empty() {
        return Vec::new();
    }
    let results = session.resolve(planned, settings);
    planned
        .iter()
        .zip(results)
        .map(|(entry, result)| {
            let variable = Some(entry.variable.to_string_lossy().into_owned());
            let reference = Some(entry.reference.to_string());
            let row = match result {
                Ok(resolved) => match value_problem(&entry.variable, &resolved.value) {
                    Some(diagnosis) => Row::failed(variable, reference, diagnosis, Some(credential.to_string())),
                    None => Row {
                        variable,
                        reference,
                        status: OK,
                        version: Some(resolved.bundle.version.clone()),
                        updated: resolved.bundle.updated.and_then(format_time),
                        content_type: resolved.bundle.content_type.clone(),
                        reason: None,
                        hint: None,
                        credential: Some(credential.to_string()),
                    },
                },
                Err(failure) => {
                    let diagnosis = diagnose::failure(&failure, &entry.reference.secret, context);
                    Row::failed(variable, reference, diagnosis, Some(credential.to_string()))
                }
            };
            (entry.index, row)
        })
        .collect()
}

/// Proves the connection when there is no reference: a token, and a probe of the default
/// vault when one is set.
fn probe_row(session: &Session, vault: Option<&Vault>, settings: FetchSettings, context: &Context, credential: &str) -> Row {
    let reference = vault.map(|vault| format!("https://{}/", vault.host()));
    match session.probe(vault, settings) {
        Ok(probe) => Row {
            variable: None,
            reference,
            status: OK,
            version: None,
            updated: None,
            content_type: None,
            reason: Some(match probe {
                Probe::TokenOnly => "token acquired; no references and no default vault, so no vault was contacted".to_string(),
                Probe::VaultReachable => "token acquired; the vault is reachable and lets this identity read secrets".to_string(),
            }),
            hint: None,
            credential: Some(credential.to_string()),
        },
        Err(error) => {
            let diagnosis = diagnose::probe_error(&error, vault, context);
            Row::failed(None, reference, diagnosis, Some(credential.to_string()))
        }
    }
}

/// Checks what a run would reject when it builds the child's environment: a NUL byte,
/// which no environment variable can hold, and a `NAME=VALUE` string over Linux's limit.
fn value_problem(variable: &std::ffi::OsStr, value: &secrecy::SecretString) -> Option<Diagnosis> {
    use secrecy::ExposeSecret;
    let value = value.expose_secret();
    if value.contains('\0') {
        return Some(Diagnosis {
            reason: "the resolved value contains a NUL byte, which an environment variable cannot hold".to_string(),
            hint: Some("store the value without NUL bytes, for example base64-encoded".to_string()),
        });
    }
    let bytes = variable.len() + 1 + value.len();
    if bytes > crate::exec::MAX_ARG_STRLEN {
        return Some(Diagnosis {
            reason: format!(
                "NAME=VALUE is {bytes} bytes, over the Linux limit of {} bytes for one environment string",
                crate::exec::MAX_ARG_STRLEN
            ),
            hint: Some("select a smaller part with #key, or pass the value in a file".to_string()),
        });
    }
    None
}

fn format_time(unix_seconds: i64) -> Option<String> {
    let time = time::OffsetDateTime::from_unix_timestamp(unix_seconds).ok()?;
    time.format(&time::format_description::well_known::Rfc3339).ok()
}

/// Renders the rows as a pretty-printed JSON array followed by a newline.
pub fn render_json(rows: &[Row]) -> String {
    let mut text = serde_json::to_string_pretty(rows).unwrap_or_else(|_| "[]".to_string());
    text.push('\n');
    text
}

/// Renders the rows as aligned columns: VARIABLE, REFERENCE, STATUS, DETAIL.
pub fn render_table(rows: &[Row], credential: &str) -> String {
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|row| {
            let detail = if row.status == OK {
                let mut parts = Vec::new();
                if let Some(version) = &row.version {
                    parts.push(format!("version {version}"));
                }
                if let Some(updated) = &row.updated {
                    parts.push(format!("updated {updated}"));
                }
                if let Some(content_type) = &row.content_type {
                    parts.push(format!("content type {content_type}"));
                }
                if let Some(reason) = &row.reason {
                    parts.push(reason.clone());
                }
                parts.join(", ")
            } else {
                match (&row.reason, &row.hint) {
                    (Some(reason), Some(hint)) => format!("{reason}; {hint}"),
                    (Some(reason), None) => reason.clone(),
                    _ => String::new(),
                }
            };
            [
                diagnose::one_line(row.variable.as_deref().unwrap_or("(connection)")),
                row.reference.clone().unwrap_or_else(|| "-".to_string()),
                row.status.to_string(),
                diagnose::one_line(&detail),
            ]
        })
        .collect();

    let headers = ["VARIABLE", "REFERENCE", "STATUS", "DETAIL"];
    let mut widths = headers.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row.iter()).take(3) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = format!("credential: {credential}\n");
    let mut push_line = |cells: [&str; 4]| {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        text.push_str(line.trim_end());
        text.push('\n');
    };
    push_line(headers);
    for row in &cells {
        push_line([&row[0], &row[1], &row[2], &row[3]]);
    }
    let failed = rows.iter().filter(|row| row.status != OK).count();
    text.push_str(&format!("{} ok, {failed} failed\n", rows.len() - failed));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_row() -> Row {
        Row {
            variable: Some("DB_PASSWORD".into()),
            reference: Some("https://kv.vault.azure.net/secrets/db".into()),
            status: OK,
            version: Some("4387e9f3d6e14c459867679a90fd0f79".into()),
            updated: Some("2026-01-02T03:04:05Z".into()),
            content_type: Some("text/plain".into()),
            reason: None,
            hint: None,
            credential: Some("client secret".into()),
        }
    }

    #[test]
    fn table_aligns_columns() {
        let failed = Row::failed(
            Some("API_KEY".into()),
            Some("https://kv.vault.azure.net/secrets/api".into()),
            Diagnosis {
                reason: "secret 'api' not found in vault kv (404 SecretNotFound)".into(),
                hint: Some("check the name".into()),
            },
            None,
        );
        let table = render_table(&[ok_row(), failed], "client secret");
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "credential: client secret");
        let status_column = lines[1].find("STATUS").unwrap();
        assert_eq!(lines[2].find("ok").unwrap(), status_column);
        assert_eq!(lines[3].find("error").unwrap(), status_column);
        assert!(lines[2].ends_with("version 4387e9f3d6e14c459867679a90fd0f79, updated 2026-01-02T03:04:05Z, content type text/plain"));
        assert!(lines[3].ends_with("(404 SecretNotFound); check the name"));
        assert_eq!(lines[4], "1 ok, 1 failed");
    }

    #[test]
    fn json_uses_stable_field_names() {
        let value: serde_json::Value = serde_json::from_str(&render_json(&[ok_row()])).unwrap();
        let row = &value[0];
        for field in ["variable", "reference", "status", "version", "updated", "content_type", "reason", "hint", "credential"] {
            assert!(row.get(field).is_some(), "missing field {field}");
        }
        assert_eq!(row["status"], "ok");
    }

    #[test]
    fn time_is_rfc3339_utc() {
        assert_eq!(format_time(0).as_deref(), Some("1970-01-01T00:00:00Z"));
    }
}
