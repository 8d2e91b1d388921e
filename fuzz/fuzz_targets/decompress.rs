//! `Content-Encoding` bodies: `loupe_collector::decompress` with gzip and zstd on arbitrary
//! bytes, and on the input compressed for real.
//!
//! Checks: output never exceeds the limit (a bomb is an error, not an allocation); the limit is
//! monotone (what decodes under 1 MiB decodes the same under a smaller limit that it fits, and is
//! `TooLarge` under one it does not); identity borrows the body unchanged; compressing the input
//! and decompressing gives it back, and one byte less of limit refuses it.

#![no_main]

use std::borrow::Cow;
use std::io::Write;

use libfuzzer_sys::fuzz_target;
use loupe_collector::{Encoding, Error, decompress};
use loupe_event::BodyError;

const LIMIT: usize = 1 << 20;
const SMALL: usize = 64;

fuzz_target!(|body: &[u8]| {
    match decompress(body, Encoding::Identity, LIMIT) {
        Ok(Cow::Borrowed(b)) => assert_eq!(b, body),
        other => panic!("identity must borrow: {other:?}"),
    }
    for encoding in [Encoding::Gzip, Encoding::Zstd] {
        arbitrary_bytes(body, encoding);
        round_trip(body, encoding);
    }
});

fn arbitrary_bytes(body: &[u8], encoding: Encoding) {
    let full = decompress(body, encoding, LIMIT);
    if let Ok(out) = &full {
        assert!(out.len() <= LIMIT);
    }
    let small = decompress(body, encoding, SMALL);
    match (&full, &small) {
        (Ok(out), _) if out.len() <= SMALL => {
            assert_eq!(small.as_deref().ok(), Some(&out[..]), "{encoding:?}")
        }
        (Ok(_), _) => assert!(too_large(&small, SMALL), "{encoding:?}: {small:?}"),
        (Err(_), Ok(out)) => panic!(
            "{encoding:?}: {} bytes under {SMALL} but not {LIMIT}",
            out.len()
        ),
        (Err(_), Err(_)) => {}
    }
}

fn round_trip(body: &[u8], encoding: Encoding) {
    let compressed = match encoding {
        Encoding::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(body).unwrap();
            gz.finish().unwrap()
        }
        Encoding::Zstd => zstd::encode_all(body, 1).unwrap(),
        Encoding::Identity => unreachable!(),
    };
    let out = decompress(&compressed, encoding, body.len())
        .unwrap_or_else(|e| panic!("{encoding:?} round trip: {e}"));
    assert_eq!(&out[..], body, "{encoding:?}");
    if let Some(limit) = body.len().checked_sub(1) {
        let r = decompress(&compressed, encoding, limit);
        assert!(too_large(&r, limit), "{encoding:?}: {r:?}");
    }
}

fn too_large(r: &Result<Cow<'_, [u8]>, Error>, limit: usize) -> bool {
    matches!(r, Err(Error::Body(BodyError::TooLarge { limit: l, .. })) if *l == limit)
}
