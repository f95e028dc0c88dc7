//! `dmb completions SHELL` and `dmb man [COMMAND]`: generated from the
//! clap definitions themselves, so they never disagree with `--help`.

use std::io::Write;

use clap::CommandFactory;

use super::{Cli, Outcome};

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for. Install, for example:
    /// bash: `dmb completions bash > ~/.local/share/bash-completion/completions/dmb`;
    /// zsh: `dmb completions zsh > "${fpath[1]}/_dmb"`;
    /// fish: `dmb completions fish > ~/.config/fish/completions/dmb.fish`;
    /// PowerShell: `dmb completions powershell >> $PROFILE`.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// A command's own page (`dmb man build`, `dmb man kernel synthesize`);
    /// without it, the page of dmb.
    pub command: Vec<String>,
}

pub fn completions(args: &CompletionsArgs) -> Outcome {
    let mut command = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, "dmb", &mut out);
    Ok(0)
}

pub fn man(args: &ManArgs) -> Outcome {
    let mut command = Cli::command();
    command.build();
    let mut page = command.clone();
    let mut name = String::from("dmb");
    for word in &args.command {
        page = match page.find_subcommand(word) {
            Some(sub) => sub.clone(),
            None => {
                return Err(crate::Error::Usage(format!(
                    "`{name}` has no command `{word}` (see `{name} --help`)"
                )))
            }
        };
        name = format!("{name}-{word}");
    }
    let page = page.name(name).version(env!("CARGO_PKG_VERSION"));
    let mut text = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut text)
        .map_err(|e| crate::Error::Usage(format!("rendering the man page: {e}")))?;
    let _ = std::io::stdout().lock().write_all(&text);
    Ok(0)
}
