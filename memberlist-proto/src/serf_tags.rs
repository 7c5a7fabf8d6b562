//! Serf's tag encoding of node metadata, so that a node can carry tags that `serf members`
//! (and Consul and Nomad, whose gossip pools are Serf) show, and so that Serf nodes' tags can
//! be read.
//!
//! Serf (protocol 3 and later, `serf.go` `encodeTags`) writes a node's metadata as the byte
//! `0xFF` followed by a msgpack map of string to string; metadata that does not start with
//! `0xFF` is read by Serf as the single tag `role`. Like every node meta, the whole encoding
//! must fit memberlist's `meta_max_size` (512 bytes by default), which Serf enforces when tags
//! are set ("Encoded length of tags exceeds limit").

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::collections::BTreeMap;

use crate::wire::msgpack::{Reader, Writer};
use crate::wire::DecodeError;

/// The first byte of tag-encoded metadata (Serf's `tagMagicByte`).
pub const TAG_MAGIC: u8 = 0xff;

/// Why tags could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagsError {
    /// The encoding is longer than the metadata limit.
    #[error("encoded length of tags ({len} bytes) exceeds the metadata limit of {limit} bytes")]
    TooLong {
        /// Bytes the encoding takes.
        len: usize,
        /// The limit (`meta_max_size`).
        limit: usize,
    },
}

/// Encodes `tags` as Serf does: `0xFF`, then a msgpack map (keys in sorted order, strings in
/// the raw family Go's codec writes), refused when longer than `limit` bytes.
pub fn encode(tags: &BTreeMap<String, String>, limit: usize) -> Result<Vec<u8>, TagsError> {
    let mut out = vec![TAG_MAGIC];
    let mut w = Writer::new(&mut out);
    w.map_len(u32::try_from(tags.len()).unwrap_or(u32::MAX));
    for (k, v) in tags {
        w.str(k);
        w.str(v);
    }
    if out.len() > limit {
        return Err(TagsError::TooLong { len: out.len(), limit });
    }
    Ok(out)
}

/// Whether `meta` is in Serf's tag encoding (starts with `0xFF`).
pub fn is_tags(meta: &[u8]) -> bool {
    meta.first() == Some(&TAG_MAGIC)
}

/// The tags in tag-encoded metadata; `None` when `meta` is not tag-encoded (Serf would read it
/// as the tag `role`). A map whose entries cannot all be read is an error; bytes after the map
/// are ignored, as Serf's decoder ignores them.
pub fn decode(meta: &[u8]) -> Option<Result<BTreeMap<String, String>, DecodeError>> {
    let body = meta.strip_prefix(&[TAG_MAGIC])?;
    Some(decode_map(body))
}

fn decode_map(body: &[u8]) -> Result<BTreeMap<String, String>, DecodeError> {
    let mut r = Reader::new(body);
    let n = r.map_len("tags")?;
    // Every entry takes at least two bytes: a claimed length beyond that is a lie.
    if u64::from(n) * 2 > body.len() as u64 {
        return Err(DecodeError::Truncated { what: "tags" });
    }
    let mut tags = BTreeMap::new();
    for _ in 0..n {
        let k = r.string("tag name")?;
        let v = r.string("tag value")?;
        tags.insert(k, v);
    }
    Ok(tags)
}

