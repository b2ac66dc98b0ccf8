//! Exit codes, and which failure leads to which.

use argus_tokio::{ConnectError, GiveUpReason, OpenError};

/// How a command ended; [`Exit::code`] is the process's exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// 0: `--duration` passed, Ctrl-C, or `q`.
    Success,
    /// 1: anything else that went wrong (an I/O error, a server that cannot
    /// bind its port).
    Failure,
    /// 2: a bad flag or setting (the message names it), or a subscription
    /// the server refused.
    Usage,
    /// 3: the server refused the credentials; no retry was made.
    Unauthorized,
    /// 4: the client gave up: reconnect attempts exhausted, or the link was
    /// lost with reconnecting disabled.
    GaveUp,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failure => 1,
            Self::Usage => 2,
            Self::Unauthorized => 3,
            Self::GaveUp => 4,
        }
    }

    /// The exit for a client that gave up for `reason`.
    pub fn from_give_up(reason: &GiveUpReason) -> Self {
        match reason {
            GiveUpReason::Fatal(error) => Self::from_open_error(error),
            _ => Self::GaveUp,
        }
    }

    /// The exit for a failed [`connect`](argus_tokio::WebSocketClient::connect).
    pub fn from_connect_error(error: &ConnectError) -> Self {
        match error {
            ConnectError::GaveUp(reason) => Self::from_give_up(reason),
            _ => Self::Failure,
        }
    }

    fn from_open_error(error: &OpenError) -> Self {
        match error {
            OpenError::Unauthorized { .. } => Self::Unauthorized,
            OpenError::InvalidUrl(_) => Self::Usage,
            _ => Self::GaveUp,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        Self::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let unauthorized = OpenError::Unauthorized { status: 401 };
        assert_eq!(
            Exit::from_connect_error(&ConnectError::GaveUp(GiveUpReason::Fatal(
                unauthorized.clone()
            )))
            .code(),
            3
        );
        assert_eq!(
            Exit::from_give_up(&GiveUpReason::Fatal(unauthorized.clone())).code(),
            3
        );
        let exhausted = ConnectError::GaveUp(GiveUpReason::AttemptsExhausted {
            attempts: 3,
            last: OpenError::Network("refused".into()),
        });
        assert_eq!(Exit::from_connect_error(&exhausted).code(), 4);
        assert_eq!(
            Exit::from_connect_error(&ConnectError::GaveUp(GiveUpReason::Fatal(
                OpenError::InvalidUrl("x".into())
            )))
            .code(),
            2
        );
        assert_eq!(Exit::from_connect_error(&ConnectError::Shutdown).code(), 1);
        assert_eq!(Exit::Success.code(), 0);
    }
}
