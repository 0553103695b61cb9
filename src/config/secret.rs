//! Secrets (database password, cluster secret, API token): where each comes from, and a
//! type that never prints its value, so a secret cannot reach a log by accident.

use super::{check::Problem, Config, EnvOverrides};
use std::fmt;
use std::path::Path;

/// What is printed in place of a secret.
pub const MASK: &str = "********";

/// The shortest cluster secret accepted.
pub const MIN_CLUSTER_SECRET_LEN: usize = 16;

/// A secret value. `Debug` and `Display` print a mask; use [`Secret::expose`] to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value itself; call only where it is sent to its consumer.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Where a secret was found, for `wolfscale info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// Inline in the config file.
    Config,
    /// In the file the config names.
    File,
    /// In an environment variable.
    Env,
    /// Not set.
    Unset,
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SecretSource::Config => "config file",
            SecretSource::File => "secret file",
            SecretSource::Env => "environment",
            SecretSource::Unset => "not set",
        })
    }
}

/// Every secret a node uses, resolved once at load time.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// MariaDB password, if any.
    pub db_password: Option<Secret>,
    /// Where the password came from.
    pub db_password_source: SecretSource,
    /// Shared secret every cluster member proves at connect.
    pub cluster_secret: Secret,
    /// Where the cluster secret came from.
    pub cluster_secret_source: SecretSource,
    /// Bearer token for the HTTP API, if auth is on.
    pub api_token: Option<Secret>,
    /// Where the token came from.
    pub api_token_source: SecretSource,
}

/// One secret's three possible sources, in order of precedence: env, file, inline.
struct Sources<'a> {
    key: &'a str,
    file_key: &'a str,
    env_name: &'a str,
    env: Option<&'a String>,
    file: Option<&'a Path>,
    inline: Option<&'a String>,
}

impl Sources<'_> {
    fn resolve(&self, problems: &mut Vec<Problem>) -> (Option<Secret>, SecretSource) {
        if self.file.is_some() && self.inline.is_some() {
            problems.push(Problem::new(
                self.key,
                format!("set either {} or {}, not both", self.key, self.file_key),
            ));
        }
        if let Some(v) = self.env {
            return (Some(Secret::new(v.clone())), SecretSource::Env);
        }
        if let Some(path) = self.file {
            return match read_secret_file(path) {
                Ok(v) => (Some(Secret::new(v)), SecretSource::File),
                Err(reason) => {
                    problems.push(Problem::new(self.file_key, reason));
                    (None, SecretSource::Unset)
                }
            };
        }
        match self.inline {
            Some(v) => (Some(Secret::new(v.clone())), SecretSource::Config),
            None => (None, SecretSource::Unset),
        }
    }

    fn how_to_set(&self) -> String {
        format!(
            "required: set {}, {} or the {} environment variable",
            self.key, self.file_key, self.env_name
        )
    }
}

/// Reads the first line of a secret file.
fn read_secret_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if first.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(first.to_string())
}

/// Finds every secret and checks the rules that apply to them.
pub(super) fn resolve(config: &Config, env: &EnvOverrides) -> Result<Secrets, Vec<Problem>> {
    let mut problems = Vec::new();
    let db = Sources {
        key: "database.password",
        file_key: "database.password_file",
        env_name: "WOLFSCALE_DB_PASSWORD",
        env: env.db_password.as_ref(),
        file: config.database.password_file.as_deref(),
        inline: config.database.password.as_ref(),
    };
    let (db_password, db_password_source) = db.resolve(&mut problems);

    let cluster = Sources {
        key: "cluster.secret",
        file_key: "cluster.secret_file",
        env_name: "WOLFSCALE_CLUSTER_SECRET",
        env: env.cluster_secret.as_ref(),
        file: config.cluster.secret_file.as_deref(),
        inline: config.cluster.secret.as_ref(),
    };
    let (cluster_secret, cluster_secret_source) = cluster.resolve(&mut problems);
    match &cluster_secret {
        None if config.cluster.secret_file.is_none() => {
            problems.push(Problem::new(cluster.key, cluster.how_to_set()))
        }
        Some(s) if s.expose().chars().count() < MIN_CLUSTER_SECRET_LEN => problems.push(Problem::new(
            cluster.key,
            format!("must be at least {MIN_CLUSTER_SECRET_LEN} characters (from {cluster_secret_source})"),
        )),
        _ => {}
    }

    let api = Sources {
        key: "api.token",
        file_key: "api.token_file",
        env_name: "WOLFSCALE_API_TOKEN",
        env: env.api_token.as_ref(),
        file: config.api.token_file.as_deref(),
        inline: config.api.token.as_ref(),
    };
    let (api_token, api_token_source) = api.resolve(&mut problems);
    if let Some(t) = &api_token {
        if t.expose().trim().is_empty() {
            problems.push(Problem::new(api.key, "must not be empty"));
        }
    }

    match cluster_secret {
        Some(cluster_secret) if problems.is_empty() => Ok(Secrets {
            db_password,
            db_password_source,
            cluster_secret,
            cluster_secret_source,
            api_token,
            api_token_source,
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("hunter2-hunter2-hunter2");
        assert_eq!(format!("{s}"), MASK);
        assert_eq!(format!("{s:?}"), MASK);
        assert_eq!(s.expose(), "hunter2-hunter2-hunter2");
    }

    #[test]
    fn secret_file_first_line_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("s");
        std::fs::write(&p, "abc\r\nsecond\n").expect("write");
        assert_eq!(read_secret_file(&p).as_deref(), Ok("abc"));
        std::fs::write(&p, "\n").expect("write");
        assert!(read_secret_file(&p).is_err());
        assert!(read_secret_file(&dir.path().join("missing")).is_err());
    }
}
