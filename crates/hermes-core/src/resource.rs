//! Resources: what the planner compares. A desired [`Resource`] comes from the stack file; an
//! [`ObservedResource`] comes from a provider that looked at the world. Both are addressed by an
//! [`Address`] (`kind.name`) and carry plain attributes, so one diff covers every layer: cloud
//! objects, hosts, host configuration and agents.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Attributes of a resource: ordered, JSON-like, never secret values (secrets appear only as
/// their references, such as `env:OPENAI_API_KEY`).
pub type Attrs = BTreeMap<String, serde_json::Value>;

/// The stack and environment a run works on; the ownership boundary for discovery.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scope {
    /// The stack's `name`.
    pub stack: String,
    /// The environment (`dev`, `staging`, `prod`, ...).
    pub env: String,
}

impl Scope {
    /// A scope for `stack` in `env`.
    pub fn new(stack: impl Into<String>, env: impl Into<String>) -> Self {
        Self {
            stack: stack.into(),
            env: env.into(),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.stack, self.env)
    }
}

/// What sort of thing a resource is. The order of [`Kind::layer`] is the order of creation;
/// deletion runs the other way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// An SSH public key registered with the cloud (Hetzner, EC2 key pair).
    SshKey,
    /// A cloud firewall or security group.
    CloudFirewall,
    /// An IAM role with its instance profile (EC2 hosts reaching Bedrock).
    IamRole,
    /// An IAM user with scoped access keys (hosts outside AWS reaching Bedrock or ECR).
    IamUser,
    /// A container image repository (ECR).
    ImageRepository,
    /// A machine: a cloud server, an EC2 instance, or a local container or VM.
    Host,
    /// Host hardening: admin user, sshd, firewall, fail2ban, upgrades, sysctl.
    HostHardening,
    /// The Docker engine on a host, with its daemon settings.
    DockerEngine,
    /// The TLS reverse proxy on a host.
    ReverseProxy,
    /// One Hermes Agent container with its data, secrets, network and egress proxy.
    Agent,
}

impl Kind {
    /// Every kind, in creation order.
    pub const ALL: [Kind; 10] = [
        Kind::SshKey,
        Kind::CloudFirewall,
        Kind::IamRole,
        Kind::IamUser,
        Kind::ImageRepository,
        Kind::Host,
        Kind::HostHardening,
        Kind::DockerEngine,
        Kind::ReverseProxy,
        Kind::Agent,
    ];

    /// The address prefix of this kind (`host`, `agent`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SshKey => "ssh-key",
            Kind::CloudFirewall => "cloud-firewall",
            Kind::IamRole => "iam-role",
            Kind::IamUser => "iam-user",
            Kind::ImageRepository => "image-repository",
            Kind::Host => "host",
            Kind::HostHardening => "host-hardening",
            Kind::DockerEngine => "docker-engine",
            Kind::ReverseProxy => "reverse-proxy",
            Kind::Agent => "agent",
        }
    }

    /// Creation layer: cloud account objects (0), hosts (1), host setup (2), workloads (3).
    pub fn layer(self) -> u8 {
        match self {
            Kind::SshKey
            | Kind::CloudFirewall
            | Kind::IamRole
            | Kind::IamUser
            | Kind::ImageRepository => 0,
            Kind::Host => 1,
            Kind::HostHardening | Kind::DockerEngine => 2,
            Kind::ReverseProxy | Kind::Agent => 3,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown resource kind `{s}`"))
    }
}

/// `kind.name`, unique within a stack and environment: `host.web-1`, `agent.acme`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    /// The kind.
    pub kind: Kind,
    /// The name, unique among resources of that kind.
    pub name: String,
}

impl Address {
    /// The address of the `kind` resource called `name`.
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind, self.name)
    }
}

impl FromStr for Address {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, name) = s
            .split_once('.')
            .ok_or_else(|| format!("`{s}` is not an address of the form `kind.name`"))?;
        if name.is_empty() {
            return Err(format!("`{s}` has an empty name"));
        }
        Ok(Address::new(kind.parse()?, name))
    }
}

impl Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A resource as the stack wants it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// Where it lives in the stack.
    pub address: Address,
    /// Resources that must exist before this one (its host, its repository, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Address>,
    /// Desired attributes.
    pub attrs: Attrs,
    /// Attributes that cannot change in place: a change to one of them replaces the resource.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub replace_on_change: BTreeSet<String>,
}

