//! Connection ids and session tokens, from the operating system's random source.

use std::fmt::Write;

fn random<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

/// A session token: 256 random bits as 64 hex digits.
pub(crate) fn session_token() -> Result<String, getrandom::Error> {
    let bytes: [u8; 32] = random()?;
    let mut s = String::with_capacity(64);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    Ok(s)
}

/// A random (version 4) UUID in its usual text form.
pub(crate) fn uuid_v4() -> Result<String, getrandom::Error> {
    let mut b: [u8; 16] = random()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{byte:02x}");
    }
    Ok(s)
}

/// The current time as RFC 3339 UTC with microseconds.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let u = uuid_v4().unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        let t = session_token().unwrap();
        assert_eq!(t.len(), 64);
        assert_ne!(t, session_token().unwrap());
        let now = now_rfc3339();
        assert!(
            now.ends_with('Z') && now.len() == "2026-11-24T09:49:56.123456Z".len(),
            "{now}"
        );
    }
}
