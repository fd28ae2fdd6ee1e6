//! The bearer-token settings (`INBOXLINK_JWT_*` besides the key itself).

use super::raw::{RawSettings, given};
use super::validate::{or_default, parse, seconds};
use super::{ConfigError, JwtKey, JwtSettings, defaults};

/// The default of `INBOXLINK_JWT_MAX_LIFETIME_SECONDS`: one day.
pub const MAX_LIFETIME_SECONDS: u64 = 86_400;

/// Checks the JWT settings around `key` (from [`super::bootstrap`]).
pub(super) fn validate(raw: &RawSettings, key: JwtKey) -> Result<JwtSettings, ConfigError> {
    let allow_http = parse(given!(raw.jwt_jwks_allow_http), "false", |v| match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be `true` or `false`".into()),
    })?;
    if let JwtKey::JwksUrl(url) = &key
        && url.scheme() == "http"
        && !allow_http
    {
        return Err(ConfigError::new(
            "JWT_JWKS_URL",
            format!(
                "`{url}`: the signing keys must come over https:// \
                 (INBOXLINK_JWT_JWKS_ALLOW_HTTP=true allows http://, for tests only)"
            ),
        ));
    }
    let token_type = match &raw.jwt_type {
        None => None,
        Some(v) => {
            let v = v.trim();
            let bare = v
                .get(..12)
                .filter(|p| p.eq_ignore_ascii_case("application/"))
                .map_or(v, |_| &v[12..]);
            if bare.is_empty() || !bare.chars().all(|c| c.is_ascii_graphic()) {
                return Err(ConfigError::new(
                    "JWT_TYPE",
                    format!("not a media type such as `at+jwt` (got `{v}`)"),
                ));
            }
            Some(v.to_owned())
        }
    };
    // 0 turns the bound off; at most 366 days.
    let max_lifetime = parse(
        given!(raw.jwt_max_lifetime_seconds),
        &MAX_LIFETIME_SECONDS.to_string(),
        |v| {
            v.parse::<u64>()
                .ok()
                .filter(|s| *s <= 366 * 86_400)
                .ok_or_else(|| "must be 0 (no bound) or 1..=31622400 seconds".into())
        },
    )?;
    Ok(JwtSettings {
        key,
        issuer: or_default(given!(raw.jwt_issuer), defaults::JWT_ISSUER),
        audience: or_default(given!(raw.jwt_audience), defaults::JWT_AUDIENCE),
        sub_claim: or_default(given!(raw.jwt_sub_claim), "sub"),
        org_claim: or_default(given!(raw.jwt_org_claim), "org"),
        roles_claim: or_default(given!(raw.jwt_roles_claim), "roles"),
        leeway: seconds(given!(raw.jwt_leeway_seconds), "30", 0..=300)?,
        token_type,
        max_lifetime: (max_lifetime > 0).then(|| std::time::Duration::from_secs(max_lifetime)),
        jwks_refresh: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{Settings, Source};
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let data = data.to_str().unwrap();
        let mut all = vec![("INBOXLINK_DATA_DIR", data)];
        all.extend_from_slice(pairs);
        Settings::from_source(&Source::from_pairs(all).unwrap())
    }

    #[test]
    fn malformed_values_name_their_variable() {
        for (var, value) in [
            ("INBOXLINK_JWT_TYPE", "at jwt"),
            ("INBOXLINK_JWT_TYPE", "application/"),
            ("INBOXLINK_JWT_MAX_LIFETIME_SECONDS", "-1"),
            ("INBOXLINK_JWT_MAX_LIFETIME_SECONDS", "1d"),
            ("INBOXLINK_JWT_JWKS_ALLOW_HTTP", "yes"),
        ] {
            let err = settings(&[(var, value)]).unwrap_err();
            assert_eq!(err.variable, var, "{err}");
        }
    }

    #[test]
    fn lifetime_bound_and_type() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.jwt.max_lifetime, Some(Duration::from_secs(86_400)));
        assert_eq!(s.jwt.token_type, None);
        let s = settings(&[
            ("INBOXLINK_JWT_MAX_LIFETIME_SECONDS", "0"),
            ("INBOXLINK_JWT_TYPE", "application/at+jwt"),
        ])
        .unwrap();
        assert_eq!(s.jwt.max_lifetime, None);
        assert_eq!(s.jwt.token_type.as_deref(), Some("application/at+jwt"));
    }

    #[test]
    fn an_http_jwks_url_needs_allow_http() {
        let http = ("INBOXLINK_JWT_JWKS_URL", "http://idp.example/keys");
        let err = settings(&[http]).unwrap_err();
        assert_eq!(err.variable, "INBOXLINK_JWT_JWKS_URL", "{err}");
        assert!(
            err.problem.contains("INBOXLINK_JWT_JWKS_ALLOW_HTTP"),
            "{err}"
        );
        assert!(settings(&[http, ("INBOXLINK_JWT_JWKS_ALLOW_HTTP", "true")]).is_ok());
        assert!(settings(&[("INBOXLINK_JWT_JWKS_URL", "https://idp.example/keys")]).is_ok());
    }
}
