//! Image, registry, AWS account pieces, reverse proxy and state backend.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{ImageDigest, ImageRef, Url};
use hermes_core::SecretRef;

/// The Hermes Agent image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
// "PyPI" as it is written: these doc comments are the JSON schema's descriptions.
#[allow(clippy::doc_markdown)]
pub struct Image {
    /// Build the image from `templates/` with this `hermes-agent` version from PyPI.
    #[serde(default = "default_hermes_version")]
    pub hermes_version: String,
    /// Use this upstream image instead of building one; it must be pinned by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<ImageRef>,
    /// Tag to push a built image under (default: the Hermes version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Pin: deploy exactly this digest (set by promotion, or by hand in an overlay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<ImageDigest>,
}

impl Default for Image {
    fn default() -> Self {
        Self {
            hermes_version: default_hermes_version(),
            upstream: None,
            tag: None,
            digest: None,
        }
    }
}

/// An image registry. Exactly one of the tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Registry {
    /// Amazon ECR in the stack's `[aws]` account.
    Ecr(EcrRegistry),
    /// Any registry speaking the OCI distribution API, with basic auth.
    Generic(GenericRegistry),
}

/// Amazon ECR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EcrRegistry {
    /// Repository name.
    pub repository: String,
    /// Scan images on push.
    #[serde(default = "yes")]
    pub scan_on_push: bool,
    /// Make tags immutable.
    #[serde(default = "yes")]
    pub immutable_tags: bool,
    /// Keep this many images; older ones expire (lifecycle policy).
    #[serde(default = "default_keep_images")]
    pub keep_images: u32,
}

/// A generic registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GenericRegistry {
    /// Registry host and optional port, such as `registry.example.com` or `10.0.0.5:5000`.
    pub server: String,
    /// Repository path, such as `team/hermes-agent`.
    pub repository: String,
    /// User name for basic auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password or token (a secret reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretRef>,
    /// The CA certificate (PEM) to trust for a registry whose certificate no public CA signed,
    /// as a reference (`file:ca.pem`); hosts get it in `/etc/docker/certs.d/<server>/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<SecretRef>,
}

impl GenericRegistry {
    /// Where the agent image goes: `server/repository`.
    pub fn agent_repository(&self) -> String {
        format!("{}/{}", self.server, self.repository)
    }

    /// Where the egress proxy image goes: `server/repository-egress-proxy`.
    pub fn egress_repository(&self) -> String {
        format!("{}/{}-egress-proxy", self.server, self.repository)
    }

    /// `repository` (one of the above) with the tag of this machine's `local` reference.
    pub fn reference(repository: &str, local: &str) -> String {
        let tag = local.rsplit_once(':').map_or("latest", |(_, t)| t);
        format!("{repository}:{tag}")
    }
}

/// The AWS account used for ECR and IAM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AwsAccount {
    /// Region for ECR and for signing IAM calls.
    pub region: String,
    /// Expected account id; applying to another account is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

/// Amazon Bedrock access.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Bedrock {
    /// Bedrock region.
    pub region: String,
    /// Model ids the hosts may invoke (`bedrock:InvokeModel` and
    /// `bedrock:InvokeModelWithResponseStream` on these only).
    pub models: Vec<String>,
    /// Hosts that get access (default: every host running a Bedrock agent). EC2 hosts get an
    /// instance role; other hosts get a scoped IAM user key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// TLS mode of the reverse proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Certificates from Let's Encrypt (public DNS names only).
    Acme,
    /// Certificates from a local CA that `hermes-infra` keeps (local and private stacks).
    #[default]
    SelfSigned,
    /// Plain HTTP (only with `listen = "private"`).
    Off,
}

/// Where the proxy listens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyListen {
    /// On the host's public addresses.
    #[default]
    Public,
    /// On the host's private network address only.
    Private,
}

/// The reverse proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Proxy {
    /// TLS mode.
    #[serde(default)]
    pub tls: TlsMode,
    /// Contact address for ACME.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme_email: Option<String>,
    /// The ACME directory (default: Let's Encrypt's); a private ACME server's, such as
    /// step-ca's, for hosts on a private network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme_directory: Option<Url>,
    /// The CA certificate (PEM) to trust when talking to a private ACME directory, as a
    /// reference (`file:ca.pem`, `env:NAME`): it is not a secret, but read the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme_ca: Option<SecretRef>,
    /// Which addresses the proxy listens on.
    #[serde(default)]
    pub listen: ProxyListen,
    /// Sources allowed to reach the proxy (default: anyone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_from: Vec<crate::values::Cidr>,
    /// HTTPS port.
    #[serde(default = "default_https_port")]
    pub port: u16,
}

impl Default for Proxy {
    fn default() -> Self {
        Self {
            tls: TlsMode::default(),
            acme_email: None,
            acme_directory: None,
            acme_ca: None,
            listen: ProxyListen::default(),
            allow_from: Vec::new(),
            port: 443,
        }
    }
}

/// Where the state lives. Exactly one of the tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum State {
    /// A directory on this machine.
    Local(LocalState),
    /// An S3-compatible bucket (for CI), with a lock object.
    S3(S3State),
}

impl Default for State {
    fn default() -> Self {
        State::Local(LocalState::default())
    }
}

/// Local state directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LocalState {
    /// Directory, relative to the stack file.
    #[serde(default = "default_state_dir")]
    pub path: String,
}

impl Default for LocalState {
    fn default() -> Self {
        Self {
            path: default_state_dir(),
        }
    }
}

/// S3-compatible state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct S3State {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Bucket region.
    pub region: String,
    /// Endpoint of an S3-compatible service other than AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Url>,
}

fn yes() -> bool {
    true
}
fn default_hermes_version() -> String {
    "0.19.0".to_owned()
}
fn default_keep_images() -> u32 {
    20
}
fn default_https_port() -> u16 {
    443
}
fn default_state_dir() -> String {
    ".hermes-infra".to_owned()
}
