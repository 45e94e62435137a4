//! What a scope may hold, shared by `scopes = ...` of `#[required]`/`#[optional]` and by
//! `#[derive(Scopes)]`.

/// The advice given with a character that is refused in a scope.
const ALLOWED: &str = "use printable ASCII other than space, `,`, `\"` and `\\`";

/// Whether `c` may appear in a scope: RFC 6749's `%x21 / %x23-5B / %x5D-7E`, less the comma.
/// The RFC allows a comma, but a scope holding one is almost always a list written with the
/// wrong separator (`"admin, read"`), which would require the scope `admin,`.
fn is_scope_char(c: char) -> bool {
    c != ',' && (c == '!' || ('#'..='[').contains(&c) || (']'..='~').contains(&c))
}

/// The scopes that `value`, written with commas, was meant to list: `"admin, read"` gives
/// `["admin", "read"]`.
pub(crate) fn split_at_commas(value: &str) -> Vec<&str> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|word| !word.is_empty())
        .collect()
}

/// What is wrong with `value` when it holds a character a scope may not: the message the
/// macros give, after their own name.
pub(crate) fn bad_character(value: &str) -> Option<String> {
    let bad = value.chars().find(|c| !is_scope_char(*c))?;
    Some(format!(
        "scope `{}` contains {}, which RFC 6749 does not allow in a scope; {ALLOWED}",
        value.escape_debug(),
        describe(bad),
    ))
}

/// `c` as a message names it.
fn describe(c: char) -> String {
    match c {
        '"' => "a double quote".to_owned(),
        '\\' => "a backslash".to_owned(),
        c if c.is_control() => format!("the control character `{}`", c.escape_default()),
        c => format!("`{c}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::{is_scope_char, split_at_commas};

    #[test]
    fn a_comma_is_not_a_scope_character() {
        assert!(!is_scope_char(','));
        assert!(is_scope_char(':'));
        assert!(is_scope_char('+'));
        assert!(!is_scope_char(' '));
        assert!(!is_scope_char('"'));
        assert!(!is_scope_char('\\'));
    }

    #[test]
    fn a_list_written_with_commas_splits_into_its_scopes() {
        assert_eq!(split_at_commas("admin, read"), ["admin", "read"]);
        assert_eq!(split_at_commas("admin,read,"), ["admin", "read"]);
        assert!(split_at_commas(" , ").is_empty());
    }
}
