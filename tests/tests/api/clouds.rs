//! National clouds: an app credential's `cloud` decides where its mailboxes
//! sign in, which scopes they ask for and which mail servers they use. The
//! service here starts without `INBOXLINK_MS_AUTHORITY`,
//! `INBOXLINK_IMAP_ENDPOINT` and `INBOXLINK_SMTP_ENDPOINT`, as in
//! production; nothing reaches Microsoft (a sign-in URL, a consent link and
//! the set-up view are built here). The expected values are written out
//! from Microsoft's documentation, not read from the service's table.

use inboxlink_sdk::types::Cloud;
use url::Url;

use crate::helpers::{
    Api, TestAppBuilder, backend_tests, fake_app_credential_body, follow, mailbox_body,
};

struct Expected {
    cloud: Cloud,
    portal: &'static str,
    authority_host: &'static str,
    imap: &'static str,
    smtp: &'static str,
    imap_scope: &'static str,
    smtp_scope: &'static str,
    app_only_scope: &'static str,
    /// Microsoft Graph's host (Learn "Microsoft Graph national cloud deployments").
    graph: &'static str,
}

const GLOBAL: Expected = Expected {
    cloud: Cloud::Global,
    portal: "https://portal.azure.com",
    authority_host: "login.microsoftonline.com",
    imap: "outlook.office365.com:993",
    smtp: "smtp.office365.com:587",
    imap_scope: "https://outlook.office.com/IMAP.AccessAsUser.All",
    smtp_scope: "https://outlook.office.com/SMTP.Send",
    app_only_scope: "https://outlook.office365.com/.default",
    graph: "https://graph.microsoft.com",
};

const USGOV: Expected = Expected {
    cloud: Cloud::Usgov,
    portal: "https://portal.azure.us",
    authority_host: "login.microsoftonline.us",
    imap: "outlook.office365.us:993",
    smtp: "smtp.office365.us:587",
    imap_scope: "https://outlook.office365.us/IMAP.AccessAsUser.All",
    smtp_scope: "https://outlook.office365.us/SMTP.Send",
    app_only_scope: "https://outlook.office365.us/.default",
    graph: "https://graph.microsoft.us",
};

/// DoD: as GCC High (see the README on what is not confirmed).
const DOD: Expected = Expected {
    cloud: Cloud::UsgovDod,
    graph: "https://dod-graph.microsoft.us",
    ..USGOV
};

const CHINA: Expected = Expected {
    cloud: Cloud::China,
    portal: "https://portal.azure.cn",
    authority_host: "login.partner.microsoftonline.cn",
    imap: "partner.outlook.cn:993",
    smtp: "smtp.partner.outlook.cn:587",
    imap_scope: "https://partner.outlook.cn/IMAP.AccessAsUser.All",
    smtp_scope: "https://partner.outlook.cn/SMTP.Send",
    app_only_scope: "https://partner.outlook.cn/.default",
    graph: "https://microsoftgraph.chinacloudapi.cn",
};

const CLOUDS: &[Expected] = &[GLOBAL, USGOV, DOD, CHINA];

/// A service as in production: no endpoint replaced for every cloud.
async fn production_endpoints(app: TestAppBuilder) -> crate::helpers::TestApp {
    app.with_settings(|s| {
        s.ms_authority = None;
        s.imap_endpoint = None;
        s.smtp_endpoint = None;
        s.graph_endpoint = None;
    })
    .start()
    .await
}

fn query(url: &Url, name: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("{url} has no {name}"))
}

