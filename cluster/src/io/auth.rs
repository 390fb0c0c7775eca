//! Who may talk to a cluster process: every process holds the cluster's secret, and every
//! connection between two of them starts with a mutual challenge-response that proves both
//! ends hold it, before any request is read. After it, every frame carries a tag only a holder
//! of the session's key could compute.
//!
//! HMAC-SHA256 comes from the `hmac` and `sha2` crates (audited code, not written here).
//!
//! The handshake (each message one plain frame of at most [`HANDSHAKE_MAX_BYTES`]):
//!
//! ```text
//! client → server  Hello     { version, cluster_id, key_id, alt_key_id, identity, nonce_c }
//! server → client  Challenge { version, key_id, identity, nonce_s, mac_s }
//! client → server  Proof     { mac_c }
//! ```
//!
//! `mac_x = HMAC-SHA256(K, label_x ‖ version ‖ cluster_id ‖ key_id ‖ nonce_c ‖ nonce_s ‖
//! enc(id_c) ‖ enc(id_s))`, with a label of its own for each direction; `K` is the secret named
//! by `key_id`. The client offers the key id of its current secret and, during a rotation, of
//! its previous one (`alt_key_id`); the server takes the first it holds itself and names it in
//! the challenge, so a process that already has the new secret and one that has only the old
//! one still agree on a key while a rotation rolls through the cluster. The server's fresh
//! nonce makes a recorded handshake worthless: its proof answered another challenge.
//!
//! The session key is `HMAC-SHA256(K, "session" label ‖ the same transcript)`, 32 bytes that
//! are the two directions' frame keys: the first 16 for frames from the client, the last 16
//! for frames from the server (split, as a KDF's output is, rather than one HMAC more per
//! direction). Each later frame carries
//! `SipHash-2-4-128(frame_key, sequence ‖ payload)` ([`TAG_BYTES`], from the `siphasher`
//! crate): a keyed function made for short messages, a few dozen nanoseconds where an HMAC of a
//! small frame costs two SHA-256 compressions. Each direction counts its frames from 0, so a
//! frame replayed, dropped, reordered or taken from another connection fails its tag.
//!
//! Where the credentials live is the runtime's business ([`super::runtime::credentials`]): one
//! slot per process in production, one per simulated node in the simulator.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::runtime;

type HmacSha256 = Hmac<Sha256>;

/// The handshake's version; a peer of another version is refused.
pub const PROTOCOL_VERSION: u16 = 3;
/// The largest handshake frame (payload) either end accepts; the real ones are under 120 bytes.
pub const HANDSHAKE_MAX_BYTES: usize = 256;
/// Bytes of a frame's authentication tag.
pub const TAG_BYTES: usize = 16;
/// Bytes of a secret.
pub const SECRET_BYTES: usize = 32;
/// Bytes of a nonce.
pub const NONCE_BYTES: usize = 32;

const LABEL_SERVER: &[u8] = b"hacluster auth v1 server";
const LABEL_CLIENT: &[u8] = b"hacluster auth v1 client";
const LABEL_SESSION: &[u8] = b"hacluster auth v1 session";

/// A secret's name: the first 8 bytes of its SHA-256 (says which secret, never what it is).
pub type KeyId = [u8; 8];

/// The cluster's shared secret, with what every handshake needs of it worked out once: its key
/// id, and an HMAC state that has already absorbed the key's padded blocks (cloned for each
/// MAC, so a handshake does not hash the key again).
#[derive(Clone)]
pub struct Secret {
    bytes: [u8; SECRET_BYTES],
    key_id: KeyId,
    keyed: HmacSha256,
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Secret {}

impl Secret {
    pub fn from_bytes(bytes: [u8; SECRET_BYTES]) -> Secret {
        let digest = Sha256::digest(bytes);
        Secret {
            bytes,
            key_id: digest[..8].try_into().expect("8 bytes"),
            keyed: HmacSha256::new_from_slice(&bytes).expect("HMAC takes a key of any length"),
        }
    }

