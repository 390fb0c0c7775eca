//! The byte encoding of everything the cluster sends or writes in frames: postcard. Network
//! frames ([`super::net`]) and WAL records (`wal::record`) both encode and decode through here,
//! so the encoding is chosen in one place, below every message type.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Appends the postcard encoding of `value` to `out`, without an intermediate buffer.
pub(crate) fn encode_append<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    /// A postcard output that appends to a borrowed vector, slices at once.
    struct Append<'a>(&'a mut Vec<u8>);
    impl postcard::ser_flavors::Flavor for Append<'_> {
        type Output = ();
        fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
            self.0.extend_from_slice(data);
            Ok(())
        }
        fn try_push(&mut self, data: u8) -> postcard::Result<()> {
            self.0.push(data);
            Ok(())
        }
        fn finalize(self) -> postcard::Result<()> {
            Ok(())
        }
    }
    // Appending to a vector cannot fail; only a type that refuses to serialize could, and the
    // encoded types are plain data.
    postcard::serialize_with_flavor(value, Append(out)).expect("plain data always encodes");
}

/// The postcard encoding of `value`.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_append(value, &mut out);
    out
}

/// Bytes that do not hold an encoded value of the type asked for.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct DecodeError(#[from] postcard::Error);

/// Decodes one value from all of `bytes` (as [`encode_append`] wrote it).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    Ok(postcard::from_bytes(bytes)?)
}
