//! The binary's own lines on stdout and stderr. `println!` panics when the reader has gone
//! (`mcp-warden audit show | head -1`, a client that closed the stderr pipe it was given);
//! here a reader that went away on stdout ends the program quietly (status 0: the reader
//! took what it wanted, as `audit show` treats it), and a stderr nobody reads is ignored.

use std::io::{ErrorKind, Write};

/// One line on stdout.
pub fn line(args: std::fmt::Arguments<'_>) {
    if let Err(e) = writeln!(std::io::stdout().lock(), "{args}") {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        error_line(format_args!("error: cannot write to stdout: {e}"));
        std::process::exit(1);
    }
}

/// One line on stderr; nothing if nobody reads it.
pub fn error_line(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}
