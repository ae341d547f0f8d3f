//! The .deb as ops install it: packaging/build-deb.sh packs the binaries
//! this `cargo test` built (dev profile: no release build in the test run),
//! `dpkg -i` installs it, and then `softphoned --version`, `man softphoned`,
//! bash completion and the systemd user unit work where the package put
//! them; `dpkg -r` takes it all away again. Needs root (dpkg), like the
//! namespace tests; tests/run.sh runs it.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::require_tools;

const UNIT: &str = "/usr/lib/systemd/user/softphoned.service";

fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(program: &str, args: &[&str]) -> String {
    String::from_utf8(run(program, args).stdout).unwrap()
}

/// Removes the package however the test ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["-r", "softphoned"]).output();
    }
}

#[test]
fn the_deb_installs_the_binaries_man_pages_completions_and_unit() {
    if !require_tools(&["dpkg", "man", "bash", "systemd-analyze"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let deb = dir.path().join("softphoned.deb");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/build-deb.sh");
    let deb_arg = deb.to_str().unwrap();
    run("bash", &[script.to_str().unwrap(), "dev", "--no-build", "--fast", "--output", deb_arg]);

    // The binaries' packed relocations need glibc 2.36's loader: a system
    // with an older one must refuse the package, not install a daemon that cannot start.
    let depends = stdout("dpkg-deb", &["--field", deb_arg, "Depends"]);
    assert!(depends.contains("libc6 (>= 2.36)"), "{depends}");

    let installed = Installed;
    run("dpkg", &["-i", deb_arg]);
    let version = stdout("/usr/bin/softphoned", &["--version"]);
    assert_eq!(version.trim(), concat!("softphoned ", env!("CARGO_PKG_VERSION")));
    assert!(stdout("/usr/bin/softphonectl", &["--version"]).starts_with("softphonectl "));

    let page = stdout("man", &["-P", "cat", "softphoned"]);
    assert!(page.contains("softphoned") && page.contains("--config"), "{page}");
    let page = stdout("man", &["-P", "cat", "softphonectl"]);
    assert!(page.contains("dial"), "{page}");

    for binary in ["softphoned", "softphonectl"] {
        let script = format!("source /usr/share/bash-completion/completions/{binary}; complete -p {binary}");
        let completion = stdout("bash", &["-c", &script]);
        assert!(completion.contains(binary), "{completion}");
    }
    let owners = stdout("dpkg", &["-S", "/usr/share/zsh/vendor-completions/_softphonectl"]);
    assert!(owners.starts_with("softphoned:"), "{owners}");
    let owners = stdout("dpkg", &["-S", "/usr/share/fish/vendor_completions.d/softphoned.fish"]);
    assert!(owners.starts_with("softphoned:"), "{owners}");

    // The unit where the package put it, pointing at the packaged binary,
    // and valid as installed: its ExecStart exists, its man page is there.
    let owners = stdout("dpkg", &["-S", UNIT]);
    assert!(owners.starts_with("softphoned:"), "{owners}");
    let unit = std::fs::read_to_string(UNIT).unwrap();
    assert!(unit.contains("\nExecStart=/usr/bin/softphoned "), "{unit}");
    let runtime = dir.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    let verify = Command::new("systemd-analyze")
        .env("XDG_RUNTIME_DIR", &runtime)
        .args(["verify", "--user", UNIT])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && said.trim().is_empty(), "systemd-analyze verify {UNIT}: {said}");
    for doc in ["README.md", "examples/softphoned.toml"] {
        assert!(Path::new("/usr/share/doc/softphoned").join(doc).is_file(), "{doc} not in /usr/share/doc/softphoned");
    }

    drop(installed);
    assert!(!Path::new("/usr/bin/softphoned").exists() && !Path::new(UNIT).exists(), "dpkg -r left files behind");
}
