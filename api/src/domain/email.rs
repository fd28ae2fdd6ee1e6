use super::Invalid;

/// A mailbox address, stored in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let value = input.trim().to_lowercase();
        let invalid = || {
            Invalid::new(
                "invalid_email",
                format!("`{}` is not a valid e-mail address", input.trim()),
            )
        };
        if value.len() > 254 || !email_address::EmailAddress::is_valid(&value) {
            return Err(invalid());
        }
        // Mailboxes on Microsoft 365 live on a DNS domain: no IP literals, no bare hosts.
        let (local, domain) = value.rsplit_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || local.starts_with('"')
            || !domain.contains('.')
            || domain.starts_with('[')
        {
            return Err(invalid());
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lowercases_and_trims() {
        assert_eq!(
            EmailAddress::parse(" Podatelna@Mesto.CZ ")
                .unwrap()
                .as_str(),
            "podatelna@mesto.cz"
        );
    }

    #[test]
    fn refuses_what_is_not_a_mailbox() {
        for bad in [
            "",
            "podatelna",
            "@mesto.cz",
            "a@b",
            "a@[127.0.0.1]",
            "a b@c.cz",
            "a@@c.cz",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,300}") {
            let _ = EmailAddress::parse(&s);
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
