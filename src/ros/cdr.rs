//! Decoding of the two input messages from their raw CDR bytes. r2r's typed subscriptions turn
//! a string with invalid UTF-8 into "" silently; reading the bytes ourselves lets the node say
//! exactly what was wrong with such an input instead of ignoring it.

/// A string field as it arrived: valid text, or the lossy text plus what was wrong.
pub type Field = Result<String, (String, String)>;

/// A cursor over a CDR-encoded message (with its 4-byte encapsulation header).
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    little_endian: bool,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Result<Reader<'a>, String> {
        if bytes.len() < 4 {
            return Err(format!("message of {} bytes is too short for CDR", bytes.len()));
        }
        // encapsulation kind: 0x0000/0x0002 big endian, 0x0001/0x0003 little endian
        Ok(Reader { bytes, pos: 4, little_endian: bytes[1] & 1 == 1 })
    }

    fn u32(&mut self) -> Result<u32, String> {
        let misalign = (self.pos - 4) % 4;
        if misalign != 0 {
            self.pos += 4 - misalign;
        }
        let raw: [u8; 4] = self
            .bytes
            .get(self.pos..self.pos + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or("message ends inside a string length")?;
        self.pos += 4;
        Ok(if self.little_endian { u32::from_le_bytes(raw) } else { u32::from_be_bytes(raw) })
    }

    /// A CDR string: u32 length including the terminating NUL, then the bytes.
    fn string(&mut self) -> Result<Field, String> {
        let len = self.u32()? as usize;
        let end = self.pos.checked_add(len).filter(|&e| e <= self.bytes.len()).ok_or("string runs past the message end")?;
        let mut raw = &self.bytes[self.pos..end];
        self.pos = end;
        if let Some((&0, rest)) = raw.split_last() {
            raw = rest;
        }
        Ok(match std::str::from_utf8(raw) {
            Ok(text) => Ok(text.to_string()),
            Err(e) => Err((
                String::from_utf8_lossy(raw).into_owned(),
                format!("text is not valid UTF-8 (invalid byte at offset {})", e.valid_up_to()),
            )),
        })
    }
}

impl Reader<'_> {
    /// A CDR bool (one byte, no alignment); a message that ends before it reads as `false`.
    fn bool_or_false(&mut self) -> bool {
        let value = self.bytes.get(self.pos).is_some_and(|&b| b != 0);
        self.pos += 1;
        value
    }
}

/// `std_msgs/msg/String`: its `data`.
pub fn string_msg(bytes: &[u8]) -> Result<Field, String> {
    Reader::new(bytes)?.string()
}

/// `ollama_bridge_msgs/msg/Utterance`: (`session_id`, `text`, `attach_image`).
pub fn utterance(bytes: &[u8]) -> Result<(Field, Field, bool), String> {
    let mut reader = Reader::new(bytes)?;
    Ok((reader.string()?, reader.string()?, reader.bool_or_false()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cdr_le(strings: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![0, 1, 0, 0];
        for s in strings {
            while (out.len() - 4) % 4 != 0 {
                out.push(0);
            }
            out.extend_from_slice(&(s.len() as u32 + 1).to_le_bytes());
            out.extend_from_slice(s);
            out.push(0);
        }
        out
    }

    #[test]
    fn decodes_valid_and_reports_invalid_utf8() {
        assert_eq!(string_msg(&cdr_le(&[b"hello \xc3\xa9"])).unwrap(), Ok("hello é".to_string()));
        let (lossy, why) = string_msg(&cdr_le(&[b"bad \xff byte"])).unwrap().unwrap_err();
        assert_eq!(lossy, "bad \u{fffd} byte");
        assert!(why.contains("offset 4"));
        let (session, text, attach) = utterance(&cdr_le(&[b"kitchen", b"hi"])).unwrap();
        assert_eq!((session.unwrap(), text.unwrap(), attach), ("kitchen".to_string(), "hi".to_string(), false));
        let mut with_image = cdr_le(&[b"kitchen", b"what do you see?"]);
        with_image.push(1);
        assert!(utterance(&with_image).unwrap().2, "attach_image follows the text");
    }

    #[test]
    fn big_endian_and_truncated_messages() {
        let mut be = vec![0, 0, 0, 0];
        be.extend_from_slice(&3u32.to_be_bytes());
        be.extend_from_slice(b"ok\0");
        assert_eq!(string_msg(&be).unwrap(), Ok("ok".to_string()));
        assert!(string_msg(&[0, 1]).is_err());
        let mut cut = cdr_le(&[b"hello"]);
        cut.truncate(10);
        assert!(string_msg(&cut).is_err());
    }
}
