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

/// Runs in a private mount namespace (`unshare -m`): a tmpfs at `$1` holds the upper
/// layer of an overlay over `/`, `dpkg -i` installs the package `$2` into that overlay
/// through `chroot`, and the installed `wolfscale` runs there. Every change (the binary,
/// the user, the dpkg database) lives in the tmpfs and is gone when the namespace ends:
/// the host's own root is never written. Each `== name` line starts a section of output.
const DPKG_IN_OVERLAY: &str = r#"
set -eu
scratch="$1"; deb="$2"
mount -t tmpfs tmpfs "$scratch"
mkdir "$scratch/upper" "$scratch/work" "$scratch/root"
root="$scratch/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$scratch/upper,workdir=$scratch/work" "$root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
# No systemd to talk to, and nothing of the host's /tmp.
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
cp "$deb" "$root/tmp/wolfscale.deb"
in_root() {
    chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}
echo "== dpkg"
in_root dpkg -i /tmp/wolfscale.deb 2>&1
echo "== status"
in_root dpkg-query -W -f '${Status}\n' wolfscale
echo "== version"
in_root wolfscale --version
echo "== validate"
in_root wolfscale --config /etc/wolfscale/wolfscale.toml validate 2>&1
echo "== init"
in_root wolfscale init --node-id node-9 --output /tmp/node-9.toml 2>&1
in_root wolfscale --config /tmp/node-9.toml validate 2>&1
echo "== example"
in_root wolfscale --config /usr/share/doc/wolfscale/wolfscale.toml.example validate 2>&1
echo "== user"
in_root getent passwd wolfscale
echo "== files"
node="$(in_root hostname -s)"
in_root dpkg -L wolfscale | while read -r f; do
    [ -f "$root$f" ] && in_root stat -c '%n %a %U %G' "$f"
done
in_root stat -c '%n %a %U %G' /etc/wolfscale /etc/wolfscale/wolfscale.toml \
    /var/lib/wolfscale "/var/lib/wolfscale/$node"
echo "== verify"
in_root systemd-analyze verify /usr/lib/systemd/system/wolfscale.service 2>&1
echo "== unit"
in_root cat /usr/lib/systemd/system/wolfscale.service
echo "== enabled"
in_root sh -c 'ls /etc/systemd/system/*.wants 2>/dev/null | grep wolfscale || echo none'
echo "== man"
in_root man -w wolfscale 2>&1 || true
"#;

/// The lines of section `name` of [`DPKG_IN_OVERLAY`]'s output.
fn section<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    out.lines()
        .skip_while(|l| *l != format!("== {name}"))
        .skip(1)
        .take_while(|l| !l.starts_with("== "))
        .collect()
}

