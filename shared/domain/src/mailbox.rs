//! Email addresses and `From` mailboxes as Amazon SES v2 can send them: a bare address, a plain
//! display name (`Tienda Sol <hola@tiendasol.example>`) or an RFC 5322 quoted one, which may
//! hold commas, angle brackets and backslash escapes (`"Tienda, Sol" <hola@tiendasol.example>`).
//!
//! SES v2 accepts only ASCII local parts and domains in ASCII (punycode) form: a domain that is
//! not ASCII is converted with IDNA (UTS #46, as browsers do); a local part that is not ASCII
//! (SMTPUTF8) cannot be sent and is refused.

/// Longest address accepted, in bytes (RFC 5321's path limit less the angle brackets).
pub const MAX_ADDRESS_BYTES: usize = 254;
/// Longest display name accepted, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 120;

/// Why text is not an address or mailbox SES can send to or from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not one address: no `@`, no dotted domain, spaces, quotes or control characters.
    #[error("is not an email address")]
    NotAnAddress,
    /// The part before `@` is not ASCII: Amazon SES cannot send to or from it.
    #[error(
        "has a part before the @ that is not plain ASCII, which Amazon SES cannot send to or from"
    )]
    NonAsciiLocalPart,
    /// The domain is not a host name mail can go to: a label with characters other than
    /// letters, digits and inner hyphens, or a non-ASCII name IDNA refuses.
    #[error(
        "has a domain that mail cannot go to (only letters, digits and inner hyphens between \
         its dots, or a valid internationalised domain name)"
    )]
    InvalidDomain,
    /// The display name cannot be read (an unclosed quote, a stray quote or angle bracket, a
    /// control character) or is too long.
    #[error(
        "has a display name that cannot be read: quote a name holding quotes or angle brackets \
         (\"Name, Inc.\" <name@domain>), at most {MAX_DISPLAY_NAME_CHARS} characters, on one line"
    )]
    InvalidDisplayName,
}

/// A mailbox: an optional display name (unquoted, unescaped) and an ASCII address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The display name as the reader sees it (quotes and escapes removed), when there is one.
    pub name: Option<String>,
    /// The address, ASCII (its domain in punycode when it was not ASCII).
    pub address: String,
}

impl Mailbox {
    /// Parses `addr`, `Name <addr>` or `"Quoted, Name" <addr>`, converting the address with
    /// [`sendable_address`].
    pub fn parse(text: &str) -> Result<Mailbox, AddressError> {
        let text = text.trim();
        let Some((name, address)) = split_angle_addr(text) else {
            return Ok(Mailbox {
                name: None,
                address: sendable_address(text)?,
            });
        };
        let name = display_name(name)?;
        Ok(Mailbox {
            name,
            address: sendable_address(address)?,
        })
    }
}

/// Whether `c` is special in an RFC 5322 phrase (an unquoted display name).
pub fn is_phrase_special(c: char) -> bool {
    "()<>[]:;@\\,.\"".contains(c)
}

impl std::fmt::Display for Mailbox {
    /// The mailbox as stored and shown: the bare address, or the name (quoted and escaped when it
    /// holds a special character; left in UTF-8) and the address in angle brackets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            None => f.write_str(&self.address),
            Some(name) if name.contains(is_phrase_special) => {
                write!(f, "{} <{}>", quoted_string(name), self.address)
            }
            Some(name) => write!(f, "{name} <{}>", self.address),
        }
    }
}

