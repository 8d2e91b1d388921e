//! Binary encoding of validated events in WAL records (layout in the module doc of `wal`).

use loupe_event::{Event, ValidEvent, Value};

use crate::error::WalError;

const TAG_NULL: u8 = 0;
const TAG_FALSE: u8 = 1;
const TAG_TRUE: u8 = 2;
const TAG_INT: u8 = 3;
const TAG_FLOAT: u8 = 4;
const TAG_STR: u8 = 5;

/// Appends the payload for `events` to `out`.
#[cfg(test)]
pub(crate) fn encode_events<'a>(
    events: impl ExactSizeIterator<Item = &'a ValidEvent>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(&(events.len() as u32).to_le_bytes());
    for e in events {
        encode_event(e, out);
    }
}

/// Appends one event (without the payload's leading count) to `out`.
pub(crate) fn encode_event(e: &ValidEvent, out: &mut Vec<u8>) {
    {
        out.extend_from_slice(&e.timestamp_us().to_le_bytes());
        out.extend_from_slice(&(e.fields().len() as u32).to_le_bytes());
        for (name, value) in e.fields() {
            // Names are bounded by validation (max_name_bytes, itself capped below 64 KiB).
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            match value {
                Value::Null => out.push(TAG_NULL),
                Value::Bool(false) => out.push(TAG_FALSE),
                Value::Bool(true) => out.push(TAG_TRUE),
                Value::Int(i) => {
                    out.push(TAG_INT);
                    out.extend_from_slice(&i.to_le_bytes());
                }
                Value::Float(f) => {
                    out.push(TAG_FLOAT);
                    out.extend_from_slice(&f.to_le_bytes());
                }
                Value::Str(s) => {
                    out.push(TAG_STR);
                    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
            }
        }
    }
}

/// Decodes a payload written by [`encode_events`].
pub(crate) fn decode_events(payload: &[u8]) -> Result<Vec<ValidEvent>, WalError> {
    let mut r = Reader { buf: payload };
    let count = r.u32()? as usize;
    // Each event takes at least 12 bytes, so a corrupt count cannot make us allocate wildly.
    let mut out = Vec::with_capacity(count.min(payload.len() / 12));
    for _ in 0..count {
        let ts = r.i64()?;
        let nfields = r.u32()? as usize;
        let mut event = Event::new();
        for _ in 0..nfields {
            let len = r.u16()? as usize;
            let name = r.str(len)?;
            let value = match r.u8()? {
                TAG_NULL => Value::Null,
                TAG_FALSE => Value::Bool(false),
                TAG_TRUE => Value::Bool(true),
                TAG_INT => Value::Int(r.i64()?),
                TAG_FLOAT => Value::Float(f64::from_le_bytes(r.take(8)?.try_into().unwrap())),
                TAG_STR => {
                    let len = r.u32()? as usize;
                    Value::Str(r.str(len)?)
                }
                tag => return Err(WalError::Decode(format!("unknown value tag {tag}"))),
            };
            event.insert(name, value);
        }
        out.push(ValidEvent::from_stored_parts(ts, event));
    }
    if !r.buf.is_empty() {
        return Err(WalError::Decode(format!(
            "{} bytes after the last event",
            r.buf.len()
        )));
    }
    Ok(out)
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WalError> {
        if self.buf.len() < n {
            return Err(WalError::Decode(format!(
                "wanted {n} bytes, {} left",
                self.buf.len()
            )));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, WalError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, WalError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, WalError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn i64(&mut self) -> Result<i64, WalError> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn str(&mut self, n: usize) -> Result<String, WalError> {
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| WalError::Decode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_event::Limits;

    fn sample() -> Vec<ValidEvent> {
        vec![
            Event::new()
                .with("s", "héllo")
                .with("i", i64::MIN)
                .with("f", -0.5)
                .with("t", true)
                .with("b", false)
                .with("n", Value::Null)
                .validate(&Limits::default(), 123)
                .unwrap(),
            Event::new().validate(&Limits::default(), -7).unwrap(),
        ]
    }

    #[test]
    fn round_trips_every_value_kind() {
        let events = sample();
        let mut buf = Vec::new();
        encode_events(events.iter(), &mut buf);
        assert_eq!(decode_events(&buf).unwrap(), events);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        encode_events(sample().iter(), &mut buf);
        for n in 0..buf.len() {
            assert!(decode_events(&buf[..n]).is_err(), "prefix of {n} bytes");
        }
        let mut extra = buf.clone();
        extra.push(0);
        assert!(decode_events(&extra).is_err());
    }

    #[test]
    fn a_huge_count_does_not_allocate_wildly() {
        let buf = u32::MAX.to_le_bytes();
        assert!(decode_events(&buf).is_err());
    }
}
