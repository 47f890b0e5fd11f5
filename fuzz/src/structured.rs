//! A generator of stack files from fuzzer bytes. Each byte decision picks, mostly, a value that
//! the format accepts (so that the loader gets past TOML syntax and serde into the semantic rules
//! and the planner) and, sometimes, a near miss: a misspelled key, a value of the wrong type, a
//! value that breaks one rule, a dangling reference, an overlay for an undeclared environment, or
//! a raw line of fuzzer text.
//!
//! Every decision defaults to the valid choice when the input runs out, so an empty input gives
//! a valid stack and small inputs give small, mostly valid ones.

use std::fmt::Write as _;

use arbitrary::{Result, Unstructured};

/// Builds a stack file's text from `u`.
pub fn stack(u: &mut Unstructured<'_>) -> Result<String> {
    let mut g = Gen {
        u,
        out: String::new(),
        provider: Prov::Local,
        envs: Vec::new(),
        hosts: Vec::new(),
        groups: Vec::new(),
        agents: Vec::new(),
        bedrock_models: Vec::new(),
    };
    g.top()?;
    g.provider()?;
    g.ssh()?;
    g.hosts()?;
    g.hardening()?;
    g.platform()?;
    g.agents()?;
    g.overlays()?;
    g.raw_line()?;
    Ok(g.out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Prov {
    Local,
    Hetzner,
    Aws,
}

struct Gen<'a, 'b> {
    u: &'b mut Unstructured<'a>,
    out: String,
    provider: Prov,
    envs: Vec<String>,
    /// Host names after `count` expansion, as the generator meant them.
    hosts: Vec<String>,
    groups: Vec<String>,
    agents: Vec<String>,
    bedrock_models: Vec<String>,
}

// ----- vocabulary -------------------------------------------------------------------------

const NAMES: &[&str] = &["demo", "acme", "tenants", "solo", "bedrock", "x-1"];
const BAD_NAMES: &[&str] = &[
    "Acme",
    "-x",
    "",
    "a_b",
    "a-name-that-is-far-too-long-to-be-a-stack-name",
    "é",
];
const ENVS: &[&str] = &["prod", "staging", "dev", "qa"];
const GROUPS: &[&str] = &["web", "agents", "main", "db", "edge", "shared", "local"];
const AGENTS: &[&str] = &[
    "acme", "globex", "initech", "alpha", "bravo", "me", "support", "triage",
];
const HETZNER_LOCATIONS: &[&str] = &["fsn1", "nbg1", "hel1", "ash", "hil", "sin"];
const BAD_LOCATIONS: &[&str] = &["fsn", "nbg2", "eu-central-1", ""];
const HETZNER_TYPES: &[&str] = &["cpx22", "cx22", "cax21", "ccx13", "ccx33"];
const AWS_TYPES: &[&str] = &["t3.medium", "t3.small", "t3.large", "m7g.xlarge"];
const LOCAL_SIZES: &[&str] = &["small", "medium", "large"];
const BAD_SIZES: &[&str] = &["huge", "smal", "cpx", "t3", "T3.Medium", ".", "cx22a"];
const AWS_REGIONS: &[&str] = &["eu-central-1", "us-east-1", "ap-southeast-2"];
const BAD_REGIONS: &[&str] = &["eu-central", "EU-central-1", "eu--1", "fsn1"];
const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq1sM5fJ0cUy9c3Gm0mJ8nXH8v7nq4oJbU0wq8m1Z3P ops@laptop";
const BAD_SSH_KEYS: &[&str] = &[
    "ssh-ed25519 AAAA short",
    "-----BEGIN OPENSSH PRIVATE KEY----- abc",
    "ssh-dss AAAAB3NzaC1kc3MAAACBAKs",
    "",
];
const CIDRS: &[&str] = &[
    "203.0.113.7/32",
    "10.20.0.0/16",
    "0.0.0.0/0",
    "::/0",
    "2001:db8::/48",
];
const BAD_CIDRS: &[&str] = &["203.0.113.7", "300.1.1.1/32", "10.0.0.0/33", "any"];
const USERS: &[&str] = &["ops", "hermes-admin", "_deploy"];
const BAD_USERS: &[&str] = &["root", "Ops", "1ops", "a-user-name-that-is-longer-than-32"];
const DURATIONS: &[&str] = &["10m", "1h", "30s", "1d", "1w"];
const BAD_DURATIONS: &[&str] = &["10 minutes", "1y", "m", "99999999999999999999w"];
const TIMES: &[&str] = &["03:30", "04:00", "23:59"];
const BAD_TIMES: &[&str] = &["25:00", "3:30", "é:000", "03:60", "0330"];
const SECRETS: &[&str] = &[
    "env:OPENAI_API_KEY",
    "file:secrets/token",
    "aws-sm:arn:aws:secretsmanager:eu-central-1:1:secret:x",
    "cmd:pass show hermes/tg",
];
const BAD_SECRETS: &[&str] = &["hunter2", "env:", "env:1BAD", "vault:kv/x", "file:  ", ":x"];
const HOSTNAME_SUFFIXES: &[&str] = &[".agents.example.com", ".hermes.localhost"];
const BAD_HOSTNAMES: &[&str] = &[
    "*.example.com",
    "https://api.example.com/v1",
    "api.example.com:443",
    "10.0.0.1",
    "intranet",
    "bad_host.example.com",
    "-x.example.com",
];
const EGRESS: &[&str] = &[
    "api.example.com",
    "*.example.org",
    "pypi.org",
    "github.com",
    "bedrock-runtime.eu-central-1.amazonaws.com",
    "localhost",
];
const URLS: &[&str] = &[
    "https://llm.example.com/v1",
    "http://fake-llm.hermes.test:8080/v1",
    "https://[2001:db8::1]:8443/v1",
];
const BAD_URLS: &[&str] = &[
    "llm.example.com/v1",
    "ftp://llm.example.com",
    "https://user:pw@llm.example.com",
    "https://",
    "https:///v1",
];
const PROVIDERS: &[&str] = &[
    "openai",
    "anthropic",
    "openrouter",
    "nous",
    "bedrock",
    "custom",
];
const MODELS: &[&str] = &[
    "gpt-4.1",
    "claude-sonnet-4-5",
    "fake-gpt",
    "meta-llama/llama-4",
];
const BEDROCK_MODELS: &[&str] = &[
    "anthropic.claude-sonnet-4-20250514-v1:0",
    "anthropic.claude-3-5-haiku-20241022-v1:0",
];
const MEMORY: &[&str] = &["512m", "1g", "2g", "4g", "1048576k"];
const BAD_MEMORY: &[&str] = &["256m", "2 gigs", "2", "99999999999999999g", "g", "0g"];
const ENV_NAMES: &[&str] = &["TZ", "LOG_LEVEL", "FOO_1", "_X"];
const BAD_ENV_NAMES: &[&str] = &["lower", "API_SERVER_KEY", "MY_TOKEN", "1BAD", "HTTPS_PROXY"];
const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const IMAGES: &[&str] = &[
    "docker.io/nousresearch/hermes-agent@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "hermes-agent:0.19.0",
];
const BAD_IMAGES: &[&str] = &["https://x/y", "a@sha256:abc", "", "a b"];
const SYSCTL_KEYS: &[&str] = &[
    "net.ipv4.tcp_syncookies",
    "net.core.somaxconn",
    "vm.swappiness",
    "net.ipv4.ip_forward",
];
const BAD_SYSCTL_KEYS: &[&str] = &["foo", "a..b", "net.ipv4.tcp syncookies", ".x"];
const WRONG_TYPES: &[&str] = &[
    "42",
    "-1",
    "true",
    "1.5",
    "[]",
    "{}",
    "\"x\"",
    "nan",
    "-inf",
    "1979-05-27T07:32:00Z",
    "[1, \"a\"]",
    "{ a = 1 }",
    "18446744073709551615",
    "0x10",
];

// ----- decisions ---------------------------------------------------------------------------

impl Gen<'_, '_> {
    /// A byte; 0 when the input is used up.
    fn byte(&mut self) -> Result<u8> {
        self.u.arbitrary()
    }

    /// True about once in `n` (never when the input is used up).
    fn one_in(&mut self, n: u8) -> Result<bool> {
        Ok(self.byte()? % n == n - 1)
    }

    /// True about `k` times in `n` (always when the input is used up, for `k > 0`).
    fn likely(&mut self, k: u8, n: u8) -> Result<bool> {
        Ok(self.byte()? % n < k)
    }

    fn pick<'v>(&mut self, from: &[&'v str]) -> Result<&'v str> {
        Ok(*self.u.choose(from)?)
    }

    fn number(&mut self, lo: i64, hi: i64) -> Result<i64> {
        self.u.int_in_range(lo..=hi)
    }

    /// A string from the fuzzer.
    fn fuzz_str(&mut self) -> Result<String> {
        let s: &str = self.u.arbitrary()?;
        Ok(s.chars().take(80).collect())
    }

    /// A TOML value for a string key: mostly one of `good`, sometimes one of `bad`, a value of
    /// another type, or a fuzzer string.
    fn s(&mut self, good: &[&str], bad: &[&str]) -> Result<String> {
        Ok(match self.byte()? {
            255 => quote(&self.fuzz_str()?),
            254 => self.pick(WRONG_TYPES)?.to_owned(),
            249..=253 if !bad.is_empty() => quote(self.pick(bad)?),
            _ => quote(self.pick(good)?),
        })
    }

    /// Like [`Gen::s`] but with a computed good value.
    fn s_with(&mut self, good: &str, bad: &[&str]) -> Result<String> {
        self.s(&[good], bad)
    }

    /// An integer value: mostly in `good`, sometimes one of `bad`, or another type.
    fn int(&mut self, good: (i64, i64), bad: &[i64]) -> Result<String> {
        Ok(match self.byte()? {
            255 => self.pick(WRONG_TYPES)?.to_owned(),
            250..=254 if !bad.is_empty() => self.u.choose(bad)?.to_string(),
            _ => self.number(good.0, good.1)?.to_string(),
        })
    }

    fn boolean(&mut self) -> Result<String> {
        Ok(match self.byte()? {
            255 => self.pick(WRONG_TYPES)?.to_owned(),
            b => (b % 2 == 0).to_string(),
        })
    }

    /// An array of 0 to `max` string values drawn like [`Gen::s`], at least `min` of them.
    fn list(&mut self, min: i64, max: i64, good: &[&str], bad: &[&str]) -> Result<String> {
        if self.one_in(64)? {
            return Ok(self.pick(WRONG_TYPES)?.to_owned());
        }
        let n = self.number(min, max)?;
        let mut items = Vec::new();
        for _ in 0..n {
            items.push(self.s(good, bad)?);
        }
        Ok(format!("[{}]", items.join(", ")))
    }

    /// A key as written: mostly `k`, sometimes misspelled.
    fn key(&mut self, k: &str) -> Result<String> {
        let k = if self.one_in(128)? {
            self.misspell(k)?
        } else {
            k.to_owned()
        };
        Ok(bare_or_quoted(&k))
    }

    fn misspell(&mut self, k: &str) -> Result<String> {
        let mut chars: Vec<char> = k.chars().collect();
        if chars.is_empty() {
            return self.fuzz_str();
        }
        let i = self.u.choose_index(chars.len())?;
        match self.byte()? % 7 {
            0 => {
                chars.remove(i);
            }
            1 if i + 1 < chars.len() => chars.swap(i, i + 1),
            2 => chars[i] = char::from(b'a' + self.byte()? % 26),
            3 => return Ok(k.to_ascii_uppercase()),
            4 => return Ok(k.replace('-', "_")),
            5 => chars.insert(i, chars[i]),
            _ => return self.fuzz_str(),
        }
        Ok(chars.into_iter().collect())
    }

    // ----- output --------------------------------------------------------------------------

    fn kv(&mut self, k: &str, v: &str) -> Result<()> {
        let k = self.key(k)?;
        let _ = writeln!(self.out, "{k} = {v}");
        Ok(())
    }

    /// `key = value` when `present` (a coin the caller threw).
    fn opt_kv(&mut self, present: bool, k: &str, v: &str) -> Result<()> {
        if present { self.kv(k, v) } else { Ok(()) }
    }

    fn table(&mut self, path: &[&str]) -> Result<()> {
        let mut parts = Vec::new();
        for p in path {
            parts.push(self.key(p)?);
        }
        let _ = writeln!(self.out, "\n[{}]", parts.join("."));
        Ok(())
    }

    fn array_table(&mut self, path: &[&str]) -> Result<()> {
        let mut parts = Vec::new();
        for p in path {
            parts.push(self.key(p)?);
        }
        let _ = writeln!(self.out, "\n[[{}]]", parts.join("."));
        Ok(())
    }

    // ----- sections ------------------------------------------------------------------------

    fn top(&mut self) -> Result<()> {
        let version = self.int((1, 1), &[0, 2, -1, 4_294_967_296])?;
        self.kv("version", &version)?;
        let name = self.s(NAMES, BAD_NAMES)?;
        self.kv("name", &name)?;
        if self.one_in(3)? {
            let d = self.s(&["A stack", "", "multi\nline"], &[])?;
            self.kv("description", &d)?;
        }
        // Environments: none, or a few distinct ones; `prod` is likely among them.
        let n = self.number(0, 3)?;
        let start = self.u.choose_index(ENVS.len())?;
        for i in 0..n {
            self.envs
                .push(ENVS[(start + i as usize) % ENVS.len()].to_owned());
        }
        if !self.envs.is_empty() || self.one_in(8)? {
            let mut items: Vec<String> = self.envs.iter().map(|e| quote(e)).collect();
            if self.one_in(16)? {
                // A duplicate or a bad name.
                let extra = self.s(&["prod"], BAD_NAMES)?;
                items.push(extra);
            }
            self.kv("environments", &format!("[{}]", items.join(", ")))?;
        }
        if self.one_in(4)? {
            let b = self.boolean()?;
            self.kv("require-env", &b)?;
        }
        if self.one_in(4)? {
            let owned = self.envs.clone();
            let envs: Vec<&str> = owned.iter().map(String::as_str).collect();
            let v = if envs.is_empty() {
                self.s(ENVS, BAD_NAMES)?
            } else {
                self.s(&envs, &["qa", "Prod"])?
            };
            self.kv("default-env", &v)?;
        }
        if self.one_in(128)? {
            // `overlay` must be a table.
            self.kv("overlay", "3")?;
        }
        Ok(())
    }

    fn provider(&mut self) -> Result<()> {
        self.provider = match self.byte()? % 3 {
            0 => Prov::Local,
            1 => Prov::Hetzner,
            _ => Prov::Aws,
        };
        if self.one_in(16)? && self.provider == Prov::Local {
            return Ok(()); // the default provider, unwritten
        }
        self.provider_table(self.provider)?;
        if self.one_in(64)? {
            // Two providers: "exactly one" is the rule.
            let other = if self.provider == Prov::Aws {
                Prov::Local
            } else {
                Prov::Aws
            };
            self.provider_table(other)?;
        }
        Ok(())
    }

    fn provider_table(&mut self, p: Prov) -> Result<()> {
        match p {
            Prov::Local => {
                self.table(&["provider", "local"])?;
                if self.likely(1, 2)? {
                    let v = self.s(&["container", "vm"], &["docker", "VM"])?;
                    self.kv("host-kind", &v)?;
                }
                if self.likely(1, 2)? {
                    let v = self.s(LOCAL_SIZES, BAD_SIZES)?;
                    self.kv("size", &v)?;
                }
            }
            Prov::Hetzner => {
                self.table(&["provider", "hetzner"])?;
                if !self.one_in(64)? {
                    let v = self.s(HETZNER_LOCATIONS, BAD_LOCATIONS)?;
                    self.kv("location", &v)?;
                }
                if !self.one_in(64)? {
                    let v = self.s(HETZNER_TYPES, BAD_SIZES)?;
                    self.kv("server-type", &v)?;
                }
                let v = self.s(&["debian-12", "ubuntu-24.04"], &[])?;
                let c = self.one_in(2)?;
                self.opt_kv(c, "image", &v)?;
                let v = self.s(&["env:HCLOUD_TOKEN"], BAD_SECRETS)?;
                let c = self.one_in(2)?;
                self.opt_kv(c, "token", &v)?;
                let v = self.boolean()?;
                let c = self.one_in(2)?;
                self.opt_kv(c, "cloud-firewall", &v)?;
            }
            Prov::Aws => {
                self.table(&["provider", "aws"])?;
                if !self.one_in(64)? {
                    let v = self.s(AWS_REGIONS, BAD_REGIONS)?;
                    self.kv("region", &v)?;
                }
                if !self.one_in(64)? {
                    let v = self.s(AWS_TYPES, BAD_SIZES)?;
                    self.kv("instance-type", &v)?;
                }
                match self.byte()? {
                    250..=251 => {} // no image
                    252..=253 => {
                        // both
                        self.kv("ami", "\"ami-0123456789abcdef0\"")?;
                        self.kv("image-name", "\"debian-12-amd64-*\"")?;
                    }
                    b if b % 2 == 0 => {
                        let v = self.s(&["debian-12-amd64-*"], &[])?;
                        self.kv("image-name", &v)?;
                    }
                    _ => {
                        let v = self.s(&["ami-0123456789abcdef0"], &["0123", "AMI-1"])?;
                        self.kv("ami", &v)?;
                    }
                }
                let v = self.s(&["subnet-0a1b2c3d4e5f60718"], &[])?;
                let c = self.one_in(2)?;
                self.opt_kv(c, "subnet-id", &v)?;
                let v = self.s(&["vpc-0a1b2c3d4e5f60718"], &[])?;
                let c = self.one_in(2)?;
                self.opt_kv(c, "vpc-id", &v)?;
                let v = self.int((8, 200), &[0, -1, 4_294_967_296])?;
                let c = self.one_in(3)?;
                self.opt_kv(c, "root-volume-gb", &v)?;
                let v = self.boolean()?;
                let c = self.one_in(3)?;
                self.opt_kv(c, "public-ip", &v)?;
            }
        }
        Ok(())
    }

    fn ssh(&mut self) -> Result<()> {
        let cloud = self.provider != Prov::Local;
        if !cloud && self.one_in(2)? {
            return Ok(());
        }
        self.table(&["ssh"])?;
        if self.likely(1, 2)? {
            let v = self.s(USERS, BAD_USERS)?;
            self.kv("admin-user", &v)?;
        }
        if self.one_in(3)? {
            let v = self.int((1, 65_535), &[0, 65_536, -22])?;
            self.kv("port", &v)?;
        }
        if cloud != self.one_in(32)? {
            let v = self.list(1, 2, &[SSH_KEY], BAD_SSH_KEYS)?;
            self.kv("authorized-keys", &v)?;
        }
        if cloud != self.one_in(32)? {
            let v = self.list(1, 3, CIDRS, BAD_CIDRS)?;
            self.kv("allow-from", &v)?;
        }
        Ok(())
    }

    fn hosts(&mut self) -> Result<()> {
        let n = self.number(1, 3)?;
        let start = self.u.choose_index(GROUPS.len())?;
        for i in 0..n {
            let group = GROUPS[(start + i as usize) % GROUPS.len()];
            self.host_group(group)?;
        }
        if self.one_in(32)? && !self.hosts.is_empty() {
            // A host whose name collides with an expanded one (`web-1`) or an existing group.
            let name = self.pick_host()?;
            if !self.groups.contains(&name) {
                self.table(&["hosts", &name])?;
                self.groups.push(name);
            }
        }
        Ok(())
    }

    fn host_group(&mut self, group: &str) -> Result<()> {
        self.table(&["hosts", group])?;
        self.groups.push(group.to_owned());
        if self.likely(1, 2)? {
            let (count, valid) = match self.byte()? {
                250 => ("0".to_owned(), false),
                251 => ("501".to_owned(), false),
                252 => ("-1".to_owned(), false),
                253 => ("4294967296".to_owned(), false),
                254 => ("\"2\"".to_owned(), false),
                b => (i64::from(b % 3 + 1).to_string(), true),
            };
            self.kv("count", &count)?;
            if valid {
                let n: u32 = count.parse().unwrap_or(1);
                for i in 1..=n {
                    self.hosts.push(format!("{group}-{i}"));
                }
            }
        } else {
            self.hosts.push(group.to_owned());
        }
        if self.one_in(3)? {
            let v = self.s(&["agents", "web", "gpu"], BAD_NAMES)?;
            self.kv("role", &v)?;
        }
        if self.one_in(3)? {
            let v = match self.provider {
                Prov::Local => self.s(LOCAL_SIZES, BAD_SIZES)?,
                Prov::Hetzner => self.s(HETZNER_TYPES, BAD_SIZES)?,
                Prov::Aws => self.s(AWS_TYPES, BAD_SIZES)?,
            };
            self.kv("size", &v)?;
        }
        let location = match self.provider {
            Prov::Local => self.one_in(32)?,
            Prov::Hetzner | Prov::Aws => self.one_in(4)?,
        };
        if location {
            let v = match self.provider {
                Prov::Aws => self.s(&["eu-central-1a", "us-east-1b"], &[])?,
                _ => self.s(HETZNER_LOCATIONS, BAD_LOCATIONS)?,
            };
            self.kv("location", &v)?;
        }
        let kind = match self.provider {
            Prov::Local => self.one_in(4)?,
            Prov::Hetzner | Prov::Aws => self.one_in(32)?,
        };
        if kind {
            let v = self.s(&["container", "vm"], &["lxc"])?;
            self.kv("kind", &v)?;
        }
        if self.one_in(4)? {
            let k = if self.one_in(8)? {
                "\"hermes-infra/owner\"".to_owned()
            } else {
                self.key("team")?
            };
            let v = self.s(&["blue", ""], &[])?;
            let _ = writeln!(self.out, "labels = {{ {k} = {v} }}");
        }
        Ok(())
    }

    fn pick_host(&mut self) -> Result<String> {
        if self.hosts.is_empty() || self.one_in(32)? {
            return Ok(self
                .pick(&["web-9", "nowhere", "agents-1", "main"])?
                .to_owned());
        }
        Ok(self.u.choose(&self.hosts)?.clone())
    }

    fn hardening(&mut self) -> Result<()> {
        if self.one_in(3)? {
            self.table(&["hardening", "fail2ban"])?;
            let v = self.boolean()?;
            let c = self.one_in(2)?;
            self.opt_kv(c, "enabled", &v)?;
            let v = self.int((1, 10), &[0, -3])?;
            let c = self.one_in(2)?;
            self.opt_kv(c, "max-retry", &v)?;
            let v = self.s(DURATIONS, BAD_DURATIONS)?;
            let c = self.one_in(2)?;
            self.opt_kv(c, "find-time", &v)?;
            let v = self.s(DURATIONS, BAD_DURATIONS)?;
            let c = self.one_in(2)?;
            self.opt_kv(c, "ban-time", &v)?;
            let v = self.boolean()?;
            let c = self.one_in(3)?;
            self.opt_kv(c, "recidive", &v)?;
            let v = self.list(0, 2, CIDRS, BAD_CIDRS)?;
            let c = self.one_in(3)?;
            self.opt_kv(c, "ignore", &v)?;
        }
        if self.one_in(3)? {
            self.table(&["hardening", "unattended-upgrades"])?;
            let v = self.boolean()?;
            let c = self.one_in(2)?;
            self.opt_kv(c, "enabled", &v)?;
            let v = self.boolean()?;
            let c = self.one_in(2)?;
            self.opt_kv(c, "reboot", &v)?;
            let v = self.s(TIMES, BAD_TIMES)?;
            let c = self.one_in(2)?;
            self.opt_kv(c, "reboot-window", &v)?;
        }
        if self.one_in(4)? {
            self.table(&["hardening", "sysctl"])?;
            let n = self.number(1, 3)?;
            let start = self.u.choose_index(SYSCTL_KEYS.len())?;
            for i in 0..n {
                let key = if self.one_in(12)? {
                    self.pick(BAD_SYSCTL_KEYS)?
                } else {
                    SYSCTL_KEYS[(start + i as usize) % SYSCTL_KEYS.len()]
                };
                // Unquoted, a dotted key nests tables instead of naming one sysctl.
                let key = if self.one_in(16)? {
                    key.to_owned()
                } else {
                    quote(key)
                };
                let v = match self.byte()? % 4 {
                    0 => "0".to_owned(),
                    1 => quote("4096 87380 6291456"),
                    2 => "1".to_owned(),
                    _ => self.int((0, 65_535), &[-1])?,
                };
                let _ = writeln!(self.out, "{key} = {v}");
            }
        }
        if self.one_in(4)? {
            let n = self.number(1, 2)?;
            for _ in 0..n {
                self.array_table(&["hardening", "inbound"])?;
                let port = match self.byte()? {
                    250 => "22".to_owned(),
                    251 => quote("10-5"),
                    252 => "0".to_owned(),
                    253 => quote("x"),
                    254 => quote("0-10"),
                    b if b % 2 == 0 => self.number(1024, 65_535)?.to_string(),
                    _ => quote("8000-8010"),
                };
                self.kv("port", &port)?;
                let v = self.s(&["tcp", "udp"], &["icmp"])?;
                let c = self.one_in(2)?;
                self.opt_kv(c, "protocol", &v)?;
                let v = self.list(0, 2, CIDRS, BAD_CIDRS)?;
                let c = !self.one_in(16)?;
                self.opt_kv(c, "from", &v)?;
                let v = self.s(&["metrics"], &[])?;
                let c = self.one_in(3)?;
                self.opt_kv(c, "description", &v)?;
            }
        }
        Ok(())
    }

    fn platform(&mut self) -> Result<()> {
        if self.one_in(4)? {
            self.table(&["image"])?;
            let v = self.s(&["0.19.0", "1.0.0"], &[])?;
            let c = self.one_in(2)?;
            self.opt_kv(c, "hermes-version", &v)?;
            let v = self.s(IMAGES, BAD_IMAGES)?;
            let c = self.one_in(3)?;
            self.opt_kv(c, "upstream", &v)?;
            let v = self.s(&["v1", "latest"], &[])?;
            let c = self.one_in(3)?;
            self.opt_kv(c, "tag", &v)?;
            let v = self.s(&[DIGEST], &["sha256:abc", "md5:00"])?;
            let c = self.one_in(3)?;
            self.opt_kv(c, "digest", &v)?;
        }
        let ecr = match self.byte()? % 6 {
            0 => {
                self.table(&["registry", "ecr"])?;
                let v = self.s(&["hermes-agent"], &[])?;
                self.kv("repository", &v)?;
                let v = self.boolean()?;
                let c = self.one_in(2)?;
                self.opt_kv(c, "scan-on-push", &v)?;
                let v = self.boolean()?;
                let c = self.one_in(2)?;
                self.opt_kv(c, "immutable-tags", &v)?;
                let v = self.int((1, 100), &[-1])?;
                let c = self.one_in(2)?;
                self.opt_kv(c, "keep-images", &v)?;
                true
            }
            1 => {
                self.table(&["registry", "generic"])?;
                let v = self.s(&["registry.example.com", "10.0.0.5:5000"], &[])?;
                self.kv("server", &v)?;
                let v = self.s(&["team/hermes-agent"], &[])?;
                self.kv("repository", &v)?;
                let v = self.s(&["ci"], &[])?;
                let c = self.one_in(2)?;
                self.opt_kv(c, "username", &v)?;
                let v = self.s(SECRETS, BAD_SECRETS)?;
                let c = self.one_in(2)?;
                self.opt_kv(c, "password", &v)?;
                false
            }
            _ => false,
        };
        if ecr != self.one_in(16)? {
            self.table(&["aws"])?;
            let v = self.s(AWS_REGIONS, BAD_REGIONS)?;
            self.kv("region", &v)?;
            let v = self.s(&["123456789012"], &[])?;
            let c = self.one_in(2)?;
            self.opt_kv(c, "account-id", &v)?;
        }
        // Bedrock: decided here, the model list grows as agents pick Bedrock models.
        if self.one_in(3)? {
            self.bedrock_models = BEDROCK_MODELS.iter().map(|m| (*m).to_owned()).collect();
            if self.one_in(8)? {
                self.bedrock_models.pop();
            }
            self.table(&["bedrock"])?;
            let v = self.s(AWS_REGIONS, BAD_REGIONS)?;
            self.kv("region", &v)?;
            let models: Vec<String> = self.bedrock_models.iter().map(|m| quote(m)).collect();
            self.kv("models", &format!("[{}]", models.join(", ")))?;
            if self.one_in(3)? {
                let h = self.pick_host()?;
                self.kv("hosts", &format!("[{}]", quote(&h)))?;
            }
        }
        if self.likely(1, 2)? {
            self.table(&["proxy"])?;
            let tls = match self.provider {
                Prov::Local => self.s(&["self-signed"], &["acme", "off", "letsencrypt"])?,
                _ => self.s(&["self-signed", "acme"], &["off", "letsencrypt"])?,
            };
            self.kv("tls", &tls)?;
            if tls.contains("acme") != self.one_in(16)? {
                let v = self.s(&["ops@example.com"], &[])?;
                self.kv("acme-email", &v)?;
            }
            let listen = if tls.contains("off") {
                self.s(&["private"], &["public"])?
            } else {
                self.s(&["public", "private"], &["internal"])?
            };
            self.kv("listen", &listen)?;
            let v = self.list(0, 2, CIDRS, BAD_CIDRS)?;
            let c = self.one_in(3)?;
            self.opt_kv(c, "allow-from", &v)?;
            let v = self.int((1, 65_535), &[0, 70_000])?;
            let c = self.one_in(3)?;
            self.opt_kv(c, "port", &v)?;
        }
        match self.byte()? % 4 {
            0 => {
                self.table(&["state", "local"])?;
                let v = self.s(&[".hermes-infra", "/var/lib/x"], &[])?;
                self.kv("path", &v)?;
            }
            1 => {
                self.table(&["state", "s3"])?;
                let v = self.s(&["acme-state"], &[])?;
                self.kv("bucket", &v)?;
                let v = self.s(AWS_REGIONS, &[])?;
                self.kv("region", &v)?;
                let v = self.s(&["hermes/"], &[])?;
                let c = self.one_in(2)?;
                self.opt_kv(c, "prefix", &v)?;
                let v = self.s(URLS, BAD_URLS)?;
                let c = self.one_in(3)?;
                self.opt_kv(c, "endpoint", &v)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn agents(&mut self) -> Result<()> {
        if self.one_in(16)? {
            return Ok(());
        }
        let n = self.number(1, 5)?;
        let start = self.u.choose_index(AGENTS.len())?;
        for i in 0..n {
            let name = AGENTS[(start + i as usize) % AGENTS.len()];
            self.agent(name)?;
            self.agents.push(name.to_owned());
        }
        Ok(())
    }

    fn agent(&mut self, name: &str) -> Result<()> {
        // Keys of `[agents.<name>]` itself first, sub-tables after them.
        self.table(&["agents", name])?;
        if !self.one_in(64)? {
            let host = self.pick_host()?;
            let host = self.s_with(&host, &[])?;
            self.kv("host", &host)?;
        }
        if self.one_in(8)? {
            let v = self.s(IMAGES, BAD_IMAGES)?;
            self.kv("image", &v)?;
        }
        if self.likely(2, 3)? {
            let suffix = self.pick(HOSTNAME_SUFFIXES)?;
            let v = match self.byte()? {
                // The name of another agent: a duplicate when that agent has the same suffix.
                250 | 251 => {
                    let other = self.pick(AGENTS)?;
                    quote(&format!("{other}{suffix}"))
                }
                252 | 253 => quote(self.pick(BAD_HOSTNAMES)?),
                254 => self.pick(WRONG_TYPES)?.to_owned(),
                255 => quote(&self.fuzz_str()?),
                _ => quote(&format!("{name}{suffix}")),
            };
            self.kv("hostname", &v)?;
        }
        let inline_egress = self.one_in(4)?;
        if inline_egress {
            let v = self.list(1, 3, EGRESS, BAD_HOSTNAMES)?;
            let k = self.key("allow")?;
            let egress = self.key("egress")?;
            let _ = writeln!(self.out, "{egress} = {{ {k} = {v} }}");
        }
        let inline_limits = self.one_in(4)?;
        if inline_limits {
            let k = self.s(&["1g"], BAD_MEMORY)?;
            let limits = self.key("limits")?;
            let memory = self.key("memory")?;
            let _ = writeln!(self.out, "{limits} = {{ {memory} = {k} }}");
        }
        let model = self.model_fields()?;
        let inline_model = self.one_in(2)?;
        if let (true, Some(fields)) = (inline_model, &model) {
            let k = self.key("model")?;
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            let _ = writeln!(self.out, "{k} = {{ {} }}", body.join(", "));
        }
        let inline_env = self.one_in(4)?;
        if inline_env {
            let k = self.key("env")?;
            let v = self.s(&["Europe/Berlin"], &[])?;
            let _ = writeln!(self.out, "{k} = {{ TZ = {v} }}");
        }
        if !inline_limits {
            self.limits(name)?;
        }
        if let (false, Some(fields)) = (inline_model, model) {
            self.table(&["agents", name, "model"])?;
            for (k, v) in fields {
                let _ = writeln!(self.out, "{k} = {v}");
            }
        }
        if self.one_in(4)?
            && let Some(fields) = self.model_fields()?
        {
            self.table(&["agents", name, "fallback-model"])?;
            for (k, v) in fields {
                let _ = writeln!(self.out, "{k} = {v}");
            }
        }
        if self.one_in(3)? {
            self.messaging(name)?;
        }
        if !inline_egress && self.one_in(4)? {
            self.table(&["agents", name, "egress"])?;
            let v = self.list(0, 4, EGRESS, BAD_HOSTNAMES)?;
            self.kv("allow", &v)?;
        }
        if self.one_in(5)? {
            self.dashboard(name)?;
        }
        if self.one_in(4)? {
            self.table(&["agents", name, "secrets"])?;
            let k = if self.one_in(12)? {
                self.pick(BAD_ENV_NAMES)?
            } else {
                "GITHUB_TOKEN"
            };
            let v = self.s(SECRETS, BAD_SECRETS)?;
            let _ = writeln!(self.out, "{} = {v}", bare_or_quoted(k));
        }
        if !inline_env && self.one_in(4)? {
            self.table(&["agents", name, "env"])?;
            let n = self.number(1, 3)?;
            let start = self.u.choose_index(ENV_NAMES.len())?;
            for i in 0..n {
                let k = if self.one_in(12)? {
                    self.pick(BAD_ENV_NAMES)?
                } else {
                    ENV_NAMES[(start + i as usize) % ENV_NAMES.len()]
                };
                let v = self.s(&["Europe/Berlin", "info", ""], &[])?;
                let _ = writeln!(self.out, "{} = {v}", bare_or_quoted(k));
            }
        }
        Ok(())
    }

    fn limits(&mut self, name: &str) -> Result<()> {
        if self.one_in(2)? {
            return Ok(());
        }
        self.table(&["agents", name, "limits"])?;
        let v = self.s(MEMORY, BAD_MEMORY)?;
        let c = self.likely(2, 3)?;
        self.opt_kv(c, "memory", &v)?;
        let v = match self.byte()? {
            250 => "0.0".to_owned(),
            251 => "nan".to_owned(),
            252 => "inf".to_owned(),
            253 => "64.5".to_owned(),
            254 => "-1.0".to_owned(),
            255 => self.pick(WRONG_TYPES)?.to_owned(),
            b => format!("{}.{}", b % 8 + 1, b % 10),
        };
        let c = self.likely(2, 3)?;
        self.opt_kv(c, "cpus", &v)?;
        let v = self.int((32, 65_536), &[0, 31, 65_537, -1])?;
        let c = self.likely(2, 3)?;
        self.opt_kv(c, "pids", &v)?;
        Ok(())
    }

    /// The keys of a model table, consistent with its provider most of the time; `None`: leave
    /// the model out.
    fn model_fields(&mut self) -> Result<Option<Vec<(String, String)>>> {
        if self.one_in(64)? {
            return Ok(None);
        }
        let bedrock_ok = !self.bedrock_models.is_empty();
        let provider = if bedrock_ok && self.one_in(2)? {
            "bedrock"
        } else {
            self.pick(PROVIDERS)?
        };
        let mut fields: Vec<(String, String)> = Vec::new();
        let p = if self.one_in(48)? {
            self.s(&[provider], &["gpt", "Bedrock", "azure"])?
        } else {
            quote(provider)
        };
        fields.push((self.key("provider")?, p));
        let model = if provider == "bedrock" {
            let owned = if bedrock_ok {
                self.bedrock_models.clone()
            } else {
                BEDROCK_MODELS.iter().map(|m| (*m).to_owned()).collect()
            };
            let good: Vec<&str> = owned.iter().map(String::as_str).collect();
            self.s(&good, &["anthropic.claude-unknown", " "])?
        } else {
            self.s(MODELS, &["", "  "])?
        };
        fields.push((self.key("model")?, model));
        let base_url = if provider == "custom" {
            !self.one_in(16)?
        } else {
            self.one_in(8)?
        };
        if base_url {
            let v = self.s(URLS, BAD_URLS)?;
            fields.push((self.key("base-url")?, v));
        }
        let api_key = match provider {
            "bedrock" => self.one_in(16)?,
            "custom" => self.one_in(2)?,
            _ => !self.one_in(16)?,
        };
        if api_key {
            let v = self.s(SECRETS, BAD_SECRETS)?;
            fields.push((self.key("api-key")?, v));
        }
        Ok(Some(fields))
    }

    fn messaging(&mut self, name: &str) -> Result<()> {
        match self.byte()? % 3 {
            0 => {
                self.table(&["agents", name, "messaging", "telegram"])?;
                let v = self.s(SECRETS, BAD_SECRETS)?;
                let c = !self.one_in(32)?;
                self.opt_kv(c, "bot-token", &v)?;
                let v = self.list(0, 2, &["123456789", "100005"], &["@bob", "-1", "1.5"])?;
                let c = self.one_in(2)?;
                self.opt_kv(c, "allowed-users", &v)?;
                let v = self.s(&["-100123"], &[])?;
                let c = self.one_in(3)?;
                self.opt_kv(c, "home-channel", &v)?;
            }
            1 => {
                self.table(&["agents", name, "messaging", "slack"])?;
                let v = self.s(SECRETS, BAD_SECRETS)?;
                self.kv("bot-token", &v)?;
                let v = self.s(SECRETS, BAD_SECRETS)?;
                let c = !self.one_in(32)?;
                self.opt_kv(c, "app-token", &v)?;
                let v = self.list(0, 2, &["U012AB3CD"], &[])?;
                let c = self.one_in(2)?;
                self.opt_kv(c, "allowed-users", &v)?;
            }
            _ => {
                self.table(&["agents", name, "messaging", "discord"])?;
                let v = self.s(SECRETS, BAD_SECRETS)?;
                self.kv("bot-token", &v)?;
                let v = self.list(0, 2, &["80351110224678912"], &[])?;
                let c = self.one_in(2)?;
                self.opt_kv(c, "allowed-users", &v)?;
            }
        }
        Ok(())
    }

    fn dashboard(&mut self, name: &str) -> Result<()> {
        self.table(&["agents", name, "dashboard"])?;
        let enabled = self.boolean()?;
        self.kv("enabled", &enabled)?;
        let expose = self.boolean()?;
        let c = self.one_in(2)?;
        self.opt_kv(c, "expose", &expose)?;
        if self.likely(1, 2)? {
            self.table(&["agents", name, "dashboard", "auth"])?;
            let v = self.s(&["admin"], &[])?;
            self.kv("username", &v)?;
            let v = self.s(SECRETS, BAD_SECRETS)?;
            self.kv("password", &v)?;
        }
        Ok(())
    }

    fn overlays(&mut self) -> Result<()> {
        let mut envs = self.envs.clone();
        if self.one_in(16)? {
            envs.push(self.pick(&["prdo", "qa", "x"])?.to_owned());
        }
        for env in envs {
            if !self.one_in(2)? {
                continue;
            }
            let mut env_table = false;
            if self.one_in(3)? {
                self.table(&["overlay", &env])?;
                env_table = true;
                let v = self.s(&["overlaid"], &[])?;
                self.kv("description", &v)?;
            }
            if self.one_in(2)? && !self.groups.is_empty() {
                let group = self.u.choose(&self.groups)?.clone();
                self.table(&["overlay", &env, "hosts", &group])?;
                let v = self.int((1, 3), &[0, 600])?;
                self.kv("count", &v)?;
                if self.one_in(2)? {
                    let v = match self.provider {
                        Prov::Local => self.s(LOCAL_SIZES, BAD_SIZES)?,
                        Prov::Hetzner => self.s(HETZNER_TYPES, BAD_SIZES)?,
                        Prov::Aws => self.s(AWS_TYPES, BAD_SIZES)?,
                    };
                    self.kv("size", &v)?;
                }
            }
            if self.one_in(2)? && !self.agents.is_empty() {
                let agent = self.u.choose(&self.agents)?.clone();
                self.table(&["overlay", &env, "agents", &agent])?;
                if self.one_in(2)? {
                    let host = self.pick_host()?;
                    self.kv("host", &quote(&host))?;
                }
                let v = self.s(MEMORY, BAD_MEMORY)?;
                self.kv("limits", &format!("{{ memory = {v} }}"))?;
            }
            if self.one_in(4)? {
                self.table(&["overlay", &env, "proxy"])?;
                let v = self.s(&["self-signed"], &["acme", "off"])?;
                self.kv("tls", &v)?;
            }
            if !env_table && self.one_in(16)? {
                // An overlay that replaces a whole table with a value.
                self.table(&["overlay", &env])?;
                let v = self.pick(WRONG_TYPES)?;
                let k = self.pick(&["hosts", "agents", "provider", "ssh", "version"])?;
                self.kv(k, v)?;
            }
        }
        Ok(())
    }

    /// Rarely, a raw line of fuzzer text somewhere in the file.
    fn raw_line(&mut self) -> Result<()> {
        if !self.one_in(24)? {
            return Ok(());
        }
        let raw: &str = self.u.arbitrary()?;
        let lines: Vec<&str> = self.out.split('\n').collect();
        let at = self.u.choose_index(lines.len())?;
        let mut out = String::with_capacity(self.out.len() + raw.len() + 1);
        for (i, l) in lines.iter().enumerate() {
            if i == at {
                out.push_str(raw);
                out.push('\n');
            }
            out.push_str(l);
            if i + 1 < lines.len() {
                out.push('\n');
            }
        }
        self.out = out;
        Ok(())
    }
}

/// A TOML basic string.
pub fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{:04X}", u32::from(c));
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn bare_or_quoted(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        k.to_owned()
    } else {
        quote(k)
    }
}