/// `scripts/build-deb.sh` packages the binary `cargo test` just built (`PROFILE=dev
/// NO_BUILD=1`, `--fast` compression), and `dpkg -i` installs it into a private overlay of
/// this machine's root: the installed `wolfscale` runs, `init` and `validate` work, and
/// the unit (not enabled), man pages, completions, example config and the postinst's user,
/// config and directories are there with their modes. About 35 s beyond the build (half
/// packaging, half `dpkg -i` with its man-db trigger).
#[test]
fn the_deb_package_installs_a_working_wolfscale() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "installing the .deb into a private overlay needs root (unshare -m, mount, chroot)"
    );
    let started = std::time::Instant::now();
    let out_dir = tempfile::tempdir().expect("tempdir");
    let deb = out_dir.path().join("wolfscale.deb");
    let build = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-deb.sh"))
        .args(["--fast", "--output", deb.to_str().expect("utf-8 path")])
        .env("PROFILE", "dev")
        .env("NO_BUILD", "1")
        .output()
        .expect("run build-deb.sh");
    assert!(
        build.status.success(),
        "build-deb.sh failed: {}{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );
    let printed = String::from_utf8_lossy(&build.stdout);
    assert_eq!(printed.lines().last(), deb.to_str(), "{printed}");
    let built_secs = started.elapsed().as_secs();

    let scratch = tempfile::tempdir().expect("tempdir");
    let run = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            DPKG_IN_OVERLAY,
            "sh",
        ])
        .arg(scratch.path())
        .arg(&deb)
        .output()
        .expect("run unshare");
    let out = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "installing the package failed:\n{out}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(section(&out, "status"), ["install ok installed"], "{out}");
    assert_eq!(
        section(&out, "version"),
        [format!("wolfscale {}", env!("CARGO_PKG_VERSION"))],
        "{out}"
    );
    // `set -e`: each of these exited 0; they also said something.
    for name in ["validate", "init", "example"] {
        assert!(!section(&out, name).is_empty(), "{name}: {out}");
    }

    // The service user: a system account that cannot log in.
    let user = section(&out, "user");
    let fields: Vec<&str> = user.first().expect("a wolfscale user").split(':').collect();
    let uid: u32 = fields[2].parse().expect("uid");
    assert!(uid > 0 && uid < 1000, "a system user: {user:?}");
    assert_eq!(fields[5], "/var/lib/wolfscale", "{user:?}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "{user:?}");

    // path → "mode owner group"
    let files: std::collections::HashMap<&str, String> = section(&out, "files")
        .into_iter()
        .filter_map(|l| {
            let (path, rest) = l.split_once(' ')?;
            Some((path, rest.to_string()))
        })
        .collect();
    let has = |path: &str, want: &str| {
        assert_eq!(
            files.get(path).map(String::as_str),
            Some(want),
            "{path} in {files:#?}"
        )
    };
    has("/usr/bin/wolfscale", "755 root root");
    has(
        "/usr/share/doc/wolfscale/wolfscale.toml.example",
        "644 root root",
    );
    has(
        "/usr/share/bash-completion/completions/wolfscale",
        "644 root root",
    );
    has(
        "/usr/share/zsh/vendor-completions/_wolfscale",
        "644 root root",
    );
    has(
        "/usr/share/fish/vendor_completions.d/wolfscale.fish",
        "644 root root",
    );
    let unit = files
        .keys()
        .find(|p| p.ends_with("systemd/system/wolfscale.service"))
        .unwrap_or_else(|| panic!("no unit in {files:#?}"));
    has(unit, "644 root root");
    let pages: Vec<_> = files
        .keys()
        .filter(|p| p.starts_with("/usr/share/man/man1/wolfscale"))
        .collect();
    assert!(
        pages
            .iter()
            .any(|p| p.starts_with("/usr/share/man/man1/wolfscale.1")),
        "{pages:?}"
    );
    assert!(pages.len() > 5, "one page per subcommand: {pages:?}");
    assert!(
        section(&out, "man")
            .iter()
            .any(|l| l.starts_with("/usr/share/man/man1/wolfscale.1")),
        "man finds the page: {out}"
    );
    // What postinst made: the config (with a secret: root and the group only), the
    // directories, and a data dir for the node named after the host.
    has("/etc/wolfscale", "750 root wolfscale");
    has("/etc/wolfscale/wolfscale.toml", "640 root wolfscale");
    has("/var/lib/wolfscale", "750 wolfscale wolfscale");
    let data = files
        .iter()
        .find(|(p, _)| p.starts_with("/var/lib/wolfscale/"))
        .unwrap_or_else(|| panic!("no data dir in {files:#?}"));
    assert_eq!(data.1, "700 wolfscale wolfscale", "{data:?}");
    // The repository's unit, unchanged, and valid where it is installed (ExecStart's
    // /usr/bin/wolfscale exists there); installed, not enabled or started.
    let dist = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/wolfscale.service"),
    )
    .expect("dist/wolfscale.service");
    assert_eq!(section(&out, "unit"), dist.lines().collect::<Vec<_>>());
    assert_eq!(section(&out, "verify"), Vec::<&str>::new(), "{out}");
    assert_eq!(section(&out, "enabled"), ["none"], "{out}");

    // Nothing reached the host.
    assert!(
        !Path::new("/usr/bin/wolfscale").exists(),
        "the host's /usr/bin/wolfscale"
    );
    let host = Command::new("dpkg-query")
        .args(["-W", "wolfscale"])
        .output()
        .expect("dpkg-query");
    assert!(!host.status.success(), "the host's dpkg knows wolfscale");
    tracing::info!(
        built_secs,
        total_secs = started.elapsed().as_secs(),
        "deb package built and installed"
    );
}
