//! Man pages and shell completions, generated from the binaries' own clap
//! definitions so they never drift from `--help`. Each binary has a hidden
//! way to write them (`softphoned --generate-docs DIR`,
//! `softphonectl generate-docs DIR`); `packaging/build-deb.sh` runs both
//! before `cargo deb` packs the results.

use std::path::Path;

use clap::Command;
use clap_complete::Shell;

/// Write `DIR/man/NAME.1` and `DIR/completions/` (bash `NAME`, zsh `_NAME`,
/// fish `NAME.fish`, the names each shell looks for) for `command`.
pub fn generate(mut command: Command, dir: &Path) -> std::io::Result<()> {
    let name = command.get_name().to_string();
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    std::fs::write(man.join(format!("{name}.1")), page)?;
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions)?;
    for (shell, file) in
        [(Shell::Bash, name.clone()), (Shell::Zsh, format!("_{name}")), (Shell::Fish, format!("{name}.fish"))]
    {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, &name, &mut script);
        std::fs::write(completions.join(file), script)?;
    }
    Ok(())
}
