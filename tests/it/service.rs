//! `scripts/install-service.sh` in a scratch root (issue 18): the user, files and modes
//! it creates, that a second run changes nothing, that the unit never bootstraps and
//! passes `systemd-analyze verify`, `--config`, `--uninstall`, and bad input.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-service.sh")
}

fn install(root: &Path, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(script())
        .args(["--root", root.to_str().expect("utf-8 path")])
        .args(["--binary", env!("CARGO_BIN_EXE_wolfscale")])
        .args(args)
        .output()
        .expect("run install-service.sh")
}

fn ok(out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "install-service.sh failed: {text}");
    text
}

/// (mode bits, uid, gid) of `path`.
fn meta(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.permissions().mode() & 0o7777, m.uid(), m.gid())
}

/// The wolfscale lines of the scratch root's passwd.
fn users(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join("etc/passwd"))
        .expect("passwd")
        .lines()
        .filter(|l| l.starts_with("wolfscale:"))
        .map(String::from)
        .collect()
}

#[test]
fn installs_user_config_data_dir_binary_and_unit_idempotently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    ok(&install(root, &["--node-id", "node-2"]));

    let user = users(root);
    assert_eq!(user.len(), 1, "{user:?}");
    let fields: Vec<&str> = user[0].split(':').collect();
    let (uid, gid): (u32, u32) = (
        fields[2].parse().expect("uid"),
        fields[3].parse().expect("gid"),
    );
    assert_eq!(fields[6], "/usr/sbin/nologin", "{user:?}");
    assert!(uid > 0 && uid < 1000, "a system user: {uid}");
    let group = std::fs::read_to_string(root.join("etc/group")).expect("group");
    assert!(
        group.contains(&format!("wolfscale:x:{gid}:"))
            || group.contains(&format!("wolfscale:!:{gid}:")),
        "{group}"
    );

    let conf = root.join("etc/wolfscale/wolfscale.toml");
    assert_eq!(meta(&conf), (0o640, 0, gid));
    assert_eq!(meta(&root.join("etc/wolfscale")), (0o750, 0, gid));
    assert_eq!(meta(&root.join("var/lib/wolfscale")), (0o750, uid, gid));
    assert_eq!(
        meta(&root.join("var/lib/wolfscale/node-2")),
        (0o700, uid, gid)
    );
    assert_eq!(meta(&root.join("usr/local/bin/wolfscale")), (0o755, 0, 0));
    let unit_path = root.join("etc/systemd/system/wolfscale.service");
    assert_eq!(meta(&unit_path).0, 0o644);

    // The config is `wolfscale init`'s for this node, and its data dir is the one made.
    let loaded = wolfscale::config::load(&conf, &wolfscale::config::EnvOverrides::default())
        .expect("the installed config is valid");
    assert_eq!(loaded.config.node.id, "node-2");
    assert_eq!(
        loaded.config.data_dir(),
        Path::new("/var/lib/wolfscale/node-2")
    );

    let unit = std::fs::read_to_string(&unit_path).expect("unit");
    let exec: Vec<&str> = unit
        .lines()
        .filter(|l| l.starts_with("ExecStart"))
        .collect();
    assert_eq!(
        exec,
        ["ExecStart=/usr/local/bin/wolfscale --config /etc/wolfscale/wolfscale.toml start"]
    );
    for line in [
        "Type=notify",
        "Restart=on-failure",
        "User=wolfscale",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/wolfscale",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "LimitNOFILE=65536",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "unit lacks {line}:\n{unit}"
        );
    }
    assert!(
        !unit
            .lines()
            .any(|l| !l.starts_with('#') && l.contains("--bootstrap")),
        "the unit must never bootstrap"
    );

    // A second run (even asking to bootstrap, which a scratch root never does) keeps
    // the config and the user and leaves the same files and modes.
    let before = std::fs::read(&conf).expect("config");
    let text = ok(&install(root, &["--node-id", "node-2", "--bootstrap-once"]));
    assert!(text.contains("kept the existing"), "{text}");
    assert!(text.contains("not bootstrapping"), "{text}");
    assert_eq!(std::fs::read(&conf).expect("config"), before);
    assert_eq!(users(root).len(), 1);
    assert_eq!(meta(&conf), (0o640, 0, gid));
    assert_eq!(
        meta(&root.join("var/lib/wolfscale/node-2")),
        (0o700, uid, gid)
    );

    // --config installs the given file in its place, with the same mode.
    let mine = dir.path().join("mine.toml");
    std::fs::write(
        &mine,
        before
            .iter()
            .chain(b"# mine\n")
            .copied()
            .collect::<Vec<u8>>(),
    )
    .expect("write");
    ok(&install(
        root,
        &[
            "--node-id",
            "node-2",
            "--config",
            mine.to_str().expect("utf-8"),
        ],
    ));
    assert!(std::fs::read_to_string(&conf)
        .expect("config")
        .ends_with("# mine\n"));
    assert_eq!(meta(&conf), (0o640, 0, gid));

    // --uninstall removes the unit and the binary, never the config or the data.
    let text = ok(&install(root, &["--uninstall"]));
    assert!(text.contains("kept"), "{text}");
    assert!(!unit_path.exists());
    assert!(!root.join("usr/local/bin/wolfscale").exists());
    assert!(conf.exists() && root.join("var/lib/wolfscale/node-2").is_dir());
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let analyze = Path::new("/usr/bin/systemd-analyze");
    assert!(
        analyze.exists(),
        "systemd-analyze is missing: install it with `apt-get install systemd` (scripts/test.sh does)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    ok(&install(&root, &["--node-id", "node-1"]));
    // Verified as installed, with ExecStart pointing into the scratch root (verify checks
    // that the binary exists and is executable).
    let unit =
        std::fs::read_to_string(root.join("etc/systemd/system/wolfscale.service")).expect("unit");
    let bin = root.join("usr/local/bin/wolfscale");
    let checked = dir.path().join("wolfscale.service");
    std::fs::write(
        &checked,
        unit.replace("/usr/local/bin/wolfscale", bin.to_str().expect("utf-8")),
    )
    .expect("write unit");
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&checked)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed: {stderr}"
    );
    // systemd only warns about a setting it cannot parse: any output is a finding.
    assert!(stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");

    // The check has teeth: a misspelt value is reported.
    std::fs::write(
        &checked,
        std::fs::read_to_string(&checked)
            .expect("unit")
            .replace("ProtectSystem=strict", "ProtectSystem=strikt"),
    )
    .expect("write unit");
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&checked)
        .output()
        .expect("run systemd-analyze");
    assert!(String::from_utf8_lossy(&out.stderr).contains("strikt"));
}