    /// A new secret from the runtime's random source (the OS in production, the seed in the
    /// simulator).
    pub fn generate() -> Secret {
        let mut bytes = [0; SECRET_BYTES];
        runtime::random_bytes(&mut bytes);
        Secret::from_bytes(bytes)
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The secret as 64 hexadecimal digits (the secret file's form).
    pub fn to_hex(&self) -> String {
        hex(&self.bytes)
    }

    /// Parses 64 hexadecimal digits (surrounding white space allowed).
    pub fn from_hex(text: &str) -> Result<Secret, String> {
        let text = text.trim();
        if text.len() != 2 * SECRET_BYTES || !text.is_ascii() {
            return Err(format!(
                "a secret is {} hexadecimal digits, found {} characters",
                2 * SECRET_BYTES,
                text.len()
            ));
        }
        let mut bytes = [0; SECRET_BYTES];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|_| "a secret is hexadecimal digits only".to_string())?;
        }
        Ok(Secret::from_bytes(bytes))
    }

    fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }
}

/// Never prints the secret, only its key id.
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(key id {})", hex(&self.key_id()))
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The secrets a process holds: the one it uses, and during a rotation the one before it,
/// still accepted from peers that do not have the new one yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    pub current: Secret,
    pub previous: Option<Secret>,
}

impl Keys {
    pub fn single(current: Secret) -> Keys {
        Keys {
            current,
            previous: None,
        }
    }

    fn by_id(&self, id: &KeyId) -> Option<&Secret> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|s| &s.key_id() == id)
    }
}

/// Who a process is, as it tells its peers (and proves it, holding the secret). New kinds of
/// process (a per-host agent) are new variants at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerIdentity {
    Coordinator,
    Standby {
        dbid: u16,
    },
    Segment {
        dbid: u16,
    },
    /// An administrative verb (`hacluster` init, recoverseg, add-mirrors, …).
    Admin,
    /// A database client.
    Client,
    /// The agent of a host, named by [`PeerIdentity::agent`].
    Agent {
        host: u64,
    },
}

impl PeerIdentity {
    /// The identity of the agent of host `hostname`: the host is named by the first eight bytes
    /// of the SHA-256 of its name, so the identity keeps a fixed size whatever the name.
    pub fn agent(hostname: &str) -> PeerIdentity {
        let digest = Sha256::digest(hostname.as_bytes());
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        PeerIdentity::Agent {
            host: u64::from_be_bytes(first),
        }
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerIdentity::Coordinator => write!(f, "coordinator"),
            PeerIdentity::Standby { dbid } => write!(f, "standby (dbid {dbid})"),
            PeerIdentity::Segment { dbid } => write!(f, "segment (dbid {dbid})"),
            PeerIdentity::Admin => write!(f, "admin"),
            PeerIdentity::Client => write!(f, "client"),
            PeerIdentity::Agent { host } => write!(f, "agent (host {host:016x})"),
        }
    }
}

/// What a process needs to open and accept connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub cluster_id: u64,
    pub identity: PeerIdentity,
    pub keys: Keys,
}

/// Installs the credentials of this process (in the simulator: of the current node).
pub fn install(credentials: Credentials) {
    runtime::credentials::install(Arc::new(credentials));
}

/// The credentials installed for this process (node), if any.
pub fn installed() -> Result<Arc<Credentials>, AuthError> {
    runtime::credentials::current().ok_or(AuthError::NoCredentials)
}

/// The text of a secret file: the cluster's id and its keys, one per line, as
/// `cluster-id <16 hex digits>`, `current <64 hex digits>` and, during a rotation,
/// `previous <64 hex digits>`; `#` starts a comment.
pub fn secret_file_text(cluster_id: u64, keys: &Keys) -> String {
    let mut text = format!(
        "# hacluster cluster secret: every process of the cluster reads it; keep it mode 0600\n\
         cluster-id {cluster_id:016x}\ncurrent {}\n",
        keys.current.to_hex()
    );
    if let Some(previous) = &keys.previous {
        text.push_str(&format!("previous {}\n", previous.to_hex()));
    }
    text
}