/// `s` as an RFC 5322 quoted string: in double quotes, `"` and `\` escaped with a backslash.
pub fn quoted_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The name part and the address of `Name <addr>` (the address in the last angle brackets,
/// which close the text), or None for a bare address.
fn split_angle_addr(text: &str) -> Option<(&str, &str)> {
    let inner = text.strip_suffix('>')?;
    let open = inner.rfind('<')?;
    Some((inner.get(..open)?, inner.get(open + 1..)?.trim()))
}

/// The display name before `<addr>`: empty (None), one quoted string (unescaped), or plain text
/// without quotes or angle brackets.
fn display_name(raw: &str) -> Result<Option<String>, AddressError> {
    let raw = raw.trim();
    if raw.chars().any(char::is_control) {
        return Err(AddressError::InvalidDisplayName);
    }
    let name = match raw.strip_prefix('"') {
        Some(rest) => {
            let mut name = String::with_capacity(rest.len());
            let mut chars = rest.chars();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => name.push(chars.next().ok_or(AddressError::InvalidDisplayName)?),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => name.push(c),
                }
            }
            // One quoted string: nothing may follow its closing quote.
            if !closed || !chars.as_str().trim().is_empty() {
                return Err(AddressError::InvalidDisplayName);
            }
            name
        }
        None if raw.contains(['"', '<', '>']) => return Err(AddressError::InvalidDisplayName),
        None => raw.to_string(),
    };
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(AddressError::InvalidDisplayName);
    }
    Ok((!name.is_empty()).then_some(name))
}

/// `address` as SES v2 can send it: checked to be one address with an ASCII local part, its
/// domain converted to punycode when it is not ASCII (an ASCII domain is kept as written).
pub fn sendable_address(address: &str) -> Result<String, AddressError> {
    let address = address.trim();
    if !plausible_email(address) {
        return Err(AddressError::NotAnAddress);
    }
    let (local, domain) = address.rsplit_once('@').ok_or(AddressError::NotAnAddress)?;
    if !local.is_ascii() {
        return Err(AddressError::NonAsciiLocalPart);
    }
    if domain.is_ascii() {
        if !host_name(domain) {
            return Err(AddressError::InvalidDomain);
        }
        return Ok(address.to_string());
    }
    let ascii = idna::domain_to_ascii_strict(domain).map_err(|_| AddressError::InvalidDomain)?;
    let converted = format!("{local}@{ascii}");
    if !plausible_email(&converted) || !host_name(&ascii) {
        return Err(AddressError::InvalidDomain);
    }
    Ok(converted)
}

