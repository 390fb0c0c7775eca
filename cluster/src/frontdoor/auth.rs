//! Who may connect to the front door, and how they prove it: the users file (each user's
//! password verifier, as PostgreSQL's `pg_authid.rolpassword` keeps it) and the host-based rules
//! (`hba.conf`, as `pg_hba.conf`). Both are plain text; a bad line is an error naming the file,
//! the line and the rule it breaks.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use crate::model::bugs::PlantedBugs;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

/// SCRAM's iteration count for verifiers this program writes (PostgreSQL's default).
pub const SCRAM_ITERATIONS: usize = 4096;

/// The longest users or rules file read (a guard against a wrong path, say a log file).
const MAX_FILE: u64 = 4 << 20;

/// How a user's password is verified.
#[derive(Clone, PartialEq, Eq)]
pub enum Verifier {
    /// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
    Scram {
        iterations: usize,
        salt: Vec<u8>,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
    },
    /// `md5` and the hex MD5 of the password followed by the user name.
    Md5 { hash: [u8; 16] },
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verifier::Scram { iterations, .. } => write!(f, "Scram({iterations} iterations)"),
            Verifier::Md5 { .. } => f.write_str("Md5"),
        }
    }
}

impl Verifier {
    /// A SCRAM-SHA-256 verifier of `password` with a fresh random salt.
    pub fn scram(password: &str) -> Verifier {
        let mut salt = vec![0u8; 16];
        crate::io::runtime::random_bytes(&mut salt);
        Verifier::scram_with_salt(password, salt, SCRAM_ITERATIONS)
    }

    pub fn scram_with_salt(password: &str, salt: Vec<u8>, iterations: usize) -> Verifier {
        use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramSecret};
        let salted = gen_salted_password(password, &salt, iterations);
        match ScramSecret::verifier_from_salted_password(salt, salted, iterations) {
            ScramSecret::Verifier {
                salt,
                iterations,
                stored_key,
                server_key,
            } => Verifier::Scram {
                iterations,
                salt,
                stored_key,
                server_key,
            },
            ScramSecret::SaltedPassword { .. } => unreachable!("a verifier was asked for"),
        }
    }

    /// The verifier as the users file keeps it.
    pub fn encode(&self) -> String {
        match self {
            Verifier::Scram {
                iterations,
                salt,
                stored_key,
                server_key,
            } => format!(
                "SCRAM-SHA-256${iterations}:{}${}:{}",
                B64.encode(salt),
                B64.encode(stored_key),
                B64.encode(server_key)
            ),
            Verifier::Md5 { hash } => format!("md5{}", hex(hash)),
        }
    }

    /// Parses a verifier; the error says what is wrong with it.
    pub fn decode(text: &str) -> Result<Verifier, String> {
        if let Some(rest) = text.strip_prefix("SCRAM-SHA-256$") {
            let bad = || {
                "a SCRAM verifier is SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> (base64)"
                    .to_string()
            };
            let (params, keys) = rest.split_once('$').ok_or_else(bad)?;
            let (iterations, salt) = params.split_once(':').ok_or_else(bad)?;
            let (stored, server) = keys.split_once(':').ok_or_else(bad)?;
            let iterations: usize = iterations
                .parse()
                .map_err(|_| format!("iteration count {iterations:?} is not a number"))?;
            if !(1..=10_000_000).contains(&iterations) {
                return Err(format!("iteration count {iterations} is out of range"));
            }
            let b64 = |what: &str, s: &str| {
                B64.decode(s)
                    .map_err(|_| format!("the {what} {s:?} is not base64"))
            };
            let salt = b64("salt", salt)?;
            let stored_key = b64("StoredKey", stored)?;
            let server_key = b64("ServerKey", server)?;
            if salt.is_empty() {
                return Err("the salt is empty".into());
            }
            if stored_key.len() != 32 || server_key.len() != 32 {
                return Err("StoredKey and ServerKey are 32 bytes each (SHA-256)".into());
            }
            return Ok(Verifier::Scram {
                iterations,
                salt,
                stored_key,
                server_key,
            });
        }
        if let Some(h) = text.strip_prefix("md5") {
            let bytes = unhex(h)
                .filter(|b| b.len() == 16)
                .ok_or_else(|| "an md5 verifier is md5 followed by 32 hex digits".to_string())?;
            let mut hash = [0u8; 16];
            hash.copy_from_slice(&bytes);
            return Ok(Verifier::Md5 { hash });
        }
        Err(
            "a verifier starts with SCRAM-SHA-256$ or md5 (plaintext passwords are not kept)"
                .into(),
        )
    }

    /// The md5 verifier of `password` for `user`.
    pub fn md5(user: &str, password: &str) -> Verifier {
        let digest = md5::compute(format!("{password}{user}"));
        Verifier::Md5 { hash: digest.0 }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// A user name as the files accept it: what `psql -U` may send without quoting.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'))
}