/// Parses a secret file's text (see [`secret_file_text`]).
pub fn parse_secret_file(text: &str) -> Result<(u64, Keys), String> {
    let (mut cluster_id, mut current, mut previous) = (None, None, None);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |e: String| format!("line {}: {e}", n + 1);
        let (key, value) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| at(format!("{line:?} is not `name value`")))?;
        let value = value.trim();
        match key {
            "cluster-id" => {
                cluster_id = Some(
                    u64::from_str_radix(value, 16)
                        .map_err(|_| at("cluster-id is 16 hexadecimal digits".into()))?,
                )
            }
            "current" => current = Some(Secret::from_hex(value).map_err(at)?),
            "previous" => previous = Some(Secret::from_hex(value).map_err(at)?),
            other => return Err(at(format!("unknown entry {other:?}"))),
        }
    }
    let cluster_id = cluster_id.ok_or("no cluster-id line")?;
    let current = current.ok_or("no current line (the secret)")?;
    Ok((cluster_id, Keys { current, previous }))
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "no cluster credentials installed in this process: it cannot open or accept connections"
    )]
    NoCredentials,
    #[error("peer speaks handshake version {theirs}, this process {ours}")]
    Version { ours: u16, theirs: u16 },
    #[error("peer belongs to cluster {theirs:016x}, this process to {ours:016x}")]
    WrongCluster { ours: u64, theirs: u64 },
    #[error("peer's key id {theirs} names no secret this process holds (a wrong or stale cluster secret)")]
    UnknownKey { theirs: String },
    #[error("peer failed to prove it holds the cluster secret (bad {what} MAC)")]
    BadMac { what: &'static str },
    #[error("frame {seq} fails its authentication tag (tampered, replayed, reordered or spliced)")]
    BadTag { seq: u64 },
    #[error("handshake message does not decode: {0}")]
    Malformed(String),
}

pub type Nonce = [u8; NONCE_BYTES];
pub type MacBytes = [u8; 32];

/// The client's first handshake message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u16,
    pub cluster_id: u64,
    pub key_id: KeyId,
    /// The client's previous secret's key id, during a rotation.
    pub alt_key_id: Option<KeyId>,
    pub identity: PeerIdentity,
    pub nonce_c: Nonce,
}

/// The server's answer: its identity, its nonce, and its proof of the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub version: u16,
    pub key_id: KeyId,
    pub identity: PeerIdentity,
    pub nonce_s: Nonce,
    pub mac_s: MacBytes,
}

/// The client's proof of the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub mac_c: MacBytes,
}

/// What both MACs and the session key are computed over, encoded once: `version ‖ cluster_id
/// ‖ key_id ‖ nonce_c ‖ nonce_s ‖ enc(id_c) ‖ enc(id_s)`, each identity preceded by its length.
struct Transcript {
    bytes: Vec<u8>,
}

