//! Where each Microsoft cloud is: the one table of sign-in authorities,
//! Exchange Online hosts and token resources, with where each value comes
//! from. `INBOXLINK_MS_AUTHORITY`, `INBOXLINK_IMAP_ENDPOINT` and
//! `INBOXLINK_SMTP_ENDPOINT` override the cloud's values for every cloud
//! (tests, private deployments), as `INBOXLINK_GRAPH_ENDPOINT` overrides
//! the Graph host (where requests go, not the tokens' audience); without
//! them each app credential's cloud decides.
//!
//! Sources, as read on 2026-12-02:
//! - Sign-in authorities and portals: Microsoft Learn, "National clouds"
//!   (Microsoft identity platform: `login.microsoftonline.com`,
//!   `login.microsoftonline.us`, `login.partner.microsoftonline.cn`; the
//!   older `login.chinacloudapi.cn` is not used) and its table of Azure
//!   portals (`portal.azure.com`, `portal.azure.us`, `portal.azure.cn`).
//! - Exchange Online hosts and resources: Microsoft Learn, "Authenticate an
//!   IMAP, POP or SMTP connection using OAuth" (global: the delegated scopes
//!   on `https://outlook.office.com`, client credentials on
//!   `https://outlook.office365.com/.default`, `outlook.office365.com:993`,
//!   `smtp.office365.com:587`); "Office 365 U.S. Government GCC High
//!   endpoints" (`outlook.office365.us`, `smtp.office365.us`); for China,
//!   Microsoft 365 operated by 21Vianet (`partner.outlook.cn`,
//!   `smtp.partner.outlook.cn`).
//! - Microsoft Graph: Microsoft Learn, "Microsoft Graph national cloud
//!   deployments" (`https://graph.microsoft.com`, GCC High
//!   `https://graph.microsoft.us`, DoD `https://dod-graph.microsoft.us`,
//!   China `https://microsoftgraph.chinacloudapi.cn`); the host is also the
//!   tokens' resource (`{host}/Mail.ReadWrite`, `{host}/.default`).
//! - **Not confirmed by a Microsoft page:** the IMAP and SMTP hosts and the
//!   token resource of DoD tenants. Microsoft's DoD endpoint list names
//!   `outlook-dod.office365.us` for Exchange Online; the table keeps the GCC
//!   High values, as the product's contract asks, and the README tells a
//!   DoD operator to confirm them and set the three variables if they
//!   differ. The China SMTP host is not confirmed by a Microsoft page either.

use super::Cloud;

/// One cloud's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloudEndpoints {
    /// People's name for it.
    pub name: &'static str,
    /// Where the app registration is managed (Azure portal, App registrations).
    pub portal: &'static str,
    /// The sign-in authority: `{authority}/{tenant}/oauth2/v2.0/...`.
    pub authority: &'static str,
    /// The resource of the delegated IMAP and SMTP scopes (no trailing slash).
    pub delegated_resource: &'static str,
    /// The resource of the client-credentials scope `{resource}/.default`.
    pub app_only_resource: &'static str,
    /// IMAP over implicit TLS, on [`IMAP_PORT`].
    pub imap_host: &'static str,
    /// SMTP submission with STARTTLS, on [`SMTP_PORT`].
    pub smtp_host: &'static str,
    /// Microsoft Graph: the API's base URL and its tokens' resource.
    pub graph: &'static str,
}

/// Exchange Online's IMAP port (implicit TLS), in every cloud.
pub const IMAP_PORT: u16 = 993;
/// Exchange Online's SMTP submission port (STARTTLS), in every cloud.
pub const SMTP_PORT: u16 = 587;

const GLOBAL: CloudEndpoints = CloudEndpoints {
    name: "Microsoft 365 (global)",
    portal: "https://portal.azure.com",
    authority: "https://login.microsoftonline.com",
    delegated_resource: "https://outlook.office.com",
    app_only_resource: "https://outlook.office365.com",
    imap_host: "outlook.office365.com",
    smtp_host: "smtp.office365.com",
    graph: "https://graph.microsoft.com",
};

const USGOV: CloudEndpoints = CloudEndpoints {
    name: "Microsoft 365 GCC High",
    portal: "https://portal.azure.us",
    authority: "https://login.microsoftonline.us",
    delegated_resource: "https://outlook.office365.us",
    app_only_resource: "https://outlook.office365.us",
    imap_host: "outlook.office365.us",
    smtp_host: "smtp.office365.us",
    graph: "https://graph.microsoft.us",
};