#[test]
fn bad_arguments_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    for (args, says) in [
        (vec![], "--node-id"),
        (vec!["--node-id", "../etc"], "--node-id must be"),
        (
            vec!["--node-id", "n1", "--config", "/nonexistent.toml"],
            "not a file",
        ),
        (vec!["--node-id", "n1", "--frobnicate"], "unknown option"),
    ] {
        let out = install(&root, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!root.join("etc/passwd").exists(), "{args:?} created a user");
    }
}

/// The node tells systemd it is ready once it serves, and that it stops on SIGTERM,
/// through `NOTIFY_SOCKET` (here a datagram socket the test binds, as systemd would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_notifies_systemd_when_it_serves_and_when_it_stops() {
    use crate::support::procs::ProcCluster;
    use crate::support::MariaDb;
    let db = MariaDb::start().await.expect("mariadb");
    let mut c = ProcCluster::on(vec![db]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&path).expect("bind notify socket");
    c.nodes[0].spawn_with_env(
        &["start", "--bootstrap"],
        &[("NOTIFY_SOCKET", path.as_os_str())],
    );
    let mut buf = vec![0u8; 4096];
    let mut recv = async || {
        let n = tokio::time::timeout(std::time::Duration::from_secs(60), socket.recv(&mut buf))
            .await
            .expect("a notification within 60 s")
            .expect("recv");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let starting = recv().await;
    assert!(starting.starts_with("STATUS=starting"), "{starting}");
    let ready = recv().await;
    let lines: Vec<&str> = ready.lines().collect();
    assert_eq!(lines[0], "READY=1", "{ready}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("STATUS=serving as node-1")),
        "{ready}"
    );
    // Ready means serving: the API answers at once.
    c.nodes[0]
        .client()
        .health()
        .await
        .expect("healthy once READY");
    c.nodes[0].signal(libc::SIGTERM);
    assert_eq!(recv().await.trim(), "STOPPING=1");
}
