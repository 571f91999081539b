//! `poolpilot completions bash|zsh|fish`: shell completion scripts generated from the clap
//! definition (`clap_complete`), so they never lag behind the commands.
//!
//!   poolpilot completions bash > /etc/bash_completion.d/poolpilot
//!   poolpilot completions zsh  > "${fpath[1]}/_poolpilot"
//!   poolpilot completions fish > ~/.config/fish/completions/poolpilot.fish

use clap::{Args, CommandFactory};
use clap_complete::Shell;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_parser = ["bash", "zsh", "fish"])]
    pub shell: String,
}

pub fn run(args: CompletionsArgs) -> anyhow::Result<i32> {
    let shell: Shell = args.shell.parse().map_err(anyhow::Error::msg)?;
    let mut command = super::Cli::command();
    // Into a buffer first: `generate` panics on a write error, and a closed pipe is none.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "poolpilot", &mut script);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_is_completed_in_every_shell() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            clap_complete::generate(
                shell,
                &mut super::super::Cli::command(),
                "poolpilot",
                &mut out,
            );
            let script = String::from_utf8(out).unwrap();
            for sub in super::super::Cli::command().get_subcommands() {
                assert!(
                    script.contains(sub.get_name()),
                    "{shell}: no `{}` in the script",
                    sub.get_name()
                );
            }
        }
    }
}