/// The users file: each user's verifier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Users {
    pub users: BTreeMap<String, Verifier>,
}

impl Users {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Users, String> {
        Users::parse(&read_small(path)?, &path.display().to_string())
    }

    /// Lines `NAME VERIFIER`; blank lines and `#` comments are skipped.
    pub fn parse(text: &str, origin: &str) -> Result<Users, String> {
        let mut users = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let at = |rule: String| format!("users file {origin} line {}: {rule}", n + 1);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, verifier] = fields[..] else {
                return Err(at("a line is `NAME VERIFIER` (two fields)".into()));
            };
            if !valid_name(name) {
                return Err(at(format!(
                    "user name {name:?}: 1 to 63 letters, digits, `_`, `-`, `.` or `@`"
                )));
            }
            let verifier =
                Verifier::decode(verifier).map_err(|e| at(format!("user {name}: {e}")))?;
            if users.insert(name.to_string(), verifier).is_some() {
                return Err(at(format!("user {name} appears twice")));
            }
        }
        Ok(Users { users })
    }

    pub fn text(&self) -> String {
        let mut out = String::from("# NAME VERIFIER (hacluster sql-user changes it)\n");
        for (name, v) in &self.users {
            out.push_str(&format!("{name} {}\n", v.encode()));
        }
        out
    }

    /// Adds or replaces `name`.
    pub fn set(&mut self, name: &str, verifier: Verifier) -> Result<(), String> {
        if !valid_name(name) {
            return Err(format!(
                "user name {name:?}: 1 to 63 letters, digits, `_`, `-`, `.` or `@`"
            ));
        }
        self.users.insert(name.to_string(), verifier);
        Ok(())
    }
}

/// An authentication method of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    ScramSha256,
    Md5,
    Trust,
    Reject,
}

/// Which connections a rule is for: `host` any, `hostssl` TLS only, `hostnossl` plain only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnType {
    Host,
    HostSsl,
    HostNoSsl,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub conn: ConnType,
    /// `None`: all.
    pub databases: Option<Vec<String>>,
    pub users: Option<Vec<String>>,
    /// `None`: all addresses.
    pub network: Option<(IpAddr, u8)>,
    pub method: Method,
    /// The line it was read from.
    pub line: usize,
}

/// The host-based rules, first match wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hba {
    pub rules: Vec<Rule>,
}

/// The rules `init-local` writes: SCRAM from the loopback addresses.
pub const DEFAULT_HBA: &str = "\
# TYPE  DATABASE  USER  ADDRESS       METHOD   (first match wins; no match: refused)
# TYPE: host | hostssl | hostnossl; METHOD: scram-sha-256 | md5 | trust | reject
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
";

impl Hba {
    pub fn load(path: &Path) -> Result<Hba, String> {
        Hba::parse(&read_small(path)?, &path.display().to_string())
    }

