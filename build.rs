//! Writes the man page tokenwatch(1) and the bash, zsh and fish completions
//! into `$OUT_DIR`, from the same clap definition the binary parses
//! (`src/cli/args.rs`). `cargo deb` packages them from there (the
//! `target/release/build/tokenwatch-*/out/...` assets in Cargo.toml), so
//! the package needs no step of its own before `cargo deb`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;
use flate2::{Compression, GzBuilder};

#[allow(dead_code)] // the build script only reads the definition, never a parsed value
#[path = "src/cli/args.rs"]
mod args;

fn main() {
    println!("cargo:rerun-if-changed=src/cli/args.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let out = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR for build scripts");
    let out = Path::new(&out);
    if let Err(e) = generate(out) {
        panic!(
            "cannot write the man page and completions into {}: {e}",
            out.display()
        );
    }
}

fn generate(out: &Path) -> io::Result<()> {
    let cmd = args::Cli::command();

    let man_dir = out.join("man");
    fs::create_dir_all(&man_dir)?;
    // Compressed here: cargo-deb compresses the man pages it copies from
    // the source tree, but not files it takes from the build, and Debian
    // policy wants them gzipped (lintian: manpage-not-compressed). No name
    // or time in the gzip header, so a rebuild gives the same bytes.
    let page = File::create(man_dir.join("tokenwatch.1.gz"))?;
    let mut gz = GzBuilder::new().write(page, Compression::best());
    man_page(cmd.clone(), &mut gz)?;
    gz.finish()?.flush()?;

    // The file names are the ones each shell looks up in its vendor folder.
    for (shell, dir, name) in [
        (Shell::Bash, "bash", "tokenwatch"),
        (Shell::Zsh, "zsh", "_tokenwatch"),
        (Shell::Fish, "fish", "tokenwatch.fish"),
    ] {
        let dir = out.join("completions").join(dir);
        fs::create_dir_all(&dir)?;
        let mut file = File::create(dir.join(name))?;
        clap_complete::generate(shell, &mut cmd.clone(), "tokenwatch", &mut file);
        file.flush()?;
    }
    Ok(())
}

/// clap_mangen's sections; then, instead of its list of one page per
/// subcommand (which would be a dozen pages to ship), every subcommand's
/// `--help` text on this page; then what a daemon's page needs and clap
/// cannot know: exit status, environment, files.
fn man_page(mut cmd: clap::Command, w: &mut dyn Write) -> io::Result<()> {
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    writeln!(w, ".SH COMMANDS")?;
    writeln!(w, "The options above go before or after the command.")?;
    subcommands(&cmd, w)?;
    w.write_all(EXTRA_SECTIONS.as_bytes())?;
    man.render_version_section(w)?;
    Ok(())
}

/// Each subcommand, depth first: a heading, then its `--help` text as
/// printed (no fill), which already has the usage line and the options;
/// without the global options, which OPTIONS above lists once.
fn subcommands(cmd: &clap::Command, w: &mut dyn Write) -> io::Result<()> {
    let globals: Vec<clap::Id> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.get_id().clone())
        .collect();
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let name = sub.get_bin_name().unwrap_or(sub.get_name());
        writeln!(w, ".SS \"{}\"", roff_escape(name))?;
        writeln!(w, ".nf")?;
        let mut shown = sub.clone();
        for id in &globals {
            shown = shown.mut_arg(id, |a| a.hide(true));
        }
        let help = shown.render_long_help().to_string();
        for line in help.trim_end().lines() {
            // A line that starts with . or ' would be read as a request.
            let line = roff_escape(line);
            if line.starts_with(['.', '\'']) {
                writeln!(w, "\\&{line}")?;
            } else {
                writeln!(w, "{line}")?;
            }
        }
        writeln!(w, ".fi")?;
        subcommands(sub, w)?;
    }
    Ok(())
}

fn roff_escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

const EXTRA_SECTIONS: &str = r#".SH "EXIT STATUS"
Monitoring plugin convention, for
.B check
above all:
.TP
.B 0
all credentials are fine
.TP
.B 1
warning: a credential is within
.I warning_days
of expiry
.TP
.B 2
critical: a credential is within
.IR critical_days ,
expired or invalid
.TP
.B 3
unknown: invalid configuration, usage error or unreadable input; at start-up
of
.BR "tokenwatch run" ,
a problem a restart cannot fix (systemd does not restart it)
.SH ENVIRONMENT
.TP
.B TOKENWATCH_CONFIG
config file used when
.B \-\-config
is not given
.TP
.B RUST_LOG
log filter when
.B \-\-log\-level
is not given
.SH FILES
.TP
.I /etc/tokenwatch/tokenwatch.toml
the configuration (print the documented example with
.BR "tokenwatch config example" )
.TP
.I /var/lib/tokenwatch
the state: SQLite database, outbox, and the mail of the file transport
.TP
.I /usr/share/doc/tokenwatch/README.md
set-up, configuration reference, operations
.SH "SEE ALSO"
.BR systemctl (1),
.BR journalctl (1)
"#;
