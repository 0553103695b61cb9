//! `wolfscale tls init`: a self-signed CA and one certificate per node, for test clusters.
//! Every certificate serves as both server and client (the cluster port is mutual TLS).

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why the certificates could not be written.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A node name cannot be used as a file name.
    #[error("node name {0:?} must be letters, digits, '-', '_' or '.'")]
    BadName(String),
    /// No node or no host was given.
    #[error("{0}")]
    Empty(&'static str),
    /// A file exists already; nothing is overwritten.
    #[error("{} exists; remove it or choose another --dir", .0.display())]
    Exists(PathBuf),
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// Writing a file failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// The files written, for the caller to print.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The CA certificate (`ca.pem`); the CA key goes to `ca-key.pem`.
    pub ca_file: PathBuf,
    /// Per node: (name, certificate file, key file).
    pub nodes: Vec<(String, PathBuf, PathBuf)>,
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n != "."
        && n != ".."
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), GenerateError> {
    use std::os::unix::fs::OpenOptionsExt;
    let werr = |source| GenerateError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(werr)?;
    f.write_all(text.as_bytes()).map_err(werr)?;
    f.sync_all().map_err(werr)
}

/// Writes `ca.pem`, `ca-key.pem` and `<node>.pem` / `<node>-key.pem` for every node into
/// `dir` (created 0700 if missing). Node certificates name every host in `hosts` as a
/// subject alternative name. Key files are 0600. Refuses to overwrite any file.
///
/// # Errors
/// [`GenerateError`]; no file is written if a name is bad or a file exists.
pub fn generate(
    dir: &Path,
    nodes: &[String],
    hosts: &[String],
) -> Result<Generated, GenerateError> {
    use std::os::unix::fs::DirBuilderExt;
    if nodes.is_empty() {
        return Err(GenerateError::Empty("give at least one node name"));
    }
    if hosts.is_empty() {
        return Err(GenerateError::Empty(
            "give at least one host name or address",
        ));
    }
    if let Some(bad) = nodes.iter().find(|n| !valid_name(n)) {
        return Err(GenerateError::BadName(bad.clone()));
    }
    let ca_file = dir.join("ca.pem");
    let ca_key_file = dir.join("ca-key.pem");
    let node_files: Vec<_> = nodes
        .iter()
        .map(|n| {
            (
                n.clone(),
                dir.join(format!("{n}.pem")),
                dir.join(format!("{n}-key.pem")),
            )
        })
        .collect();
    let all = [&ca_file, &ca_key_file]
        .into_iter()
        .chain(node_files.iter().flat_map(|(_, c, k)| [c, k]));
    for p in all {
        if p.exists() {
            return Err(GenerateError::Exists(p.clone()));
        }
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| GenerateError::Write {
            path: dir.to_path_buf(),
            source,
        })?;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "WolfScale test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key)?;
    write_new(&ca_file, &ca.pem(), 0o644)?;
    write_new(&ca_key_file, &ca_key.serialize_pem(), 0o600)?;

    for (name, cert_file, key_file) in &node_files {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(hosts.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, name.as_str());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        write_new(cert_file, &cert.pem(), 0o644)?;
        write_new(key_file, &key.serialize_pem(), 0o600)?;
    }
    Ok(Generated {
        ca_file,
        nodes: node_files,
    })
}