impl Transcript {
    fn new(
        cluster_id: u64,
        key_id: KeyId,
        nonce_c: &Nonce,
        nonce_s: &Nonce,
        id_c: PeerIdentity,
        id_s: PeerIdentity,
    ) -> Transcript {
        let mut bytes = Vec::with_capacity(2 + 8 + 8 + 2 * NONCE_BYTES + 2 * 8);
        bytes.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        bytes.extend_from_slice(&cluster_id.to_le_bytes());
        bytes.extend_from_slice(&key_id);
        bytes.extend_from_slice(nonce_c);
        bytes.extend_from_slice(nonce_s);
        for id in [id_c, id_s] {
            let enc = super::codec::encode(&id);
            bytes.extend_from_slice(&(enc.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&enc);
        }
        Transcript { bytes }
    }

    fn mac(&self, key: &Secret, label: &[u8]) -> HmacSha256 {
        let mut mac = key.mac();
        mac.update(label);
        mac.update(&self.bytes);
        mac
    }

    fn sign(&self, key: &Secret, label: &[u8]) -> MacBytes {
        self.mac(key, label).finalize().into_bytes().into()
    }

    /// Checks `mac` in constant time.
    fn verify(&self, key: &Secret, label: &[u8], mac: &MacBytes) -> bool {
        self.mac(key, label).verify_slice(mac).is_ok()
    }

    fn session(&self, key: &Secret, client: bool) -> Session {
        let session_key = self.sign(key, LABEL_SESSION);
        Session::new(&session_key, client)
    }
}

fn nonce() -> Nonce {
    let mut n = [0; NONCE_BYTES];
    runtime::random_bytes(&mut n);
    n
}

/// The client's side, between its hello and the server's challenge.
pub struct ClientHandshake {
    credentials: Arc<Credentials>,
    nonce_c: Nonce,
}

impl ClientHandshake {
    pub fn start(credentials: Arc<Credentials>) -> (ClientHandshake, Hello) {
        Self::start_with(credentials, nonce())
    }

    fn start_with(credentials: Arc<Credentials>, nonce_c: Nonce) -> (ClientHandshake, Hello) {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            cluster_id: credentials.cluster_id,
            key_id: credentials.keys.current.key_id(),
            alt_key_id: credentials.keys.previous.as_ref().map(Secret::key_id),
            identity: credentials.identity,
            nonce_c,
        };
        (
            ClientHandshake {
                credentials,
                nonce_c,
            },
            hello,
        )
    }

    /// Checks the server's proof; the client's proof to send, the session, the server's identity.
    pub fn answer(
        self,
        challenge: &Challenge,
    ) -> Result<(Proof, Session, PeerIdentity), AuthError> {
        if challenge.version != PROTOCOL_VERSION {
            return Err(AuthError::Version {
                ours: PROTOCOL_VERSION,
                theirs: challenge.version,
            });
        }
        let creds = &self.credentials;
        let key = creds
            .keys
            .by_id(&challenge.key_id)
            .ok_or_else(|| AuthError::UnknownKey {
                theirs: hex(&challenge.key_id),
            })?;
        let t = Transcript::new(
            creds.cluster_id,
            challenge.key_id,
            &self.nonce_c,
            &challenge.nonce_s,
            creds.identity,
            challenge.identity,
        );
        if !t.verify(key, LABEL_SERVER, &challenge.mac_s) {
            return Err(AuthError::BadMac { what: "server" });
        }
        let proof = Proof {
            mac_c: t.sign(key, LABEL_CLIENT),
        };
        Ok((proof, t.session(key, true), challenge.identity))
    }
}

/// The server's side, between its challenge and the client's proof.
pub struct ServerHandshake {
    credentials: Arc<Credentials>,
    hello: Hello,
    key_id: KeyId,
    nonce_s: Nonce,
}

impl ServerHandshake {
    /// Checks a client's hello; the challenge to send.
    pub fn challenge(
        credentials: Arc<Credentials>,
        hello: Hello,
    ) -> Result<(ServerHandshake, Challenge), AuthError> {
        Self::challenge_with(credentials, hello, nonce())
    }

    fn challenge_with(
        credentials: Arc<Credentials>,
        hello: Hello,
        nonce_s: Nonce,
    ) -> Result<(ServerHandshake, Challenge), AuthError> {
        if hello.version != PROTOCOL_VERSION {
            return Err(AuthError::Version {
                ours: PROTOCOL_VERSION,
                theirs: hello.version,
            });
        }
        if hello.cluster_id != credentials.cluster_id {
            return Err(AuthError::WrongCluster {
                ours: credentials.cluster_id,
                theirs: hello.cluster_id,
            });
        }
        let key_id = std::iter::once(hello.key_id)
            .chain(hello.alt_key_id)
            .find(|id| credentials.keys.by_id(id).is_some())
            .ok_or_else(|| AuthError::UnknownKey {
                theirs: hex(&hello.key_id),
            })?;
        let key = credentials.keys.by_id(&key_id).expect("found above");
        let t = Transcript::new(
            credentials.cluster_id,
            key_id,
            &hello.nonce_c,
            &nonce_s,
            hello.identity,
            credentials.identity,
        );
        let challenge = Challenge {
            version: PROTOCOL_VERSION,
            key_id,
            identity: credentials.identity,
            nonce_s,
            mac_s: t.sign(key, LABEL_SERVER),
        };
        Ok((
            ServerHandshake {
                credentials,
                hello,
                key_id,
                nonce_s,
            },
            challenge,
        ))
    }