    /// Lines `TYPE DATABASE USER ADDRESS/PREFIX METHOD`.
    pub fn parse(text: &str, origin: &str) -> Result<Hba, String> {
        let mut rules = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let at = |rule: String| format!("rules file {origin} line {}: {rule}", n + 1);
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let conn = match fields[0] {
                "host" => ConnType::Host,
                "hostssl" => ConnType::HostSsl,
                "hostnossl" => ConnType::HostNoSsl,
                "local" => {
                    return Err(at(
                        "`local`: the front door has no Unix socket; use `host`".into()
                    ))
                }
                other => {
                    return Err(at(format!(
                        "connection type {other:?}: host, hostssl or hostnossl"
                    )))
                }
            };
            let [_, database, user, address, method] = fields[..] else {
                return Err(at(
                    "a rule is `host DATABASE USER ADDRESS/PREFIX METHOD` (five fields)".into(),
                ));
            };
            let list = |what: &str, s: &str| -> Result<Option<Vec<String>>, String> {
                if s == "all" {
                    return Ok(None);
                }
                let names: Vec<String> = s.split(',').map(str::to_string).collect();
                if names.iter().any(|n| n.is_empty()) {
                    return Err(at(format!("{what} {s:?}: an empty name")));
                }
                Ok(Some(names))
            };
            let databases = list("database", database)?;
            let users = list("user", user)?;
            let network = if address == "all" {
                None
            } else {
                Some(parse_network(address).map_err(|e| at(format!("address {address:?}: {e}")))?)
            };
            let method = match method {
                "scram-sha-256" => Method::ScramSha256,
                "md5" => Method::Md5,
                "trust" => Method::Trust,
                "reject" => Method::Reject,
                other => {
                    return Err(at(format!(
                        "method {other:?}: scram-sha-256, md5, trust or reject"
                    )))
                }
            };
            rules.push(Rule {
                conn,
                databases,
                users,
                network,
                method,
                line: n + 1,
            });
        }
        Ok(Hba { rules })
    }

    /// The first rule for this connection, if any.
    pub fn find(&self, addr: IpAddr, tls: bool, user: &str, database: &str) -> Option<&Rule> {
        self.find_with(addr, tls, user, database, PlantedBugs::none())
    }

    /// [`Hba::find`], with the planted bugs the coordinator runs with.
    pub fn find_with(
        &self,
        addr: IpAddr,
        tls: bool,
        user: &str,
        database: &str,
        bugs: PlantedBugs,
    ) -> Option<&Rule> {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
            v4 => v4,
        };
        self.rules.iter().find(|r| {
            let conn = match r.conn {
                ConnType::Host => true,
                ConnType::HostSsl => tls,
                ConnType::HostNoSsl => !tls,
            };
            let named = |list: &Option<Vec<String>>, name: &str| {
                list.as_ref().is_none_or(|l| l.iter().any(|n| n == name))
            };
            conn && named(&r.databases, database)
                && named(&r.users, user)
                && (bugs.hba_ignores_address
                    || r.network
                        .is_none_or(|(net, prefix)| in_network(addr, net, prefix)))
        })
    }
}

fn parse_network(text: &str) -> Result<(IpAddr, u8), String> {
    let (ip, prefix) = text
        .split_once('/')
        .ok_or("an address is ADDRESS/PREFIX (127.0.0.1/32), or all")?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("{ip:?} is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= max)
        .ok_or_else(|| format!("prefix {prefix:?} is not 0..={max}"))?;
    Ok((ip, prefix))
}

fn in_network(addr: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let (a, n, bits) = match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (u32::from(a) as u128, u32::from(n) as u128, 32u32),
        (IpAddr::V6(a), IpAddr::V6(n)) => (u128::from(a), u128::from(n), 128),
        _ => return false,
    };
    let prefix = u32::from(prefix);
    if prefix == 0 {
        return true;
    }
    let shift = bits - prefix;
    (a >> shift) == (n >> shift)
}

fn read_small(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_FILE)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text)
}