/// Whether `domain` is a host name: dot-separated labels of 1 to 63 letters, digits and inner
/// hyphens (what DNS can route mail to), at most 253 characters.
fn host_name(domain: &str) -> bool {
    domain.len() <= 253
        && domain.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// One respondent's id as Sondeo keeps it: an email address lower-cased with its domain in
/// punycode (`Ana@Exämple.com` is `ana@xn--exmple-cua.com`), so that one person is one
/// respondent and one suppression-list entry however their address was typed; any other id
/// trimmed.
pub fn canonical_respondent(id: &str) -> String {
    let id = id.trim();
    let Some((local, domain)) = id.rsplit_once('@') else {
        return id.to_string();
    };
    // `x.com.` is `x.com` (the root's dot, which mail addresses leave out).
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    let domain = if domain.is_ascii() {
        domain.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(domain).unwrap_or_else(|_| domain.to_lowercase())
    };
    format!("{}@{domain}", local.to_lowercase())
}

/// Whether `s` looks like one email address (a local part, one `@`, a dotted domain; no spaces,
/// angle brackets, quotes or control characters; at most [`MAX_ADDRESS_BYTES`]).
pub fn plausible_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && s.len() <= MAX_ADDRESS_BYTES
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && s.chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !"<>\",;\\()[]".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (Option<String>, String) {
        let m = Mailbox::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        (m.name, m.address)
    }

    fn named(name: &str, address: &str) -> (Option<String>, String) {
        (Some(name.into()), address.into())
    }

    #[test]
    fn bare_plain_and_quoted_mailboxes_are_read() {
        assert_eq!(parsed(" a@x.example "), (None, "a@x.example".into()));
        assert_eq!(
            parsed("Tienda Sol <hola@tiendasol.example>"),
            named("Tienda Sol", "hola@tiendasol.example")
        );
        assert_eq!(
            parsed("\"Tienda, Sol\" <a@x.example>"),
            named("Tienda, Sol", "a@x.example")
        );
        assert_eq!(
            parsed(r#""Sol \"Grande\" <and \\ more>" <a@x.example>"#),
            named(r#"Sol "Grande" <and \ more>"#, "a@x.example")
        );
        assert_eq!(parsed("<a@x.example>"), (None, "a@x.example".into()));
        assert_eq!(parsed("\"\" <a@x.example>"), (None, "a@x.example".into()));
        assert_eq!(
            parsed("Tienda Ñandú <a@x.example>"),
            named("Tienda Ñandú", "a@x.example")
        );
    }

    #[test]
    fn what_ses_cannot_send_is_refused_with_its_reason() {
        for (text, why) in [
            ("josé@x.example", AddressError::NonAsciiLocalPart),
            ("Sol <josé@x.example>", AddressError::NonAsciiLocalPart),
            ("a@b", AddressError::NotAnAddress),
            ("a b@c.d", AddressError::NotAnAddress),
            ("x <a@b.c", AddressError::NotAnAddress),
            ("a@b.c\r\nBcc: e@f.g", AddressError::NotAnAddress),
            ("\"Sol <a@b.c>", AddressError::InvalidDisplayName),
            ("\"Sol\" x <a@b.c>", AddressError::InvalidDisplayName),
            ("Sol \"x\" <a@b.c>", AddressError::InvalidDisplayName),
            ("So<l <a@b.c>", AddressError::InvalidDisplayName),
            (
                "Sol\r\nBcc: e@f.g <a@b.c>",
                AddressError::InvalidDisplayName,
            ),
            ("a@exa_mple\u{0}.com", AddressError::NotAnAddress),
        ] {
            assert_eq!(Mailbox::parse(text), Err(why), "{text:?}");
        }
    }

    #[test]
    fn a_domain_that_is_not_ascii_becomes_punycode_and_an_ascii_one_is_kept() {
        assert_eq!(
            sendable_address("ana@exämple.com"),
            Ok("ana@xn--exmple-cua.com".into())
        );
        assert_eq!(
            sendable_address("Ana@Example.COM"),
            Ok("Ana@Example.COM".into())
        );
        assert_eq!(
            sendable_address("ana@ä_b.com"),
            Err(AddressError::InvalidDomain)
        );
        assert_eq!(
            Mailbox::parse("Tienda <hola@tiendasöl.example>").map(|m| m.to_string()),
            Ok("Tienda <hola@xn--tiendasl-t4a.example>".into())
        );
    }

    #[test]
    fn domains_mail_cannot_reach_are_refused() {
        for bad in [
            "eve@exa_mple.com",
            "gil@-bad-.com",
            "a@x..com",
            "a@x.-com",
            "a@exa mple.com",
        ] {
            assert!(sendable_address(bad).is_err(), "{bad}");
        }
        for good in ["a@x-y.example", "a@mail.x1.example", "A.B+tag@Example.COM"] {
            assert_eq!(sendable_address(good).as_deref(), Ok(good), "{good}");
        }
    }

    #[test]
    fn one_person_is_one_respondent_however_the_address_is_typed() {
        let canonical = "ana2@xn--exmple-cua.com";
        for typed in [
            "ana2@xn--exmple-cua.com",
            "Ana2@Exämple.com",
            " ANA2@EXÄMPLE.COM ",
            "ana2@XN--EXMPLE-CUA.com",
            "ana2@exämple.com.",
        ] {
            assert_eq!(canonical_respondent(typed), canonical, "{typed}");
        }
        assert_eq!(canonical_respondent(" cust-42 "), "cust-42");
        assert_eq!(canonical_respondent("CUST-42"), "CUST-42");
    }

    #[test]
    fn a_mailbox_is_shown_quoted_only_when_its_name_needs_it() {
        for (text, shown) in [
            ("a@x.example", "a@x.example"),
            ("Tienda Sol <a@x.example>", "Tienda Sol <a@x.example>"),
            ("\"Tienda Sol\" <a@x.example>", "Tienda Sol <a@x.example>"),
            (
                "\"Tienda, Sol\" <a@x.example>",
                "\"Tienda, Sol\" <a@x.example>",
            ),
            (r#""a \"b\"" <a@x.example>"#, r#""a \"b\"" <a@x.example>"#),
        ] {
            let m = Mailbox::parse(text).unwrap();
            assert_eq!(m.to_string(), shown);
            assert_eq!(
                Mailbox::parse(shown),
                Ok(m),
                "shown form reads back the same"
            );
        }
    }
}