    /// Checks the client's proof; the session and the client's identity.
    pub fn verify(self, proof: &Proof) -> Result<(Session, PeerIdentity), AuthError> {
        let key = self.credentials.keys.by_id(&self.key_id).expect("chosen");
        let t = Transcript::new(
            self.credentials.cluster_id,
            self.key_id,
            &self.hello.nonce_c,
            &self.nonce_s,
            self.hello.identity,
            self.credentials.identity,
        );
        if !t.verify(key, LABEL_CLIENT, &proof.mac_c) {
            return Err(AuthError::BadMac { what: "client" });
        }
        Ok((t.session(key, false), self.hello.identity))
    }

    /// The identity the client claims (not proven until [`ServerHandshake::verify`]).
    pub fn claimed(&self) -> PeerIdentity {
        self.hello.identity
    }
}

/// An authenticated connection's frame keys: one for what this end sends, one for what it
/// receives.
pub struct Session {
    pub send: FrameKey,
    pub recv: FrameKey,
}

impl Session {
    fn new(session_key: &MacBytes, client: bool) -> Session {
        let (mine, theirs) = if client { (0, 1) } else { (1, 0) };
        Session {
            send: FrameKey::new(frame_key(session_key, mine)),
            recv: FrameKey::new(frame_key(session_key, theirs)),
        }
    }
}

/// The frame key of one direction (0: client to server; 1: server to client): its half of
/// the session key.
fn frame_key(session_key: &MacBytes, direction: u8) -> [u8; 16] {
    let half = usize::from(direction) * 16;
    session_key[half..half + 16].try_into().expect("16 bytes")
}

/// Tags the frames of one direction of a connection, in order.
#[derive(Clone)]
pub struct FrameKey {
    key: [u8; 16],
    /// The next frame's sequence number.
    seq: u64,
}

impl FrameKey {
    fn new(key: [u8; 16]) -> FrameKey {
        FrameKey { key, seq: 0 }
    }

    fn tag_of(&self, payload: &[u8]) -> [u8; TAG_BYTES] {
        use std::hash::Hasher;
        let mut h = siphasher::sip128::SipHasher24::new_with_key(&self.key);
        h.write(&self.seq.to_le_bytes());
        h.write(payload);
        siphasher::sip128::Hasher128::finish128(&h).as_bytes()
    }

    /// The tag of the next frame to send, which is then counted.
    pub fn seal(&mut self, payload: &[u8]) -> [u8; TAG_BYTES] {
        let tag = self.tag_of(payload);
        self.seq += 1;
        tag
    }

