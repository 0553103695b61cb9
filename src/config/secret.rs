//! Secrets (database password, cluster secret, API tokens): where each comes from, and a
//! type that never prints its value, so a secret cannot reach a log by accident. API
//! tokens are kept as SHA-256 digests ([`TokenHash`]) so that a config may hold the hash
//! (`api.token_sha256`) rather than the token.

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

/// A bearer token as the API checks it: the SHA-256 of its text. Compared in constant
/// time; `Debug` prints no digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of `token`.
    pub fn of(token: &str) -> TokenHash {
        use sha2::Digest;
        TokenHash(sha2::Sha256::digest(token.as_bytes()).into())
    }

    /// Parses 64 hex digits (either case), as `sha256sum` prints them.
    ///
    /// # Errors
    /// A message saying what is wrong with `hex` (never echoing it).
    pub fn from_hex(hex: &str) -> Result<TokenHash, String> {
        let hex = hex.trim();
        if hex.len() != 64 {
            return Err(format!(
                "must be 64 hex digits (the SHA-256 of the token, e.g. from `printf %s TOKEN | sha256sum`), got {} characters",
                hex.len()
            ));
        }
        let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
            match (digit(pair[0]), digit(pair[1])) {
                (Some(hi), Some(lo)) => *byte = hi << 4 | lo,
                _ => return Err("must contain only hex digits 0-9, a-f".into()),
            }
        }
        Ok(TokenHash(out))
    }

    /// Whether `given` is the token: its hash is compared with a fold over every byte, so
    /// the time taken reveals nothing about where the first difference is.
    pub fn matches(&self, given: &str) -> bool {
        let other = TokenHash::of(given);
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
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
    /// The admin token's hash (from the token or `api.token_sha256`), when auth is on.
    pub api_admin_hash: Option<TokenHash>,
    /// The read-only token's hash, when one is set.
    pub api_read_hash: Option<TokenHash>,
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

    let (api_admin_hash, api_read_hash) = api_roles(config, api_token.as_ref(), &mut problems);

    match cluster_secret {
        Some(cluster_secret) if problems.is_empty() => Ok(Secrets {
            db_password,
            db_password_source,
            cluster_secret,
            cluster_secret_source,
            api_token,
            api_token_source,
            api_admin_hash,
            api_read_hash,
        }),
        _ => Err(problems),
    }
}

/// The API's two roles as token hashes, and the rules that tie them to the bind address:
/// a non-loopback API needs a token unless `api.allow_unauthenticated` says otherwise.
fn api_roles(
    config: &Config,
    admin_token: Option<&Secret>,
    problems: &mut Vec<Problem>,
) -> (Option<TokenHash>, Option<TokenHash>) {
    let api = &config.api;
    let hashed = |key: &str, hex: Option<&String>, problems: &mut Vec<Problem>| {
        hex.and_then(|h| match TokenHash::from_hex(h) {
            Ok(t) => Some(t),
            Err(reason) => {
                problems.push(Problem::new(key, reason));
                None
            }
        })
    };
    let admin_sha = hashed("api.token_sha256", api.token_sha256.as_ref(), problems);
    if admin_token.is_some() && api.token_sha256.is_some() {
        problems.push(Problem::new(
            "api.token_sha256",
            "set either api.token (or token_file, or WOLFSCALE_API_TOKEN) or api.token_sha256, not both",
        ));
    }
    let admin = admin_token.map(|t| TokenHash::of(t.expose())).or(admin_sha);

    let read = Sources {
        key: "api.read_token",
        file_key: "api.read_token_file",
        env_name: "",
        env: None,
        file: api.read_token_file.as_deref(),
        inline: api.read_token.as_ref(),
    };
    let (read_token, _) = read.resolve(problems);
    if read_token
        .as_ref()
        .is_some_and(|t| t.expose().trim().is_empty())
    {
        problems.push(Problem::new("api.read_token", "must not be empty"));
    }
    let read_sha = hashed(
        "api.read_token_sha256",
        api.read_token_sha256.as_ref(),
        problems,
    );
    if read_token.is_some() && api.read_token_sha256.is_some() {
        problems.push(Problem::new(
            "api.read_token_sha256",
            "set either api.read_token (or read_token_file) or api.read_token_sha256, not both",
        ));
    }
    let reader = read_token.map(|t| TokenHash::of(t.expose())).or(read_sha);
    if reader.is_some() && admin.is_none() && api.token_sha256.is_none() {
        problems.push(Problem::new(
            "api.read_token",
            "a read-only token needs an admin token too (api.token, token_file, token_sha256 or WOLFSCALE_API_TOKEN): without one every route would be open",
        ));
    }
    if reader.is_some() && reader == admin {
        problems.push(Problem::new(
            "api.read_token",
            "must differ from the admin token",
        ));
    }

    let public = api
        .bind_address
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| !a.ip().is_loopback());
    if api.enabled && public && admin.is_none() && !api.allow_unauthenticated {
        problems.push(Problem::new(
            "api.bind_address",
            format!(
                "{} is not a loopback address and no API token is set: anyone who reaches it could \
                 write and change the cluster. Set api.token (or token_file, token_sha256, \
                 WOLFSCALE_API_TOKEN), bind 127.0.0.1, or set api.allow_unauthenticated = true",
                api.bind_address
            ),
        ));
    }
    (admin, reader)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_parses_hex_and_matches_in_either_case() {
        // printf %s hunter2 | sha256sum
        let hex = "f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7";
        let h = TokenHash::from_hex(hex).expect("valid hex");
        assert_eq!(h, TokenHash::of("hunter2"));
        assert_eq!(TokenHash::from_hex(&hex.to_uppercase()), Ok(h));
        assert!(h.matches("hunter2"));
        assert!(!h.matches("hunter3"));
        assert!(!h.matches(""));
        assert!(TokenHash::from_hex("abc").is_err());
        let bad = format!("{}zz", &hex[..62]);
        let e = TokenHash::from_hex(&bad).unwrap_err();
        assert!(!e.contains(&bad), "{e}");
        assert_eq!(format!("{h:?}"), "TokenHash(..)");
    }

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
