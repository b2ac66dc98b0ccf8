//! Short excerpts of bad input, for errors: an error event keeps at most a
//! few dozen characters of what the server sent, never the whole of it (a
//! 1 MB symbol must not become a 1 MB error, cloned to every consumer).

/// The most characters of bad input an error keeps.
pub const EXCERPT_CHARS: usize = 48;

/// The most characters of a parser's explanation an error keeps.
pub const DETAIL_CHARS: usize = 160;

/// `text` itself when short, else its first [`EXCERPT_CHARS`] characters
/// and how long the whole was.
pub fn excerpt(text: &str) -> String {
    cut(text, EXCERPT_CHARS)
}

/// `text` itself when at most `chars` characters, else its first `chars`
/// and how long the whole was.
pub fn cut(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}… ({} bytes)", &text[..at], text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_input_is_cut_and_measured() {
        assert_eq!(excerpt("AAPL"), "AAPL");
        let long = "X".repeat(1 << 20);
        let short = excerpt(&long);
        assert!(short.len() < 80, "{short}");
        assert!(short.ends_with("… (1048576 bytes)"), "{short}");
        let wide = "é".repeat(100);
        assert!(excerpt(&wide).starts_with(&"é".repeat(EXCERPT_CHARS)));
    }
}
