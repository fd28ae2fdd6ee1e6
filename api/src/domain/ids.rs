use crate::codes::Code;
use secrecy::SecretString;
use uuid::Uuid;

use super::Invalid;

/// The organisation a caller acts for; every stored row belongs to one.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub struct OrgId(String);

// Stored as it is; read back through `parse` (rows hold what was parsed).
super::sql::text_column!(OrgId, |text: &str| OrgId::parse(text)
    .map_err(|e| e.message));

impl std::fmt::Display for OrgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl OrgId {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let ok = !input.is_empty() && input.len() <= 128 && !input.chars().any(char::is_control);
        ok.then(|| Self(input.to_owned())).ok_or_else(|| {
            Invalid::new(
                Code::InvalidOrg,
                "the organisation claim must be 1-128 printable characters",
            )
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The Application (client) ID of an Entra ID app registration: a GUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        parse_guid(input).map(Self).ok_or_else(|| {
            Invalid::new(
                Code::InvalidClientId,
                "the client id is the app registration's Application (client) ID, a GUID like 00000000-0000-0000-0000-000000000000",
            )
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The Directory (tenant) ID - a GUID - or a verified domain of the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let value = input.trim().to_ascii_lowercase();
        if let Some(guid) = parse_guid(&value) {
            return Ok(Self(guid));
        }
        if matches!(value.as_str(), "common" | "organizations" | "consumers") {
            return Err(Invalid::new(
                Code::InvalidTenantId,
                format!(
                    "`{value}` is not a tenant: give the Directory (tenant) ID of your organisation (app-only access needs it)"
                ),
            ));
        }
        let is_domain = value.len() <= 253
            && value.contains('.')
            && value.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if is_domain {
            Ok(Self(value))
        } else {
            Err(Invalid::new(
                Code::InvalidTenantId,
                "the tenant id is the Directory (tenant) ID (a GUID) or a verified domain such as contoso.onmicrosoft.com",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a tenant GUID (not a domain name).
    pub fn is_guid(&self) -> bool {
        parse_guid(&self.0).is_some()
    }
}

/// A client secret Value. Never printed, never returned.
pub struct ClientSecret(SecretString);

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret([REDACTED])")
    }
}

impl ClientSecret {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let value = input.trim();
        if value.is_empty()
            || value.len() > 1024
            || value.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(Invalid::new(
                Code::InvalidClientSecret,
                "the client secret must be 1-1024 characters without spaces",
            ));
        }
        if parse_guid(value).is_some() {
            return Err(Invalid::new(
                Code::ClientSecretIsSecretId,
                "this looks like the Secret ID; paste the secret's Value (shown once, when the secret is created)",
            ));
        }
        Ok(Self(SecretString::from(value.to_owned())))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }

    /// The last 4 characters, shown so people can tell secrets apart.
    pub fn hint(&self) -> String {
        use secrecy::ExposeSecret;
        let chars: Vec<char> = self.0.expose_secret().chars().collect();
        let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
        if chars.len() <= 8 {
            "****".to_owned()
        } else {
            format!("...{tail}")
        }
    }
}

/// A display name for something a person named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let value = input.trim();
        let ok = !value.is_empty()
            && value.chars().count() <= 200
            && !value.chars().any(char::is_control);
        ok.then(|| Self(value.to_owned())).ok_or_else(|| {
            Invalid::new(
                Code::InvalidName,
                "the name must be 1-200 characters, without control characters",
            )
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn parse_guid(input: &str) -> Option<String> {
    let s = input.trim();
    // Only the hyphenated form Entra ID shows; not braces, URNs or 32 bare hex digits.
    (s.len() == 36)
        .then(|| Uuid::try_parse(s).ok())
        .flatten()
        .map(|u| u.hyphenated().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_is_a_guid() {
        assert!(ClientId::parse("5f4d7e3c-1b2a-4c5d-8e9f-0a1b2c3d4e5f").is_ok());
        assert_eq!(
            ClientId::parse("5F4D7E3C-1B2A-4C5D-8E9F-0A1B2C3D4E5F")
                .unwrap()
                .as_str(),
            "5f4d7e3c-1b2a-4c5d-8e9f-0a1b2c3d4e5f"
        );
        for bad in [
            "",
            "my-app",
            "5f4d7e3c1b2a4c5d8e9f0a1b2c3d4e5f",
            "{5f4d7e3c-1b2a-4c5d-8e9f-0a1b2c3d4e5f}",
        ] {
            assert!(ClientId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tenant_is_guid_or_domain() {
        assert!(TenantId::parse("contoso.onmicrosoft.com").is_ok());
        assert!(TenantId::parse("mesto-brno.cz").is_ok());
        assert!(
            TenantId::parse("5f4d7e3c-1b2a-4c5d-8e9f-0a1b2c3d4e5f")
                .unwrap()
                .is_guid()
        );
        for bad in [
            "",
            "common",
            "organizations",
            "contoso",
            "-a.cz",
            "a..cz",
            "a b.cz",
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_id_pasted_instead_of_value_is_explained() {
        let err = ClientSecret::parse("5f4d7e3c-1b2a-4c5d-8e9f-0a1b2c3d4e5f").unwrap_err();
        assert_eq!(err.code, Code::ClientSecretIsSecretId);
    }

    #[test]
    fn secret_hint_shows_only_the_tail() {
        let s = ClientSecret::parse("Abc8Q~verysecretvalue.XyZ9").unwrap();
        assert_eq!(s.hint(), "...XyZ9");
        assert_eq!(ClientSecret::parse("short").unwrap().hint(), "****");
        assert!(!format!("{s:?}").contains("secret"));
    }
}
