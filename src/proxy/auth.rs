//! `mysql_native_password` for the front end's `[[proxy.users]]`. The server keeps
//! SHA1(SHA1(password)) only; the client proves it knows SHA1(password) by sending
//! SHA1(password) XOR SHA1(scramble ‖ SHA1(SHA1(password))). Passwords and their hashes
//! are never logged.

use crate::config::ProxyUser;
use sha1::{Digest, Sha1};

/// A stored password: SHA1(SHA1(password)).
#[derive(Clone, PartialEq, Eq)]
pub struct Stored([u8; 20]);

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stored(<redacted>)")
    }
}

impl Stored {
    /// The stored form of `password`.
    pub fn of(password: &str) -> Stored {
        Stored(sha1(&sha1(password.as_bytes())))
    }

    /// Whether `token` (the client's auth response to `scramble`) proves the password.
    /// An empty token matches only the empty password.
    pub fn verify(&self, scramble: &[u8], token: &[u8]) -> bool {
        if token.is_empty() {
            return *self == Stored::of("");
        }
        if token.len() != 20 {
            return false;
        }
        let mut h = Sha1::new();
        h.update(scramble);
        h.update(self.0);
        let mask: [u8; 20] = h.finalize().into();
        let mut candidate = [0u8; 20];
        for (i, c) in candidate.iter_mut().enumerate() {
            *c = token[i] ^ mask[i];
        }
        // Compared in full, not stopping at the first differing byte.
        sha1(&candidate)
            .iter()
            .zip(self.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

fn sha1(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

/// Reads a `password_sha1` value: 40 hex digits, optionally after MariaDB's `*`.
///
/// # Errors
/// What is wrong with it (never echoing it).
pub fn parse_stored(text: &str) -> Result<Stored, String> {
    let hex = text.strip_prefix('*').unwrap_or(text);
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(
            "must be 40 hex digits: SHA1(SHA1(password)), as MariaDB's PASSWORD() \
                    shows it (with or without the leading `*`)"
                .into(),
        );
    }
    let mut out = [0u8; 20];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(Stored(out))
}

/// The front end's accounts.
#[derive(Debug, Clone, Default)]
pub struct Users(Vec<(String, Stored)>);

impl Users {
    /// From `[[proxy.users]]` (already validated).
    ///
    /// # Errors
    /// A user whose `password_sha1` is not 40 hex digits, or with no password at all.
    pub fn from_config(users: &[ProxyUser]) -> Result<Users, String> {
        let mut out = Vec::new();
        for u in users {
            let stored = match (&u.password, &u.password_sha1) {
                (Some(p), None) => Stored::of(p),
                (None, Some(h)) => parse_stored(h)
                    .map_err(|e| format!("proxy.users `{}`: password_sha1 {e}", u.name))?,
                _ => {
                    return Err(format!(
                        "proxy.users `{}`: set exactly one of password and password_sha1",
                        u.name
                    ))
                }
            };
            out.push((u.name.clone(), stored));
        }
        Ok(Users(out))
    }

    /// Whether there is no account.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `user` logs in with `token` against `scramble`.
    pub fn check(&self, user: &[u8], scramble: &[u8], token: &[u8]) -> bool {
        self.0
            .iter()
            .find(|(name, _)| name.as_bytes() == user)
            .is_some_and(|(_, stored)| stored.verify(scramble, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a client computes from the password and the server's scramble.
    fn client_token(password: &str, scramble: &[u8]) -> Vec<u8> {
        let stage1 = sha1(password.as_bytes());
        let stage2 = sha1(&stage1);
        let mut h = Sha1::new();
        h.update(scramble);
        h.update(stage2);
        let mask: [u8; 20] = h.finalize().into();
        stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect()
    }

    #[test]
    fn the_right_password_logs_in_and_others_do_not() {
        let scramble = b"abcdefghijklmnopqrst";
        let users = Users::from_config(&[ProxyUser {
            name: "app".into(),
            password: Some("s3cret".into()),
            password_sha1: None,
        }])
        .expect("users");
        assert!(users.check(b"app", scramble, &client_token("s3cret", scramble)));
        assert!(!users.check(b"app", scramble, &client_token("wrong", scramble)));
        assert!(!users.check(b"other", scramble, &client_token("s3cret", scramble)));
        assert!(!users.check(b"app", scramble, b""));
        assert!(!users.check(b"app", scramble, b"short"));
    }

    #[test]
    fn the_stored_form_is_mariadbs_password_hash() {
        // MariaDB: SELECT PASSWORD('s3cret') = '*...'
        let stored = Stored::of("s3cret");
        let hex: String = stored.0.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(parse_stored(&format!("*{hex}")).expect("parse"), stored);
        assert_eq!(parse_stored(&hex.to_lowercase()).expect("parse"), stored);
        assert!(parse_stored("*123").is_err());
        assert!(parse_stored(&"g".repeat(40)).is_err());
        let users = Users::from_config(&[ProxyUser {
            name: "app".into(),
            password: None,
            password_sha1: Some(hex),
        }])
        .expect("users");
        let scramble = b"01234567890123456789";
        assert!(users.check(b"app", scramble, &client_token("s3cret", scramble)));
    }

    #[test]
    fn an_empty_password_takes_an_empty_token() {
        let scramble = b"01234567890123456789";
        let stored = Stored::of("");
        assert!(stored.verify(scramble, b""));
        assert!(!Stored::of("x").verify(scramble, b""));
    }

    #[test]
    fn debug_output_hides_the_hash() {
        assert_eq!(format!("{:?}", Stored::of("pw")), "Stored(<redacted>)");
    }
}
