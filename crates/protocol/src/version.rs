//! The protocol version, written `MAJOR.MINOR` on the wire. Peers with the same major version
//! interoperate (minor versions only add optional fields and message types); a major mismatch
//! ends the connection with an error that names both versions.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion {
    pub major: u16,
    pub minor: u16,
}

/// Two peers that cannot talk: the message names both versions so a person can tell which side
/// to upgrade.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "protocol version mismatch: the server speaks Calldock protocol {server}, this client speaks {client}; \
     install a client and server of the same major version"
)]
pub struct VersionMismatch {
    pub client: ProtocolVersion,
    pub server: ProtocolVersion,
}

impl ProtocolVersion {
    /// Checks a client's version against a server's.
    pub fn check(client: ProtocolVersion, server: ProtocolVersion) -> Result<(), VersionMismatch> {
        if client.major == server.major { Ok(()) } else { Err(VersionMismatch { client, server }) }
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for ProtocolVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("protocol version \"{s}\" is not of the form MAJOR.MINOR");
        let (major, minor) = s.split_once('.').ok_or_else(bad)?;
        Ok(Self { major: major.parse().map_err(|_| bad())?, minor: minor.parse().map_err(|_| bad())? })
    }
}

impl Serialize for ProtocolVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ProtocolVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for ProtocolVersion {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ProtocolVersion".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+\\.[0-9]+$",
            "description": "MAJOR.MINOR; peers interoperate when the major versions match."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_names_both_versions() {
        let err = ProtocolVersion::check("2.0".parse().unwrap(), "1.3".parse().unwrap()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("server speaks Calldock protocol 1.3"), "{text}");
        assert!(text.contains("client speaks 2.0"), "{text}");
        assert!(ProtocolVersion::check("1.0".parse().unwrap(), "1.7".parse().unwrap()).is_ok());
    }

    #[test]
    fn malformed_versions_are_refused() {
        assert!("1".parse::<ProtocolVersion>().is_err());
        assert!("a.b".parse::<ProtocolVersion>().is_err());
        assert_eq!("10.2".parse::<ProtocolVersion>().unwrap(), ProtocolVersion { major: 10, minor: 2 });
    }
}
