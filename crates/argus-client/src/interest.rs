//! Which events a consumer wants: a set of event kinds, for handlers and
//! event streams alike.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};
use std::str::FromStr;

use argus_core::{DataType, Event};

use crate::handler::MessageKind;

/// A set of event kinds. A handler or an event stream sees the events of
/// its set, in the client's one order; combine kinds with `|`:
///
/// ```
/// use argus_client::Interest;
///
/// let wanted = Interest::PRICE | Interest::GAP | Interest::RESUMED;
/// assert!(wanted.contains(Interest::GAP));
/// assert!(!wanted.contains(Interest::VOLUME));
/// assert_eq!("price,gap,resumed".parse::<Interest>().unwrap(), wanted);
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Interest(u16);

impl Interest {
    /// Nothing.
    pub const NONE: Self = Self(0);
    /// Price messages.
    pub const PRICE: Self = Self(1);
    /// Volume messages.
    pub const VOLUME: Self = Self(1 << 1);
    /// Order-book messages.
    pub const ORDERBOOK: Self = Self(1 << 2);
    /// Every data message.
    pub const DATA: Self = Self(Self::PRICE.0 | Self::VOLUME.0 | Self::ORDERBOOK.0);
    /// State changes ([`Event::StateChanged`]).
    pub const STATE: Self = Self(1 << 3);
    /// Answers to subscribe and unsubscribe ([`Event::Subscribed`],
    /// [`Event::SubscribeFailed`], [`Event::RequestTimedOut`]).
    pub const SUBSCRIPTIONS: Self = Self(1 << 4);
    /// A session resumed ([`Event::Resumed`]).
    pub const RESUMED: Self = Self(1 << 5);
    /// Data lost ([`Event::Gap`]).
    pub const GAP: Self = Self(1 << 6);
    /// A live connection ended ([`Event::Disconnected`]).
    pub const DISCONNECTED: Self = Self(1 << 7);
    /// Failed attempts and scheduled retries ([`Event::AttemptFailed`],
    /// [`Event::Reconnecting`]).
    pub const RECONNECTING: Self = Self(1 << 8);
    /// The client gave up ([`Event::GaveUp`]).
    pub const GAVE_UP: Self = Self(1 << 9);
    /// Problems with what the server sent ([`Event::ProtocolError`]), and
    /// messages of unknown type ([`Event::Ignored`]).
    pub const ERRORS: Self = Self(1 << 10);
    /// A new session began ([`Event::SessionStarted`]).
    pub const SESSION: Self = Self(1 << 11);
    /// Every event.
    pub const ALL: Self = Self((1 << 12) - 1);

    /// The kind of one event.
    pub fn of(event: &Event) -> Self {
        match event {
            Event::Data(data) => data.data_type().into(),
            Event::StateChanged { .. } => Self::STATE,
            Event::Subscribed(_)
            | Event::SubscribeFailed { .. }
            | Event::RequestTimedOut { .. } => Self::SUBSCRIPTIONS,
            Event::SessionStarted { .. } => Self::SESSION,
            Event::Resumed { .. } => Self::RESUMED,
            Event::Gap(_) => Self::GAP,
            Event::Disconnected(_) => Self::DISCONNECTED,
            Event::AttemptFailed { .. } | Event::Reconnecting { .. } => Self::RECONNECTING,
            Event::GaveUp(_) => Self::GAVE_UP,
            _ => Self::ERRORS,
        }
    }

    /// Whether every kind of `other` is in this set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether this set and `other` share a kind.
    pub fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether the set wants `event`.
    pub fn wants(self, event: &Event) -> bool {
        self.intersects(Self::of(event))
    }

    /// The kinds of both sets.
    pub fn and(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    const NAMES: [(&'static str, Self); 12] = [
        ("price", Self::PRICE),
        ("volume", Self::VOLUME),
        ("orderbook", Self::ORDERBOOK),
        ("state", Self::STATE),
        ("subscriptions", Self::SUBSCRIPTIONS),
        ("session", Self::SESSION),
        ("resumed", Self::RESUMED),
        ("gap", Self::GAP),
        ("disconnected", Self::DISCONNECTED),
        ("reconnecting", Self::RECONNECTING),
        ("gave_up", Self::GAVE_UP),
        ("errors", Self::ERRORS),
    ];
}

impl BitOr for Interest {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl BitOrAssign for Interest {
    fn bitor_assign(&mut self, other: Self) {
        self.0 |= other.0;
    }
}

impl From<DataType> for Interest {
    fn from(data_type: DataType) -> Self {
        match data_type {
            DataType::Price => Self::PRICE,
            DataType::Volume => Self::VOLUME,
            DataType::OrderBook => Self::ORDERBOOK,
        }
    }
}

impl From<MessageKind> for Interest {
    fn from(kind: MessageKind) -> Self {
        match kind {
            MessageKind::Price => Self::PRICE,
            MessageKind::Volume => Self::VOLUME,
            MessageKind::OrderBook => Self::ORDERBOOK,
            MessageKind::All => Self::DATA,
        }
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::ALL {
            return f.write_str("Interest(all)");
        }
        let names: Vec<&str> = Self::NAMES
            .iter()
            .filter(|(_, kind)| self.contains(*kind))
            .map(|(name, _)| *name)
            .collect();
        write!(f, "Interest({})", names.join("|"))
    }
}

/// A string that names no event kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an event kind: use price, volume, orderbook, data, state, subscriptions, \
     session, resumed, gap, disconnected, reconnecting, gave_up, errors, or all (alias debug)"
)]
pub struct InvalidInterest(pub String);

impl FromStr for Interest {
    type Err = InvalidInterest;

    /// Kind names separated by commas: `price`, `volume`, `orderbook`,
    /// `data` (all three), the event kinds (`state`, `subscriptions`,
    /// `session`, `resumed`, `gap`, `disconnected`, `reconnecting`, `gave_up`,
    /// `errors`), and `all` or the original SDK's `debug` for everything.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = Self::NONE;
        for name in s.split(',').map(str::trim) {
            set |= match name {
                "data" => Self::DATA,
                "all" | "debug" => Self::ALL,
                other => Self::NAMES
                    .iter()
                    .find(|(n, _)| *n == other)
                    .map(|(_, kind)| *kind)
                    .ok_or_else(|| InvalidInterest(other.to_owned()))?,
            };
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_core::{ConnectionState, Gap, GapCause};

    #[test]
    fn every_event_has_one_kind() {
        let gap = Event::Gap(Gap {
            from: 1,
            to: Some(2),
            cause: GapCause::SeqJump,
        });
        assert_eq!(Interest::of(&gap), Interest::GAP);
        let state = Event::StateChanged {
            from: ConnectionState::Connecting,
            to: ConnectionState::Connected,
        };
        assert!(Interest::ALL.wants(&state));
        assert!(!Interest::DATA.wants(&state));
        assert!(Interest::DATA.contains(Interest::ORDERBOOK));
        assert_eq!(
            format!("{:?}", Interest::PRICE | Interest::GAP),
            "Interest(price|gap)"
        );
    }

    #[test]
    fn names_parse() {
        assert_eq!("debug".parse::<Interest>().unwrap(), Interest::ALL);
        assert_eq!("data".parse::<Interest>().unwrap(), Interest::DATA);
        assert!("ticks".parse::<Interest>().is_err());
        assert_eq!(Interest::from(MessageKind::All), Interest::DATA);
    }
}
