//! The other spelling of a path: deny rules see a string as written and, when it could
//! name a path some other way, also as normalized — percent-escapes decoded once,
//! backslashes as slashes, runs of slashes as one, `.` segments dropped. `/etc//shadow`,
//! `/etc/./shadow`, `/etc/%73hadow` and `\etc\shadow` all read `/etc/shadow`. (`..`
//! segments are the `path_traversal` rule's: they are kept, so that rule still sees them.)

use std::borrow::Cow;

/// The normalized spelling of `text`, when it differs from `text`.
pub(super) fn normalized(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let needed = memchr::memchr2(b'%', b'\\', b).is_some()
        || memchr::memmem::find(b, b"//").is_some()
        || memchr::memmem::find(b, b"/.").is_some();
    if !needed {
        return None;
    }
    let decoded = percent_decoded(text);
    let mut out = String::with_capacity(decoded.len());
    let mut segments = decoded.split(['/', '\\']).peekable();
    let mut first = true;
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if !first && (segment.is_empty() || segment == ".") {
            // `a//b`, `a/./b`: nothing between the slashes. A trailing `/` or `/.` still
            // names a directory: keep one slash.
            if last {
                out.push('/');
            }
            continue;
        }
        if !first {
            out.push('/');
        }
        out.push_str(segment);
        first = false;
    }
    (out != text).then_some(out)
}

/// `%XX` escapes decoded once. Escapes that do not make UTF-8 become U+FFFD, so one bad
/// escape cannot keep the others from being decoded (`/etc/%73hadow?x=%ff`).
fn percent_decoded(text: &str) -> Cow<'_, str> {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy()
}

#[cfg(test)]
mod tests {
    use super::normalized;

    #[test]
    fn other_spellings_of_a_path_read_as_the_path() {
        for spelled in [
            "/etc//shadow",
            "/etc/./shadow",
            "//etc///./shadow",
            "/etc/%73hadow",
            "%2Fetc%2Fshadow",
            "\\etc\\shadow",
            "/etc/././/shadow",
        ] {
            assert_eq!(
                normalized(spelled).as_deref(),
                Some("/etc/shadow"),
                "{spelled}"
            );
        }
        assert_eq!(
            normalized("/home/me/.ssh/./").as_deref(),
            Some("/home/me/.ssh/")
        );
        // `..` stays for the traversal rule; plain text and plain paths need nothing.
        assert_eq!(normalized("/a//../b").as_deref(), Some("/a/../b"));
        assert_eq!(normalized("/etc/shadow"), None);
        assert_eq!(normalized("hello world"), None);
        assert_eq!(normalized("100%"), None);
        // An escape that is not UTF-8 does not keep the others from being decoded.
        assert_eq!(
            normalized("/etc/%73hadow?x=%ff").as_deref(),
            Some("/etc/shadow?x=\u{fffd}")
        );
    }
}
