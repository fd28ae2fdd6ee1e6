//! Mailbox addresses, parsed strictly.
//!
//! A stored address ends up in places that interpret text: Exchange
//! PowerShell in the setup view, the `MAIL FROM` and SASL `user=` of IMAP and
//! SMTP sessions (ours and the integrators'), the access-token answer. So an
//! address is a bare `local@domain` and nothing else: no display text
//! (`Name <a@b.c>`), no quoted local part, no domain literal, and a local
//! part of conservative ASCII (RFC 5322 `atext` without `$`, `'` and the
//! backtick, in a dot-atom). Internationalised domains are accepted in their
//! punycode form (`xn--...`) only.

use super::Invalid;
use crate::codes::Code;

/// Characters a local part may hold besides ASCII letters and digits:
/// RFC 5322 `atext` without `$`, `'` and the backtick, which shells and
/// PowerShell interpret, plus the dot of a dot-atom.
const LOCAL_SPECIALS: &str = "!#%&*+-/=?^_{|}~.";

/// A mailbox address, stored in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let trimmed = input.trim();
        let invalid = |why: &str| {
            Invalid::new(
                Code::InvalidEmail,
                format!("`{}` is not a mailbox address: {why}", shown(trimmed)),
            )
        };
        if trimmed.is_empty() {
            return Err(invalid("it is empty"));
        }
        if trimmed.len() > 254 {
            return Err(invalid("it is longer than 254 characters"));
        }
        let value = trimmed.to_ascii_lowercase();
        let (local, domain) = value
            .split_once('@')
            .ok_or_else(|| invalid("it has no @"))?;
        if domain.contains('@') {
            return Err(invalid(
                "give the bare address (local@domain), without a display name",
            ));
        }
        check_local(local).map_err(&invalid)?;
        check_domain(domain).map_err(&invalid)?;
        // The RFC grammar as a well-kept crate reads it, as a second opinion
        // (never looser than ours: no display text, no domain literals).
        let options = email_address::Options {
            allow_display_text: false,
            allow_domain_literal: false,
            minimum_sub_domains: 2,
            ..Default::default()
        };
        if email_address::EmailAddress::parse_with_options(&value, options).is_err() {
            return Err(invalid("it is not a valid address"));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_local(local: &str) -> Result<(), &'static str> {
    if local.is_empty() {
        return Err("the part before @ is empty");
    }
    if local.len() > 64 {
        return Err("the part before @ is longer than 64 characters");
    }
    if !local
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || LOCAL_SPECIALS.contains(c))
    {
        return Err(
            "the part before @ may hold only letters, digits and !#%&*+-/=?^_{|}~. (no spaces, quotes, $, backticks or <>)",
        );
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("the part before @ has a dot at its start or end, or two in a row");
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), &'static str> {
    if domain.starts_with('[') {
        return Err("mailboxes live on a DNS domain, not an IP address");
    }
    if !domain.is_ascii() {
        return Err(
            "give an internationalised domain in its punycode form (xn--...), as Exchange shows it",
        );
    }
    if domain.len() > 253 {
        return Err("the domain is longer than 253 characters");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("the domain needs a dot (a bare host is not a mailbox domain)");
    }
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if !labels.iter().all(label_ok) {
        return Err("the domain may hold only letters, digits, hyphens and dots");
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("mailboxes live on a DNS domain, not an IP address");
    }
    Ok(())
}

/// The input as it may be echoed in a message: control characters shown
/// escaped, at most 80 characters.
fn shown(input: &str) -> String {
    let escaped: String = input.chars().flat_map(char::escape_default).collect();
    if escaped.chars().count() > 80 {
        format!("{}...", escaped.chars().take(80).collect::<String>())
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What no accepted address may contain: it would mean something to a
    /// shell, PowerShell, an SMTP or IMAP command line, or a header.
    const NEVER: &[char] = &[
        ' ', '\t', '\r', '\n', '\0', '"', '\'', '$', '`', '<', '>', '(', ')', ',', ';', ':', '\\',
        '[', ']',
    ];

    #[test]
    fn lowercases_and_trims() {
        assert_eq!(
            EmailAddress::parse(" Podatelna@Mesto.CZ ")
                .unwrap()
                .as_str(),
            "podatelna@mesto.cz"
        );
        for good in [
            "a.b-c_d+tag@sub.example.cz",
            "ohara@x.cz",
            "x@xn--mesto-brno-7ib.cz",
            "first.last@contoso.onmicrosoft.com",
        ] {
            assert!(EmailAddress::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_bare_mailbox() {
        for bad in [
            "",
            "podatelna",
            "@mesto.cz",
            "a@b",
            "a@[127.0.0.1]",
            "a@127.0.0.1",
            "a b@c.cz",
            "a@@c.cz",
            "Podatelna <podatelna@x.cz>",
            "anything <a@b.cz>",
            "\"quoted\"@x.cz",
            "a$(calc)@x.cz",
            "a`whoami`@x.cz",
            "o'hara@x.cz",
            "a\r\nRCPT TO:<x@y.cz>@x.cz",
            "a\0@x.cz",
            ".a@x.cz",
            "a.@x.cz",
            "a..b@x.cz",
            "a@-x.cz",
            "a@x-.cz",
            "a@x..cz",
            "a@mesto-brně.cz",
            "jiří@mesto.cz",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn messages_never_echo_control_characters() {
        let err = EmailAddress::parse("a\r\nb@x.cz").unwrap_err();
        assert!(!err.message.contains('\r') && !err.message.contains('\n'));
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,300}") {
            let _ = EmailAddress::parse(&s);
        }

        /// Whatever is accepted holds none of the characters that mean
        /// something to a shell, PowerShell or a protocol line, and parses
        /// again to itself.
        #[test]
        fn accepted_addresses_are_inert(
            s in "[a-z0-9.!#%&*+/=?^_{|}~<>\"'`$()\\[\\] \\r\\n\\t\\x00é-]{0,12}@[a-z0-9.<>\"'$ \\r\\nĕ-]{1,12}\\.[a-z]{2,3}",
        ) {
            if let Ok(parsed) = EmailAddress::parse(&s) {
                let text = parsed.as_str();
                prop_assert!(!text.chars().any(|c| NEVER.contains(&c) || !c.is_ascii() || c.is_ascii_control()), "{text:?}");
                prop_assert_eq!(text.matches('@').count(), 1);
                let again = EmailAddress::parse(text).unwrap();
                prop_assert_eq!(again.as_str(), text);
            }
        }

        #[test]
        fn valid_addresses_round_trip(local in "[a-z][a-z0-9.]{0,20}[a-z0-9]", domain in "[a-z]{1,10}\\.[a-z]{2,4}") {
            let addr = format!("{local}@{domain}");
            prop_assume!(!local.contains(".."));
            let parsed = EmailAddress::parse(&addr.to_uppercase()).unwrap();
            prop_assert_eq!(parsed.as_str(), addr.as_str());
        }
    }
}