backend_tests!(each_cloud_signs_in_and_connects_at_its_own_hosts);
async fn each_cloud_signs_in_and_connects_at_its_own_hosts(app: TestAppBuilder) {
    let app = production_endpoints(app).await;
    let admin = app.admin();
    for (i, want) in CLOUDS.iter().enumerate() {
        let body = fake_app_credential_body(&format!("Cloud {i}"))
            .cloud(want.cloud)
            .graph(true);
        let cred = admin.create_app_credential(body).await;
        let got = admin.app_credential_get().id(cred).send().await;
        assert_eq!(got.expect("read").into_inner().cloud, want.cloud);

        let setup = admin.setup(cred).await;
        let c = &setup.cloud;
        assert_eq!(c.cloud, want.cloud);
        assert_eq!(c.portal, want.portal, "{:?}", want.cloud);
        assert_eq!(c.authority, format!("https://{}", want.authority_host));
        assert_eq!(c.imap_endpoint, want.imap, "{:?}", want.cloud);
        assert_eq!(c.smtp_endpoint, want.smtp, "{:?}", want.cloud);
        assert_eq!(c.app_only_scope, want.app_only_scope);
        assert!(c.delegated_scopes.iter().any(|s| s == want.imap_scope));
        assert!(c.delegated_scopes.iter().any(|s| s == want.smtp_scope));
        assert_eq!(c.graph_endpoint, format!("{}/", want.graph));
        assert_eq!(c.graph_app_only_scope, format!("{}/.default", want.graph));
        let graph_read = format!("{}/Mail.ReadWrite", want.graph);
        assert!(c.graph_delegated_scopes.contains(&graph_read), "{c:?}");

        // A sign-in goes to the cloud's authority and asks for its scopes.
        let email = format!("podatelna{i}@contoso.cz");
        let mailbox = admin.create_mailbox(mailbox_body(&email, cred)).await;
        let url = Url::parse(&admin.sign_in_url(mailbox).await).expect("sign-in URL");
        assert_eq!(url.host_str(), Some(want.authority_host), "{url}");
        assert!(url.path().ends_with("/oauth2/v2.0/authorize"), "{url}");
        let scopes = query(&url, "scope");
        let scopes: Vec<&str> = scopes.split(' ').collect();
        for scope in [
            want.imap_scope,
            want.smtp_scope,
            "offline_access",
            "openid",
            &graph_read,
        ] {
            assert!(scopes.contains(&scope), "{scope} in {scopes:?}");
        }
        assert!(
            !scopes.iter().any(|s| s.contains("outlook")
                && !s.starts_with(want.imap_scope.trim_end_matches("/IMAP.AccessAsUser.All"))),
            "only the cloud's own resource: {scopes:?}"
        );

        // An admin-consent link: the cloud's authority, its app-only scope.
        let consent = Url::parse(&admin.consent_url(cred).await.expect("link")).expect("URL");
        assert_eq!(consent.host_str(), Some(want.authority_host), "{consent}");
        assert_eq!(query(&consent, "scope"), want.app_only_scope);
    }
}

backend_tests!(the_configured_endpoints_replace_those_of_every_cloud);
async fn the_configured_endpoints_replace_those_of_every_cloud(app: TestAppBuilder) {
    let app = app
        .with_settings(|s| {
            s.ms_authority = Some("https://login.example.test/".parse().expect("URL"));
            s.imap_endpoint = Some(inboxlink::config::Endpoint {
                host: "imap.example.test".into(),
                port: 1993,
            });
        })
        .start()
        .await;
    let admin = app.admin();
    let body = fake_app_credential_body("GCC High").cloud(Cloud::Usgov);
    let cred = admin.create_app_credential(body).await;
    let setup = admin.setup(cred).await;
    assert_eq!(setup.cloud.authority, "https://login.example.test");
    assert_eq!(setup.cloud.graph_endpoint, "https://graph.microsoft.us/");
    assert_eq!(setup.cloud.imap_endpoint, "imap.example.test:1993");
    // Not configured: the cloud's own.
    assert_eq!(setup.cloud.smtp_endpoint, "smtp.office365.us:587");
    let mailbox = admin
        .create_mailbox(mailbox_body("podatelna@contoso.cz", cred))
        .await;
    let url = Url::parse(&admin.sign_in_url(mailbox).await).expect("URL");
    assert_eq!(url.host_str(), Some("login.example.test"));
    // The scopes stay the cloud's: the override moves the host, not the resource.
    assert!(query(&url, "scope").contains("https://outlook.office365.us/IMAP.AccessAsUser.All"));
}

backend_tests!(moving_a_credential_to_another_cloud_ends_its_pending_sign_ins);
/// Another cloud is another directory: a sign-in or a consent link started
/// in the old one must not complete, as after a change of tenant.
async fn moving_a_credential_to_another_cloud_ends_its_pending_sign_ins(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_mailbox().start().await;
    let (admin, id, cred) = (app.admin(), app.mailbox_id(), app.app_credential_id());
    let url = admin.sign_in_url(id).await;
    let link = admin.consent_url(cred).await.expect("link");
    assert_eq!(app.pending_sign_ins().await, 2);
    let moved = admin.update_app_credential(cred, |b| b.cloud(Cloud::Usgov));
    assert_eq!(moved.await.expect("update").cloud, Cloud::Usgov);
    assert_eq!(app.pending_sign_ins().await, 0);
    for started in [&url, &link] {
        let page = follow(started).await;
        assert_eq!(page.status, 400);
        assert!(page.contains("state_unknown"), "{page}");
    }
    // The same cloud again ends nothing: this sign-in (through the fake,
    // which stands in for every authority here) completes.
    let url = admin.sign_in_url(id).await;
    assert!(query(&Url::parse(&url).expect("URL"), "scope").contains("outlook.office365.us"));
    let same = admin.update_app_credential(cred, |b| b.cloud(Cloud::Usgov));
    same.await.expect("update");
    let page = follow(&url).await;
    assert_eq!(page.status, 200, "{page}");
    assert!(page.contains("signed_in"), "{page}");
}
