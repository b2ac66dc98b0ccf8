//! Names on the bus: the subject of each message, its `Nats-Msg-Id`, and
//! the public name of an upstream session.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use argus_client::argus_core::{DataType, MarketData, SessionToken};

/// The public name of an upstream session, safe to publish.
///
/// The session token is a secret: with the api key it lets anyone take the
/// session over. This name is the first 16 bytes of SHA-256 over a domain
/// tag and the token, in hex: it cannot be turned back into the token, and
/// every process derives the same name from the same session, so a message
/// published again after a restart carries the same id.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionName(String);

impl SessionName {
    /// The name of the session `token` names.
    pub fn of(token: &SessionToken<'_>) -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"argus-relay/session-name/v1\0");
        ctx.update(token.expose().as_bytes());
        let digest = ctx.finish();
        let mut hex = String::with_capacity(32);
        for byte in &digest.as_ref()[..16] {
            hex.push_str(&format!("{byte:02x}"));
        }
        Self(hex)
    }

    /// The name, 32 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionName({})", self.0)
    }
}

/// A symbol as one subject token. NATS splits subjects at `.`, which a
/// symbol may hold (`BRK.B`); it becomes `~`, which no symbol holds, so the
/// mapping is one to one. Every other symbol character (`A–Z 0–9 - / _`)
/// is kept.
pub fn symbol_token(symbol: &str) -> Cow<'_, str> {
    if symbol.contains('.') {
        Cow::Owned(symbol.replace('.', "~"))
    } else {
        Cow::Borrowed(symbol)
    }
}

/// The subject of a data message: `<prefix>.<type>.<SYMBOL>`.
pub fn data_subject(prefix: &str, data: &MarketData) -> String {
    subject(prefix, data.data_type(), data.symbol().as_str())
}

/// The subject of `symbol`'s messages of `data_type`:
/// `<prefix>.<type>.<SYMBOL>`, the symbol as [`symbol_token`] writes it.
pub fn subject(prefix: &str, data_type: DataType, symbol: &str) -> String {
    // Called for every message: pieces pushed into one allocation, not
    // `format!`.
    let symbol = symbol_token(symbol);
    let data_type = data_type.as_str();
    let mut subject = String::with_capacity(prefix.len() + data_type.len() + symbol.len() + 2);
    subject.push_str(prefix);
    subject.push('.');
    subject.push_str(data_type);
    subject.push('.');
    subject.push_str(&symbol);
    subject
}

/// The `Nats-Msg-Id` of the data message `seq` of `session`.
pub fn data_id(session: &SessionName, seq: u64) -> String {
    // Called for every message: one allocation.
    let mut id = String::with_capacity(session.0.len() + 21);
    id.push_str(&session.0);
    id.push(':');
    let _ = write!(id, "{seq}");
    id
}

/// The seq of a data message of `session`, from its `Nats-Msg-Id`; `None`
/// for another session's message or another kind of id.
pub fn seq_of(session: &SessionName, id: &str) -> Option<u64> {
    id.strip_prefix(session.as_str())?
        .strip_prefix(':')?
        .parse()
        .ok()
}

/// The `Nats-Msg-Id` of an event line of `session` (`gap`, `resumed`) at
/// `seq`: the same event published again has the same id.
pub fn event_id(session: &SessionName, event: &str, seq: u64) -> String {
    format!("{session}:{event}:{seq}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_name_is_stable_and_never_the_token() {
        let token = SessionToken::new("b3e0c5d1-secret");
        let name = SessionName::of(&token);
        assert_eq!(name, SessionName::of(&SessionToken::new("b3e0c5d1-secret")));
        assert_ne!(name, SessionName::of(&SessionToken::new("b3e0c5d1-secreT")));
        assert_eq!(name.as_str().len(), 32);
        assert!(!name.as_str().contains("b3e0c5d1"));
        assert!(name.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn ids_are_the_session_name_and_the_seq() {
        let name = SessionName::of(&SessionToken::new("t"));
        for seq in [0, 1, 9, 10, 123_456_789, u64::MAX] {
            assert_eq!(data_id(&name, seq), format!("{name}:{seq}"));
            assert_eq!(seq_of(&name, &data_id(&name, seq)), Some(seq));
        }
        let other = SessionName::of(&SessionToken::new("u"));
        assert_eq!(seq_of(&other, &data_id(&name, 5)), None);
        assert_eq!(seq_of(&name, &event_id(&name, "gap", 5)), None);
    }

    #[test]
    fn a_data_subject_is_prefix_type_and_symbol_token() {
        use argus_client::argus_core::{Price, SubscriptionId, Symbol, Timestamp};
        let price = |symbol| {
            MarketData::Price(Price {
                subscription: SubscriptionId::new("s").unwrap(),
                seq: 1,
                symbol: Symbol::parse(symbol).unwrap(),
                price: 1.5,
                timestamp: Timestamp::parse("2026-01-02T03:04:05.000006Z").unwrap(),
            })
        };
        assert_eq!(data_subject("argus", &price("AAPL")), "argus.price.AAPL");
        assert_eq!(data_subject("a.b", &price("BRK.B")), "a.b.price.BRK~B");
    }

    #[test]
    fn symbols_become_one_subject_token_each() {
        assert_eq!(symbol_token("AAPL"), "AAPL");
        assert_eq!(symbol_token("BRK.B"), "BRK~B");
        assert_ne!(symbol_token("BRK.B"), symbol_token("BRK_B"));
        assert_eq!(symbol_token("EUR/USD"), "EUR/USD");
    }
}
