//! Why the plugin answers a call with an error, and the gRPC status each reason is on the wire: one
//! type, mapped in one place. The runtime passes the message on (for a container it refuses, to
//! the kubelet, which shows it in the pod's events), so every message starts with `lllqos: ` and
//! names the container and what failed.

use super::api;

/// A call the plugin does not answer with success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The container's annotations ask for what cannot be (a bad value, a typo, no cpuset for
    /// `lllqos.io/cpus=container`): its creation fails.
    Annotations(String),
    /// The request could not be placed, or not in time: its creation fails.
    NotPlaced(String),
    /// A message the plugin cannot read.
    Unreadable(String),
    /// A method or service the plugin does not have.
    Unknown(String),
}

/// gRPC's status codes (google.rpc.Code) the plugin answers with.
mod code {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const UNAVAILABLE: i32 = 14;
}

impl Refusal {
    /// The status on the wire: the code for the kind of failure, and the message.
    pub fn status(&self) -> api::Status {
        let (code, message) = match self {
            Refusal::Annotations(message) => (code::FAILED_PRECONDITION, message),
            Refusal::NotPlaced(message) => (code::UNAVAILABLE, message),
            Refusal::Unreadable(message) => (code::INVALID_ARGUMENT, message),
            Refusal::Unknown(message) => (code::UNIMPLEMENTED, message),
        };
        api::Status {
            code,
            message: format!("lllqos: {message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_is_its_grpc_code_with_the_message_named_lllqos() {
        let status =
            Refusal::Annotations("container c: lllqos.io/latency=fast: ...".into()).status();
        assert_eq!(status.code, 9);
        assert_eq!(
            status.message,
            "lllqos: container c: lllqos.io/latency=fast: ..."
        );
        assert_eq!(Refusal::NotPlaced(String::new()).status().code, 14);
        assert_eq!(Refusal::Unreadable(String::new()).status().code, 3);
        assert_eq!(Refusal::Unknown(String::new()).status().code, 12);
    }
}
