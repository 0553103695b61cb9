//! The manual pages and shell completions of the `wolfscale` command, generated from
//! its clap definition (`wolfscale docs --out DIR`), so they never drift from the flags
//! the binary accepts. The Debian package ships what this writes.

use clap::CommandFactory;
use clap_complete::Shell;
use std::path::{Path, PathBuf};

/// Completion scripts written, one per shell.
const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// Writes `DIR/man/wolfscale.1` (and one page per subcommand, `wolfscale-start.1`, …) and
/// `DIR/completions/` (`wolfscale.bash`, `_wolfscale`, `wolfscale.fish`); returns the
/// files written.
///
/// # Errors
/// The I/O error of a directory or file that cannot be written.
pub fn write(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    clap_mangen::generate_to(super::cli::Cli::command(), &man)?;
    let mut written: Vec<PathBuf> = std::fs::read_dir(&man)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    written.sort();
    for shell in SHELLS {
        let mut cmd = super::cli::Cli::command();
        written.push(clap_complete::generate_to(
            shell,
            &mut cmd,
            "wolfscale",
            &completions,
        )?);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_man_pages_and_completions_naming_every_subcommand() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = super::write(dir.path()).expect("write docs");
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        for want in [
            "wolfscale.1",
            "wolfscale-start.1",
            "wolfscale-join.1",
            "wolfscale-cluster-promote.1",
            "wolfscale.bash",
            "_wolfscale",
            "wolfscale.fish",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        let page = std::fs::read_to_string(dir.path().join("man/wolfscale-join.1")).expect("page");
        assert!(page.contains(".TH") && page.contains("learner"), "{page}");
        let bash =
            std::fs::read_to_string(dir.path().join("completions/wolfscale.bash")).expect("bash");
        assert!(bash.contains("transfer-leader") && bash.contains("--learner"));
    }
}
