//! The values of literal nodes, read from their text: integers (decimal, hex, octal, binary,
//! with `_`), floats, booleans, and plain strings (one literal, no escapes; `r`/`u` prefixes).
//! Anything else (complex numbers, byte strings, f-strings, implicit concatenation, escapes,
//! integers beyond 64 bits) has no value here.

/// A literal's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A float.
    Float(f64),
    /// `True` or `False`.
    Bool(bool),
    /// A plain string's contents.
    Str(String),
}

/// The value of a node of `kind` (`Number`, `Boolean`, `String`) with source `text`.
pub fn literal(kind: &str, text: &str) -> Option<Literal> {
    match kind {
        "Number" => number(text),
        "Boolean" => Some(Literal::Bool(text == "True")),
        "String" => string(text).map(Literal::Str),
        _ => None,
    }
}

fn number(text: &str) -> Option<Literal> {
    let digits = text.replace('_', "").to_ascii_lowercase();
    let radix = [("0x", 16), ("0o", 8), ("0b", 2)].into_iter().find(|(p, _)| digits.starts_with(p));
    if let Some((prefix, radix)) = radix {
        return i64::from_str_radix(&digits[prefix.len()..], radix).ok().map(Literal::Int);
    }
    if digits.ends_with('j') {
        return None;
    }
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        return digits.parse::<i64>().ok().map(Literal::Int);
    }
    digits.parse::<f64>().ok().map(Literal::Float)
}

fn string(text: &str) -> Option<String> {
    let body = text.strip_prefix(['r', 'R', 'u', 'U']).unwrap_or(text);
    let raw = body.len() != text.len() && text.starts_with(['r', 'R']);
    for quote in ["\"\"\"", "'''", "\"", "'"] {
        if let Some(inner) = body.strip_prefix(quote).and_then(|b| b.strip_suffix(quote)) {
            if inner.contains(quote) || (!raw && inner.contains('\\')) {
                return None;
            }
            return Some(inner.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_in_every_base_and_with_underscores() {
        assert_eq!(literal("Number", "1_000"), Some(Literal::Int(1000)));
        assert_eq!(literal("Number", "0x1F"), Some(Literal::Int(31)));
        assert_eq!(literal("Number", "0o17"), Some(Literal::Int(15)));
        assert_eq!(literal("Number", "0b101"), Some(Literal::Int(5)));
        assert_eq!(literal("Number", "2.5e3"), Some(Literal::Float(2500.0)));
        assert_eq!(literal("Number", "3j"), None);
        assert_eq!(literal("Number", "99999999999999999999"), None);
    }

    #[test]
    fn plain_strings_have_a_value_and_others_do_not() {
        assert_eq!(literal("String", "'abc'"), Some(Literal::Str("abc".into())));
        assert_eq!(literal("String", "\"\"\"doc\"\"\""), Some(Literal::Str("doc".into())));
        assert_eq!(literal("String", "r'\\d+'"), Some(Literal::Str("\\d+".into())));
        assert_eq!(literal("String", "'a\\n'"), None);
        assert_eq!(literal("String", "'a' 'b'"), None);
        assert_eq!(literal("Boolean", "False"), Some(Literal::Bool(false)));
        assert_eq!(literal("Name", "x"), None);
    }
}