const USGOV_DOD: CloudEndpoints = CloudEndpoints {
    name: "Microsoft 365 DoD",
    graph: "https://dod-graph.microsoft.us",
    ..USGOV
};

const CHINA: CloudEndpoints = CloudEndpoints {
    name: "Microsoft 365 operated by 21Vianet",
    portal: "https://portal.azure.cn",
    authority: "https://login.partner.microsoftonline.cn",
    delegated_resource: "https://partner.outlook.cn",
    app_only_resource: "https://partner.outlook.cn",
    imap_host: "partner.outlook.cn",
    smtp_host: "smtp.partner.outlook.cn",
    graph: "https://microsoftgraph.chinacloudapi.cn",
};

impl Cloud {
    /// The cloud's endpoints, from the one table above.
    pub const fn endpoints(self) -> &'static CloudEndpoints {
        match self {
            Cloud::Global => &GLOBAL,
            Cloud::Usgov => &USGOV,
            Cloud::UsgovDod => &USGOV_DOD,
            Cloud::China => &CHINA,
        }
    }
}

impl CloudEndpoints {
    /// The delegated scopes of a sign-in: IMAP and SMTP on the cloud's
    /// Exchange resource, and the OpenID Connect scopes for the id_token.
    pub fn delegated_scopes(&self) -> Vec<String> {
        let r = self.delegated_resource;
        vec![
            format!("{r}/IMAP.AccessAsUser.All"),
            format!("{r}/SMTP.Send"),
            "offline_access".to_owned(),
            "openid".to_owned(),
            "profile".to_owned(),
            "email".to_owned(),
        ]
    }

    /// The client-credentials scope.
    pub fn app_only_scope(&self) -> String {
        format!("{}/.default", self.app_only_resource)
    }

    /// Graph's delegated mail permissions, as scopes of the cloud's Graph
    /// resource (what a sign-in of a `graph` app credential also asks for).
    pub fn graph_delegated_scopes(&self) -> Vec<String> {
        GRAPH_PERMISSIONS
            .iter()
            .map(|p| format!("{}/{p}", self.graph))
            .collect()
    }

    /// Graph's client-credentials scope.
    pub fn graph_app_only_scope(&self) -> String {
        format!("{}/.default", self.graph)
    }
}

/// Graph's mail permissions (delegated and application alike).
pub const GRAPH_PERMISSIONS: [&str; 2] = ["Mail.ReadWrite", "Mail.Send"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cloud_has_https_endpoints_and_mail_host_names() {
        for cloud in Cloud::ALL {
            let e = cloud.endpoints();
            for url in [
                e.portal,
                e.authority,
                e.delegated_resource,
                e.app_only_resource,
                e.graph,
            ] {
                let parsed = url::Url::parse(url).expect(url);
                assert_eq!(parsed.scheme(), "https", "{cloud}: {url}");
                assert_eq!(parsed.path(), "/", "{cloud}: {url} has no path");
            }
            for host in [e.imap_host, e.smtp_host] {
                let parsed = url::Host::parse(host).expect(host);
                assert!(matches!(parsed, url::Host::Domain(_)), "{cloud}: {host}");
            }
        }
    }

    #[test]
    fn the_global_cloud_keeps_the_scopes_of_before() {
        let e = Cloud::Global.endpoints();
        assert_eq!(
            e.delegated_scopes()[..2],
            [
                "https://outlook.office.com/IMAP.AccessAsUser.All",
                "https://outlook.office.com/SMTP.Send"
            ]
        );
        assert_eq!(e.app_only_scope(), "https://outlook.office365.com/.default");
        assert_eq!(
            Cloud::China.endpoints().app_only_scope(),
            "https://partner.outlook.cn/.default"
        );
    }

    #[test]
    fn graph_scopes_name_each_clouds_graph_host() {
        assert_eq!(
            Cloud::Global.endpoints().graph_delegated_scopes(),
            [
                "https://graph.microsoft.com/Mail.ReadWrite",
                "https://graph.microsoft.com/Mail.Send"
            ]
        );
        assert_eq!(
            Cloud::UsgovDod.endpoints().graph_app_only_scope(),
            "https://dod-graph.microsoft.us/.default"
        );
        assert_ne!(
            Cloud::Usgov.endpoints().graph,
            Cloud::UsgovDod.endpoints().graph
        );
    }
}