impl Resource {
    /// A resource with no dependencies and no attributes yet.
    pub fn new(address: Address) -> Self {
        Self {
            address,
            depends_on: Vec::new(),
            attrs: Attrs::new(),
            replace_on_change: BTreeSet::new(),
        }
    }

    /// Sets an attribute that can change in place.
    #[must_use]
    pub fn attr(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.attrs.insert(key.to_owned(), value.into());
        self
    }

    /// Sets an attribute whose change replaces the resource.
    #[must_use]
    pub fn fixed_attr(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.replace_on_change.insert(key.to_owned());
        self.attr(key, value)
    }

    /// Adds a dependency.
    #[must_use]
    pub fn after(mut self, address: Address) -> Self {
        if !self.depends_on.contains(&address) {
            self.depends_on.push(address);
        }
        self
    }

    /// Digest of the desired attributes (stored as the `spec-digest` label on what is created).
    pub fn spec_digest(&self) -> String {
        crate::digest::of_json(&self.attrs)
    }
}

/// Attribute of an observed host: its SSH host public key (`ssh-ed25519 AAAA...`), as read by
/// the provider through a trusted channel (the local Docker engine, a cloud's console). The engine
/// pins it in the state when the host is created.
pub const HOST_KEY_ATTR: &str = "host-key";

/// Attribute of a `host-hardening` resource: the port its host's sshd listens on once the
/// phase is applied. The engine remembers it in the state, so later runs connect to it.
pub const SSH_PORT_ATTR: &str = "ssh-port";

/// Attribute of an observed agent: the id (`sha256:...`) of the image its container runs, as
/// its host reports it. The engine records each new one in the state's image history, which
/// `rollback` returns along.
pub const IMAGE_ID_ATTR: &str = "image-id";

/// Attribute of a local VM host: the TCP ports its runner forwards to the guest, as `22 2222`
/// (a VM sits behind QEMU's user networking; a container host has an address of its own).
pub const VM_FORWARD_ATTR: &str = "forward-ports";

/// The port sshd listens on when a host is new: every provider's base image uses 22, until
/// `host-hardening` applies the stack's `ssh.port`.
pub const FRESH_HOST_SSH_PORT: u16 = 22;

/// A resource as a provider found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedResource {
    /// The address recorded in its ownership labels.
    pub address: Address,
    /// The provider's own identifier (server id, container id, ...).
    pub id: String,
    /// The attributes the provider can read back. Attributes it cannot read are absent, and the
    /// planner does not compare them.
    pub attrs: Attrs,
    /// Attributes that no longer match what `hermes-infra` last wrote (a hand-edited managed
    /// file, ...), each with a short description. Drift is repaired by an in-place update.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub drift: BTreeMap<String, String>,
}

impl ObservedResource {
    /// An observed resource with no attributes yet.
    pub fn new(address: Address, id: impl Into<String>) -> Self {
        Self {
            address,
            id: id.into(),
            attrs: Attrs::new(),
            drift: BTreeMap::new(),
        }
    }

    /// Sets an attribute.
    #[must_use]
    pub fn attr(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.attrs.insert(key.to_owned(), value.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_round_trips_through_text() {
        let a = Address::new(Kind::ImageRepository, "hermes-agent");
        assert_eq!(a.to_string(), "image-repository.hermes-agent");
        assert_eq!(a.to_string().parse::<Address>(), Ok(a));
    }

    #[test]
    fn address_names_may_contain_dots() {
        let a: Address = "agent.acme.example".parse().unwrap();
        assert_eq!(a.kind, Kind::Agent);
        assert_eq!(a.name, "acme.example");
    }

    #[test]
    fn bad_addresses_are_refused() {
        assert!("host".parse::<Address>().is_err());
        assert!("host.".parse::<Address>().is_err());
        assert!("castle.x".parse::<Address>().is_err());
    }

    #[test]
    fn layers_follow_creation_order() {
        let layers: Vec<u8> = Kind::ALL.iter().map(|k| k.layer()).collect();
        assert!(layers.windows(2).all(|w| w[0] <= w[1]));
    }
}
