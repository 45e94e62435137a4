//! Percent-decoding (RFC 3986 section 2.1) for the places that take a value apart themselves:
//! the password in a store URL, which is masked in logs, and the parts of a Basic client
//! credential (RFC 6749 section 2.3.1). Forms and queries go through `serde_urlencoded`.

/// The bytes `text` stands for once its `%XX` escapes are decoded; a `%` not followed by two
/// hex digits (RFC 3986 `HEXDIG`; a sign such as `%+1` is not one) stands for itself, and `+`
/// is left as it is.
pub(crate) fn decoded_bytes(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .map(|hex| hex_value(hex[0]) << 4 | hex_value(hex[1]));
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// The value of one ASCII hex digit (`0-9`, `a-f`, `A-F`); 0 for anything else, which callers
/// have already excluded.
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::decoded_bytes;

    #[test]
    fn escapes_are_decoded_and_anything_else_is_kept() {
        assert_eq!(decoded_bytes("a%41%62c"), b"aAbc");
        assert_eq!(decoded_bytes("%c3%bc"), "ü".as_bytes());
        assert_eq!(decoded_bytes("%FF"), [0xFF]);
        assert_eq!(decoded_bytes("a+b"), b"a+b");
        assert_eq!(decoded_bytes("%%41"), b"%A");
    }

    #[test]
    fn a_percent_without_two_hex_digits_stands_for_itself() {
        for text in ["%", "%4", "a%", "%zz", "%4g", "%+1", "%-1", "%ü"] {
            assert_eq!(decoded_bytes(text), text.as_bytes(), "{text:?}");
        }
    }
}