/// Tags as `k=v` pairs joined by commas, in key order.
pub fn display(tags: &BTreeMap<String, String>) -> String {
    tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_bytes_serf_writes() {
        // {"role": "web"} as Serf's encodeTags writes it: 0xff, fixmap 1, fixstr "role", fixstr "web".
        let b = encode(&tags(&[("role", "web")]), 512).unwrap();
        assert_eq!(b, [0xff, 0x81, 0xa4, b'r', b'o', b'l', b'e', 0xa3, b'w', b'e', b'b']);
        assert_eq!(decode(&b).unwrap().unwrap(), tags(&[("role", "web")]));
        // No tags at all is an empty map, still tag-encoded.
        assert_eq!(encode(&BTreeMap::new(), 512).unwrap(), [0xff, 0x80]);
    }

    #[test]
    fn round_trip_and_long_strings() {
        let long = "x".repeat(40); // str16 in Go's raw family, never str8
        let t = tags(&[("dc", "eu-1"), ("port", "8300"), ("build", &long)]);
        let b = encode(&t, 512).unwrap();
        assert!(b.windows(3).any(|w| w == [0xda, 0x00, 40]), "str16 for 40 bytes");
        assert_eq!(decode(&b).unwrap().unwrap(), t);
    }

    #[test]
    fn the_metadata_limit_holds() {
        let t = tags(&[("k", &"v".repeat(600))]);
        match encode(&t, 512) {
            Err(TagsError::TooLong { len, limit: 512 }) => assert!(len > 600),
            other => panic!("expected TooLong, got {other:?}"),
        }
        // Exactly at the limit is fine: 0xff, 0x81, 0xa1 'k', 0xda len16, value.
        let exact = 512 - 7;
        assert_eq!(encode(&tags(&[("k", &"v".repeat(exact))]), 512).unwrap().len(), 512);
    }

    #[test]
    fn decode_trees_show_the_tags() {
        use crate::wire::inspect::{inspect_packet, InspectOptions};
        use crate::wire::{Alive, Message};
        let meta = encode(&tags(&[("role", "web"), ("dc", "eu-1")]), 512).unwrap();
        let alive = Message::Alive(Alive {
            incarnation: 1,
            node: "serf-1".into(),
            addr: vec![10, 0, 0, 1],
            port: 7946,
            meta: Some(meta),
            vsn: crate::Vsn::new(2, 2, 5, 5),
        });
        let tree = inspect_packet(&alive.encode(), &InspectOptions::default()).to_json();
        let body = &tree[0]["body"];
        assert_eq!(body["Tags"], serde_json::json!({"dc": "eu-1", "role": "web"}), "{tree}");
        // Other metadata gets no Tags.
        let plain = Message::Alive(Alive {
            incarnation: 1,
            node: "n".into(),
            addr: vec![10, 0, 0, 1],
            port: 7946,
            meta: Some(b"role=web".to_vec()),
            vsn: crate::Vsn::new(2, 0, 0, 0),
        });
        let tree = inspect_packet(&plain.encode(), &InspectOptions::default()).to_json();
        assert!(tree[0]["body"].get("Tags").is_none(), "{tree}");
    }

    #[test]
    fn other_metadata_is_not_tags() {
        assert!(decode(b"role=web").is_none());
        assert!(decode(b"").is_none());
        assert!(!is_tags(b"web") && is_tags(&[0xff, 0x80]));
    }

    #[test]
    fn hostile_encodings_are_errors_not_panics() {
        // A map claiming 2^32-1 entries in 5 bytes.
        assert!(decode(&[0xff, 0xdf, 0xff, 0xff, 0xff, 0xff]).unwrap().is_err());
        // A truncated value, a non-string key, invalid UTF-8, not a map at all.
        assert!(decode(&[0xff, 0x81, 0xa1, b'k', 0xa3, b'v']).unwrap().is_err());
        assert!(decode(&[0xff, 0x81, 0x01, 0xa1, b'v']).unwrap().is_err());
        assert!(decode(&[0xff, 0x81, 0xa1, 0xc3, 0xa1, b'v']).unwrap().is_err());
        assert!(decode(&[0xff, 0x91, 0xa1, b'k']).unwrap().is_err());
        assert!(decode(&[0xff]).unwrap().is_err());
        // Every byte string up to 4 bytes after the magic byte: never a panic.
        for len in 0..=4usize {
            for seed in 0..(1u32 << (len * 8).min(16)) {
                let body: Vec<u8> = (0..len).map(|i| (seed >> ((i * 5) % 16)) as u8).collect();
                let mut meta = vec![0xff];
                meta.extend(body);
                let _ = decode(&meta);
            }
        }
    }
}