    /// Checks the tag of the next frame received (in constant time); counted if it holds.
    pub fn open(&mut self, tag: &[u8], payload: &[u8]) -> Result<(), AuthError> {
        use subtle::ConstantTimeEq;
        let expected = self.tag_of(payload);
        if tag.len() != TAG_BYTES || !bool::from(expected.ct_eq(tag)) {
            return Err(AuthError::BadTag { seq: self.seq });
        }
        self.seq += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(b: u8) -> Secret {
        Secret::from_bytes([b; SECRET_BYTES])
    }

    fn creds(identity: PeerIdentity, keys: Keys) -> Arc<Credentials> {
        Arc::new(Credentials {
            cluster_id: 42,
            identity,
            keys,
        })
    }

    /// Runs a whole handshake with fixed nonces; both sessions, or the first refusal.
    fn handshake(
        client: Arc<Credentials>,
        server: Arc<Credentials>,
        nonce_c: u8,
        nonce_s: u8,
    ) -> Result<(Session, Session), AuthError> {
        let (c, hello) = ClientHandshake::start_with(client, [nonce_c; 32]);
        let (s, challenge) = ServerHandshake::challenge_with(server, hello, [nonce_s; 32])?;
        let (proof, cs, server_id) = c.answer(&challenge)?;
        let (ss, client_id) = s.verify(&proof)?;
        assert_eq!(server_id, PeerIdentity::Segment { dbid: 2 });
        assert_eq!(client_id, PeerIdentity::Coordinator);
        Ok((cs, ss))
    }

    fn coordinator(keys: Keys) -> Arc<Credentials> {
        creds(PeerIdentity::Coordinator, keys)
    }

    fn segment(keys: Keys) -> Arc<Credentials> {
        creds(PeerIdentity::Segment { dbid: 2 }, keys)
    }

    #[test]
    fn a_good_handshake_gives_both_ends_matching_frame_keys() {
        let keys = Keys::single(secret(1));
        let (mut c, mut s) = handshake(coordinator(keys.clone()), segment(keys), 1, 2).unwrap();
        for n in 0..3u8 {
            let tag = c.send.seal(&[n; 10]);
            s.recv.open(&tag, &[n; 10]).unwrap();
            let tag = s.send.seal(&[n]);
            c.recv.open(&tag, &[n]).unwrap();
        }
    }

    #[test]
    fn a_wrong_secret_is_refused_by_both_ends() {
        // Another secret: its key id is unknown to the server.
        let e = handshake(
            coordinator(Keys::single(secret(1))),
            segment(Keys::single(secret(2))),
            1,
            2,
        )
        .err()
        .unwrap();
        assert!(matches!(e, AuthError::UnknownKey { .. }), "{e}");
        // A forger who knows the key id but not the secret: the server's MAC check fails on the
        // client, and a forged proof on the server.
        let real = segment(Keys::single(secret(1)));
        let (_, hello) = ClientHandshake::start_with(coordinator(Keys::single(secret(1))), [1; 32]);
        let (s, _) = ServerHandshake::challenge_with(real.clone(), hello, [2; 32]).unwrap();
        let e = s.verify(&Proof { mac_c: [0; 32] }).err().unwrap();
        assert_eq!(e, AuthError::BadMac { what: "client" });
        let (c, hello) = ClientHandshake::start_with(coordinator(Keys::single(secret(1))), [1; 32]);
        let (_, mut challenge) = ServerHandshake::challenge_with(real, hello, [2; 32]).unwrap();
        challenge.mac_s[0] ^= 1;
        assert_eq!(
            c.answer(&challenge).err().unwrap(),
            AuthError::BadMac { what: "server" }
        );
    }

    #[test]
    fn a_wrong_cluster_id_is_refused() {
        let keys = Keys::single(secret(1));
        let other = Arc::new(Credentials {
            cluster_id: 43,
            ..(*coordinator(keys.clone())).clone()
        });
        let e = handshake(other, segment(keys), 1, 2).err().unwrap();
        assert_eq!(
            e,
            AuthError::WrongCluster {
                ours: 42,
                theirs: 43
            }
        );
    }

    #[test]
    fn a_recorded_handshake_replayed_fails_on_the_fresh_challenge() {
        let keys = Keys::single(secret(1));
        let (c, hello) = ClientHandshake::start_with(coordinator(keys.clone()), [1; 32]);
        let (s, challenge) =
            ServerHandshake::challenge_with(segment(keys.clone()), hello.clone(), [2; 32]).unwrap();
        let (proof, _, _) = c.answer(&challenge).unwrap();
        s.verify(&proof).unwrap();
        // The recording: the same hello and proof, against a new nonce of the server's.
        let (s, _) = ServerHandshake::challenge_with(segment(keys), hello, [3; 32]).unwrap();
        assert_eq!(
            s.verify(&proof).err().unwrap(),
            AuthError::BadMac { what: "client" }
        );
    }

    #[test]
    fn during_a_rotation_the_previous_secret_is_accepted_and_an_unknown_one_is_not() {
        let old = Keys::single(secret(1));
        let rotated = Keys {
            current: secret(2),
            previous: Some(secret(1)),
        };
        // Old client, rotated server; rotated client, old server; both rotated.
        handshake(coordinator(old.clone()), segment(rotated.clone()), 1, 2).unwrap();
        handshake(coordinator(rotated.clone()), segment(old.clone()), 1, 2).unwrap();
        handshake(coordinator(rotated.clone()), segment(rotated.clone()), 1, 2).unwrap();
        // The chosen key is the newest both hold.
        let (_, hello) = ClientHandshake::start_with(coordinator(rotated.clone()), [1; 32]);
        let (_, ch) = ServerHandshake::challenge_with(segment(rotated), hello, [2; 32]).unwrap();
        assert_eq!(ch.key_id, secret(2).key_id());
        // After the rotation, the old secret alone is refused.
        let done = Keys::single(secret(2));
        let e = handshake(coordinator(old), segment(done), 1, 2)
            .err()
            .unwrap();
        assert!(matches!(e, AuthError::UnknownKey { .. }), "{e}");
        let stranger = Keys::single(secret(9));
        let e = handshake(
            coordinator(stranger),
            segment(Keys::single(secret(2))),
            1,
            2,
        )
        .err()
        .unwrap();
        assert!(matches!(e, AuthError::UnknownKey { .. }), "{e}");
    }

    #[test]
    fn a_tampered_replayed_reordered_or_spliced_frame_fails_its_tag() {
        let keys = Keys::single(secret(1));
        let (mut c, mut s) =
            handshake(coordinator(keys.clone()), segment(keys.clone()), 1, 2).unwrap();
        let t0 = c.send.seal(b"first");
        let t1 = c.send.seal(b"second");
        // Tampered.
        assert_eq!(
            s.recv.clone().open(&t0, b"firsT").err().unwrap(),
            AuthError::BadTag { seq: 0 }
        );
        // Reordered: the second frame first.
        assert!(s.recv.clone().open(&t1, b"second").is_err());
        s.recv.open(&t0, b"first").unwrap();
        // Replayed: the first frame again.
        assert!(s.recv.clone().open(&t0, b"first").is_err());
        s.recv.open(&t1, b"second").unwrap();
        // Reflected: a frame the client sent, sent back to it.
        let t2 = c.send.seal(b"third");
        assert!(c.recv.clone().open(&t2, b"third").is_err());
        // Spliced: a frame from another connection with the same secret.
        let (mut c2, _) = handshake(coordinator(keys.clone()), segment(keys), 5, 6).unwrap();
        let mut fresh = s.recv.clone();
        let other = c2.send.seal(b"third");
        assert!(fresh.open(&other, b"third").is_err());
        s.recv.open(&t2, b"third").unwrap();
    }

    #[test]
    fn the_macs_are_hmac_sha256_over_the_documented_transcript() {
        // Written out from the module's documentation, keyed afresh: what a peer built from
        // that description computes.
        let key = [7; SECRET_BYTES];
        let (id_c, id_s) = (PeerIdentity::Coordinator, PeerIdentity::Segment { dbid: 2 });
        let expected = |label: &[u8]| -> MacBytes {
            let mut mac = HmacSha256::new_from_slice(&key).unwrap();
            mac.update(label);
            mac.update(&PROTOCOL_VERSION.to_le_bytes());
            mac.update(&42u64.to_le_bytes());
            mac.update(&Sha256::digest(key)[..8]);
            mac.update(&[1; NONCE_BYTES]);
            mac.update(&[2; NONCE_BYTES]);
            for id in [id_c, id_s] {
                let enc = super::super::codec::encode(&id);
                mac.update(&(enc.len() as u32).to_le_bytes());
                mac.update(&enc);
            }
            mac.finalize().into_bytes().into()
        };
        let secret = Secret::from_bytes(key);
        assert_eq!(&secret.key_id()[..], &Sha256::digest(key)[..8]);
        let (c, hello) =
            ClientHandshake::start_with(coordinator(Keys::single(secret.clone())), [1; 32]);
        let (s, challenge) =
            ServerHandshake::challenge_with(segment(Keys::single(secret)), hello, [2; 32]).unwrap();
        assert_eq!(challenge.mac_s, expected(LABEL_SERVER));
        let (proof, mut cs, _) = c.answer(&challenge).unwrap();
        assert_eq!(proof.mac_c, expected(LABEL_CLIENT));
        let (mut ss, _) = s.verify(&proof).unwrap();
        // The frame keys: the session key's halves, the client's first; the tags:
        // SipHash-2-4-128 under a frame key over sequence ‖ payload.
        let session_key = expected(LABEL_SESSION);
        let tag = |direction: u8, seq: u64, payload: &[u8]| {
            use std::hash::Hasher;
            let half = if direction == 0 { 0 } else { 16 };
            let key: [u8; 16] = session_key[half..half + 16].try_into().unwrap();
            let mut h = siphasher::sip128::SipHasher24::new_with_key(&key);
            h.write(&seq.to_le_bytes());
            h.write(payload);
            siphasher::sip128::Hasher128::finish128(&h).as_bytes()
        };
        assert_eq!(cs.send.seal(b"request"), tag(0, 0, b"request"));
        assert_eq!(cs.send.seal(b"next"), tag(0, 1, b"next"));
        assert_eq!(ss.send.seal(b"answer"), tag(1, 0, b"answer"));
        ss.recv.open(&tag(0, 0, b"request"), b"request").unwrap();
    }

    #[test]
    fn secrets_round_trip_as_hex_and_never_print() {
        let s = secret(0xab);
        assert_eq!(Secret::from_hex(&format!(" {}\n", s.to_hex())).unwrap(), s);
        assert!(Secret::from_hex("abc").is_err());
        assert!(Secret::from_hex(&"zz".repeat(32)).is_err());
        assert!(!format!("{s:?}").contains("abab"));
    }

    #[test]
    fn a_secret_file_round_trips_with_and_without_a_previous_key() {
        let keys = Keys {
            current: secret(3),
            previous: Some(secret(4)),
        };
        let text = secret_file_text(0xfeed, &keys);
        assert_eq!(parse_secret_file(&text).unwrap(), (0xfeed, keys.clone()));
        let single = Keys::single(secret(3));
        assert_eq!(
            parse_secret_file(&secret_file_text(7, &single)).unwrap(),
            (7, single)
        );
        assert!(parse_secret_file("cluster-id 0000000000000007\n").is_err());
        assert!(parse_secret_file("current abc\ncluster-id 1\n").is_err());
    }

    #[test]
    fn handshake_messages_fit_the_limit() {
        let keys = Keys {
            current: secret(1),
            previous: Some(secret(2)),
        };
        let (c, hello) = ClientHandshake::start_with(
            creds(PeerIdentity::Standby { dbid: u16::MAX }, keys.clone()),
            [0xff; 32],
        );
        let (s, ch) = ServerHandshake::challenge_with(
            creds(PeerIdentity::Segment { dbid: u16::MAX }, keys),
            hello.clone(),
            [0xff; 32],
        )
        .unwrap();
        let _ = s;
        let (proof, _, _) = c.answer(&ch).unwrap();
        for len in [
            super::super::codec::encode(&hello).len(),
            super::super::codec::encode(&ch).len(),
            super::super::codec::encode(&proof).len(),
        ] {
            assert!(len < HANDSHAKE_MAX_BYTES / 2, "{len}");
        }
    }
}