/// A random password: 24 letters and digits.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 24];
    crate::io::runtime::random_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifiers_round_trip_through_their_text() {
        let v = Verifier::scram_with_salt("secret", vec![7; 16], 4096);
        assert_eq!(Verifier::decode(&v.encode()).unwrap(), v);
        // The salt is written in base64 after the iteration count, as PostgreSQL writes it.
        let fixed = Verifier::scram_with_salt("pencil", b"salt".to_vec(), 4096);
        let text = fixed.encode();
        assert!(text.starts_with("SCRAM-SHA-256$4096:c2FsdA==$"), "{text}");
        let md5 = Verifier::md5("gpadmin", "pw");
        assert_eq!(Verifier::decode(&md5.encode()).unwrap(), md5);
        assert_eq!(md5.encode().len(), 35);
    }

    #[test]
    fn bad_users_lines_are_named_with_file_line_and_rule() {
        let scram = Verifier::scram_with_salt("x", vec![3; 16], 4096);
        let good = format!("# users\n\ngpadmin {}\n", scram.encode());
        let users = Users::parse(&good, "u").unwrap();
        assert!(users.users.contains_key("gpadmin"));
        for (text, says) in [
            ("gpadmin", "line 1: a line is `NAME VERIFIER`"),
            ("gpadmin secret", "plaintext passwords are not kept"),
            ("gpadmin md5abc", "32 hex digits"),
            (
                "gpadmin SCRAM-SHA-256$4096:c2FsdA==",
                "SCRAM-SHA-256$<iterations>",
            ),
            ("gpadmin SCRAM-SHA-256$x:c2FsdA==$AA==:AA==", "not a number"),
            ("gpadmin SCRAM-SHA-256$4096:c2FsdA==$AA==:AA==", "32 bytes"),
            (
                "gpadmin SCRAM-SHA-256$4096:!!$AA==:AA==",
                "salt \"!!\" is not base64",
            ),
            ("bad\"name md5", "user name"),
        ] {
            let err = Users::parse(text, "/d/users").unwrap_err();
            assert!(err.starts_with("users file /d/users line 1:"), "{err}");
            assert!(err.contains(says), "{text}: {err}");
        }
        let twice = format!("{good}gpadmin {}\n", Verifier::md5("gpadmin", "y").encode());
        let err = Users::parse(&twice, "u").unwrap_err();
        assert!(err.contains("line 4") && err.contains("twice"), "{err}");
    }

    #[test]
    fn rules_match_first_by_type_database_user_and_network() {
        let hba = Hba::parse(
            "host all all 10.0.0.0/8 reject\n\
             hostssl db1 alice 0.0.0.0/0 md5 # only over TLS\n\
             host db1,db2 alice,bob 127.0.0.1/32 trust\n\
             host all all 127.0.0.0/8 scram-sha-256\n\
             host all all ::1/128 scram-sha-256\n",
            "h",
        )
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let method = |a: &str, tls, u, d| hba.find(ip(a), tls, u, d).map(|r| r.method);
        assert_eq!(
            method("10.1.2.3", true, "alice", "db1"),
            Some(Method::Reject)
        );
        assert_eq!(
            method("192.168.0.1", true, "alice", "db1"),
            Some(Method::Md5)
        );
        assert_eq!(method("192.168.0.1", false, "alice", "db1"), None);
        assert_eq!(
            method("127.0.0.1", false, "bob", "db2"),
            Some(Method::Trust)
        );
        assert_eq!(
            method("127.0.0.1", false, "carol", "db2"),
            Some(Method::ScramSha256)
        );
        assert_eq!(
            method("127.0.0.9", false, "bob", "db3"),
            Some(Method::ScramSha256)
        );
        assert_eq!(method("::1", false, "x", "y"), Some(Method::ScramSha256));
        assert_eq!(
            method("::ffff:127.0.0.1", false, "x", "y"),
            Some(Method::ScramSha256)
        );
        assert_eq!(method("::2", false, "x", "y"), None);
        let default = Hba::parse(DEFAULT_HBA, "d").unwrap();
        assert_eq!(default.rules.len(), 2);
        assert!(default
            .find(ip("10.0.0.1"), false, "gpadmin", "postgres")
            .is_none());
    }

    #[test]
    fn bad_rules_are_named_with_file_line_and_rule() {
        for (text, says) in [
            ("local all all trust", "no Unix socket"),
            (
                "hots all all 127.0.0.1/32 trust",
                "connection type \"hots\"",
            ),
            ("host all all 127.0.0.1/32", "five fields"),
            ("host all all 127.0.0.1 trust", "ADDRESS/PREFIX"),
            ("host all all 127.0.0.1/33 trust", "prefix \"33\""),
            ("host all all localhost/32 trust", "not an IP address"),
            ("host all all 127.0.0.1/32 password", "method \"password\""),
            ("host all a,,b 127.0.0.1/32 trust", "an empty name"),
        ] {
            let err = Hba::parse(&format!("# rules\n{text}\n"), "/d/hba.conf").unwrap_err();
            assert!(err.starts_with("rules file /d/hba.conf line 2:"), "{err}");
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
