//! `poolpilot man [--dir DIR]`: man pages generated from the clap definition (`clap_mangen`):
//! `poolpilot(1)` on stdout, or one page per subcommand (`poolpilot-status.1`, …) in DIR.
//!
//!   poolpilot man --dir /usr/local/share/man/man1 && mandb

use std::path::PathBuf;

use clap::{Args, CommandFactory};

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `poolpilot.1` and one `poolpilot-<command>.1` per subcommand into DIR.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn run(args: ManArgs) -> anyhow::Result<i32> {
    let command = super::Cli::command();
    match args.dir {
        None => clap_mangen::Man::new(command).render(&mut std::io::stdout())?,
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            clap_mangen::generate_to(command, &dir)?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_lists_every_subcommand() {
        let mut out = Vec::new();
        clap_mangen::Man::new(super::super::Cli::command())
            .render(&mut out)
            .unwrap();
        let page = String::from_utf8(out).unwrap();
        assert!(page.starts_with(".ie"), "{page}");
        assert!(page.contains(".TH poolpilot 1"), "{page}");
        for sub in super::super::Cli::command().get_subcommands() {
            assert!(
                page.contains(sub.get_name()),
                "no `{}` in the page",
                sub.get_name()
            );
        }
    }
}
