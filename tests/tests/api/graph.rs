//! Microsoft Graph: tokens for Graph from the same grant (a delegated
//! refresh token, or client credentials), and the `graph` transport's check
//! against the fake Graph in the test crate, which validates each bearer
//! token by its audience and permissions as Graph does
//! (`tests/src/fake_entra/graph.rs`).

use inboxlink_sdk::types::{AccessMode, CheckStepStatus, MailboxStatus, Transport};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{Api, TestApp, TestAppBuilder, backend_tests, fake_app_credential_body};

const GRAPH_READ: &str = "https://graph.microsoft.com/Mail.ReadWrite";
const GRAPH_SEND: &str = "https://graph.microsoft.com/Mail.Send";

/// A service whose Graph is the fake's (as for every test app with the
/// fake), with an app credential of the fake's app that asks for Graph at
/// sign-in when `graph`.
async fn graph_app(app: TestAppBuilder, graph: bool) -> (TestApp, Uuid) {
    let app = app.with_fake_entra().start().await;
    let cred = app
        .admin()
        .create_app_credential(fake_app_credential_body("E-filing").graph(graph))
        .await;
    (app, cred)
}

async fn access_token(app: &TestApp, id: Uuid, query: &str) -> crate::helpers::Answer {
    let token = app.token(crate::helpers::ORG, &["admin"]);
    let path = format!("/mailboxes/{id}/access-token{query}");
    app.call_as(&token, "GET", &path, None).await
}

fn bearer(answer: &crate::helpers::Answer) -> String {
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["access_token"]
        .as_str()
        .expect("a token")
        .to_owned()
}

backend_tests!(a_delegated_mailbox_gets_graph_tokens_from_its_refresh_token);
async fn a_delegated_mailbox_gets_graph_tokens_from_its_refresh_token(app: TestAppBuilder) {
    let (app, cred) = graph_app(app, true).await;
    let admin = app.admin();
    let id = admin
        .create_mailbox(crate::helpers::mailbox_body("podatelna@contoso.cz", cred))
        .await;
    app.sign_in_ok(id).await;
    // The sign-in asked consent for both resources at once.
    let asked = app.fake().last_authorize_query().expect("authorize");
    let scope = &asked["scope"];
    for s in [
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        GRAPH_READ,
        GRAPH_SEND,
    ] {
        assert!(scope.split(' ').any(|x| x == s), "{s} in {scope}");
    }
    let fake = app.fake();
    let refreshes = fake.token_calls("refresh_token");

    let outlook = access_token(&app, id, "").await;
    assert_eq!(outlook.body["resource"], "outlook");
    let outlook = bearer(&outlook);
    let graph = access_token(&app, id, "?resource=graph").await;
    assert_eq!(graph.header("cache-control"), Some("no-store"));
    assert_eq!(graph.body["resource"], "graph");
    let graph = bearer(&graph);
    assert_ne!(graph, outlook);
    let graph_scope = fake.access_token_scope(&graph).expect("issued by the fake");
    assert!(graph_scope.contains(GRAPH_READ), "{graph_scope}");
    assert!(
        !graph_scope.contains("outlook"),
        "one resource: {graph_scope}"
    );
    assert!(
        fake.access_token_scope(&outlook)
            .is_some_and(|s| s.contains("IMAP.AccessAsUser.All"))
    );
    assert_eq!(fake.token_calls("refresh_token"), refreshes + 1);

    // Kept like the Exchange token: the same one again, nothing asked of Microsoft.
    assert_eq!(
        bearer(&access_token(&app, id, "?resource=graph").await),
        graph
    );
    assert_eq!(bearer(&access_token(&app, id, "").await), outlook);
    assert_eq!(fake.token_calls("refresh_token"), refreshes + 1);
    let stored = app.stored_dump("mailboxes").await;
    assert!(!stored.contains(&graph), "the Graph token is sealed");

    // The refresh for Graph rotated the refresh token: the Exchange token
    // still refreshes from the one stored, and so does Graph's.
    app.execute(
        "UPDATE mailboxes SET access_token_expires_at = '2001-01-01 00:00:00', \
         graph_access_token_expires_at = '2001-01-01 00:00:00'",
    )
    .await;
    let again = bearer(&access_token(&app, id, "").await);
    assert_ne!(again, outlook);
    let graph_again = bearer(&access_token(&app, id, "?resource=graph").await);
    assert_ne!(graph_again, graph);
    assert_eq!(fake.token_calls("refresh_token"), refreshes + 3);
    assert_eq!(app.mailbox(id).await.status, MailboxStatus::Active);

    // Unknown resources are refused before anything happens.
    let bad = access_token(&app, id, "?resource=exchange").await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
}

backend_tests!(graph_needs_the_credential_setting_and_a_sign_in_that_asked_for_it);
async fn graph_needs_the_credential_setting_and_a_sign_in_that_asked_for_it(app: TestAppBuilder) {
    let (app, cred) = graph_app(app, false).await;
    let admin = app.admin();
    let id = admin
        .create_mailbox(crate::helpers::mailbox_body("podatelna@contoso.cz", cred))
        .await;
    app.sign_in_ok(id).await;
    let asked = app.fake().last_authorize_query().expect("authorize");
    assert!(!asked["scope"].contains("graph"), "off by default");
    let refused = access_token(&app, id, "?resource=graph").await;
    assert_eq!(refused.status, 409);
    assert_eq!(refused.code(), Some("graph_not_enabled"));
    let refreshes = app.fake().token_calls("refresh_token");

    // Turned on after the sign-in: Microsoft has no consent for Graph yet
    // (AADSTS65001); the mailbox keeps working for IMAP and SMTP.
    let turned = admin.update_app_credential(cred, |b| b.graph(true)).await;
    assert!(turned.expect("update").graph);
    let refused = access_token(&app, id, "?resource=graph").await;
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert_eq!(refused.code(), Some("sign_in_setup"));
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("65001")),
        "{:?}",
        refused.body
    );
    assert_eq!(app.fake().token_calls("refresh_token"), refreshes + 1);
    let mailbox = app.mailbox(id).await;
    assert_eq!(mailbox.status, MailboxStatus::Active);
    assert!(
        mailbox.status_detail.is_none(),
        "{:?}",
        mailbox.status_detail
    );
    bearer(&access_token(&app, id, "").await);

    // Signed in again, with the Graph permissions asked for: Graph tokens.
    app.sign_in_ok(id).await;
    bearer(&access_token(&app, id, "?resource=graph").await);
}

backend_tests!(an_app_only_mailbox_gets_a_graph_token_with_client_credentials);
async fn an_app_only_mailbox_gets_a_graph_token_with_client_credentials(app: TestAppBuilder) {
    // No `graph: true` needed: app-only permissions are the admin's consent.
    let (app, cred) = graph_app(app, false).await;
    let admin = app.admin();
    let body =
        crate::helpers::mailbox_body("robot@contoso.cz", cred).access_mode(AccessMode::AppOnly);
    let id = admin.create_mailbox(body).await;
    admin.refresh(id).await.expect("app-only token");
    let calls = app.fake().token_calls("client_credentials");
    let graph = bearer(&access_token(&app, id, "?resource=graph").await);
    assert_eq!(
        app.fake().access_token_scope(&graph).as_deref(),
        Some("https://graph.microsoft.com/.default")
    );
    assert_eq!(app.fake().token_calls("client_credentials"), calls + 1);
    let outlook = bearer(&access_token(&app, id, "").await);
    assert_eq!(
        app.fake().access_token_scope(&outlook).as_deref(),
        Some("https://outlook.office365.com/.default")
    );
}

fn step<'a>(
    report: &'a inboxlink_sdk::types::CheckReport,
    name: &str,
) -> &'a inboxlink_sdk::types::CheckStep {
    report
        .steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("step {name} in {report:?}"))
}

fn names(report: &inboxlink_sdk::types::CheckReport) -> Vec<&str> {
    report.steps.iter().map(|s| s.name.as_str()).collect()
}

backend_tests!(the_graph_check_reads_the_inbox_and_sends_through_graph);
async fn the_graph_check_reads_the_inbox_and_sends_through_graph(app: TestAppBuilder) {
    let (app, cred) = graph_app(app, true).await;
    let admin = app.admin();
    let address = "podatelna@contoso.cz";
    app.fake().add_graph_mailbox(address, 3);
    let body = crate::helpers::mailbox_body(address, cred).transport(Transport::Graph);
    let id = admin.create_mailbox(body).await;
    assert_eq!(app.mailbox(id).await.transport, Transport::Graph);
    app.sign_in_ok(id).await;

    let report = admin.check(id, true).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(
        names(&report),
        ["graph_token", "graph_mailbox", "graph_send"]
    );
    let inbox = step(&report, "graph_mailbox");
    assert!(
        inbox
            .response
            .as_deref()
            .is_some_and(|r| r.contains("3 messages")),
        "{inbox:?}"
    );
    let sent = app.fake().graph_sent(address);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["message"]["toRecipients"][0]["emailAddress"]["address"],
        Value::from(address)
    );
    // The test message arrived: the inbox holds one more.
    let report = admin.check(id, false).await;
    assert_eq!(names(&report), ["graph_token", "graph_mailbox"]);
    let inbox = step(&report, "graph_mailbox");
    assert!(
        inbox
            .response
            .as_deref()
            .is_some_and(|r| r.contains("4 messages"))
    );
    assert!(app.mailbox(id).await.last_check.expect("stored").ok);

    // Back to IMAP and SMTP: the authorization stays (the same grant).
    let moved = admin
        .update_mailbox(id, |b| b.transport(Transport::ImapSmtp))
        .await
        .expect("update");
    assert_eq!(moved.status, MailboxStatus::Active);
}

backend_tests!(graph_refusals_are_explained_and_throttling_changes_nothing);
async fn graph_refusals_are_explained_and_throttling_changes_nothing(app: TestAppBuilder) {
    let (app, cred) = graph_app(app, false).await;
    let admin = app.admin();
    let robot = "robot@contoso.cz";
    app.fake().add_graph_mailbox(robot, 0);
    let body = crate::helpers::mailbox_body(robot, cred)
        .access_mode(AccessMode::AppOnly)
        .transport(Transport::Graph);
    let id = admin.create_mailbox(body).await;
    admin.refresh(id).await.expect("app-only");
    assert!(admin.check(id, true).await.ok);

    // An application access policy blocks the app: 403, explained.
    app.fake().block_graph_app(robot);
    let report = admin.check(id, false).await;
    let failed = step(&report, "graph_mailbox");
    assert_eq!(failed.status, CheckStepStatus::Failed);
    assert_eq!(failed.code.as_deref(), Some("graph_access_denied"));
    let hint = failed.hint.as_deref().unwrap_or_default();
    assert!(hint.contains("Test-ApplicationAccessPolicy"), "{hint}");
    assert!(hint.contains("New-ManagementRoleAssignment"), "{hint}");
    assert!(
        failed
            .response
            .as_deref()
            .is_some_and(|r| r.contains("ErrorAccessDenied")),
        "{failed:?}"
    );

    // A mailbox Graph does not know: 404.
    let ghost = crate::helpers::mailbox_body("ghost@contoso.cz", cred)
        .access_mode(AccessMode::AppOnly)
        .transport(Transport::Graph);
    let ghost = admin.create_mailbox(ghost).await;
    admin.refresh(ghost).await.expect("app-only");
    let report = admin.check(ghost, true).await;
    let failed = step(&report, "graph_mailbox");
    assert_eq!(failed.code.as_deref(), Some("graph_mailbox_not_found"));
    assert_eq!(step(&report, "graph_send").status, CheckStepStatus::Skipped);

    // Throttled: 429 with Retry-After is temporary; the mailbox stays active.
    app.fake().throttle_graph(7);
    let report = admin.check(ghost, false).await;
    let failed = step(&report, "graph_mailbox");
    assert_eq!(failed.code.as_deref(), Some("graph_throttled"));
    let hint = failed.hint.as_deref().unwrap_or_default();
    assert!(hint.contains("wait 7 s"), "{hint}");
    assert_eq!(app.mailbox(ghost).await.status, MailboxStatus::Active);

    // A delegated Graph mailbox whose credential does not ask for Graph:
    // the token step says so, nothing reaches Graph.
    let delegated =
        crate::helpers::mailbox_body("podatelna@contoso.cz", cred).transport(Transport::Graph);
    let delegated = admin.create_mailbox(delegated).await;
    app.sign_in_ok(delegated).await;
    let calls = app.fake().graph_calls();
    let report = admin.check(delegated, false).await;
    let failed = step(&report, "graph_token");
    assert_eq!(failed.code.as_deref(), Some("graph_not_enabled"));
    assert_eq!(
        step(&report, "graph_mailbox").status,
        CheckStepStatus::Skipped
    );
    assert_eq!(app.fake().graph_calls(), calls);
    assert_eq!(app.mailbox(delegated).await.status, MailboxStatus::Active);
}

backend_tests!(the_setup_view_lists_graph_and_rbac_for_applications);
async fn the_setup_view_lists_graph_and_rbac_for_applications(app: TestAppBuilder) {
    let (app, cred) = graph_app(app, true).await;
    let admin = app.admin();
    for address in ["robot@contoso.cz", "scan@contoso.cz"] {
        let body = crate::helpers::mailbox_body(address, cred).access_mode(AccessMode::AppOnly);
        admin.create_mailbox(body).await;
    }
    let setup = admin.setup(cred).await;
    for p in [
        "Microsoft Graph: Mail.ReadWrite",
        "Microsoft Graph: Mail.Send",
    ] {
        assert!(setup.delegated_permissions.iter().any(|x| x == p), "{p}");
        assert!(setup.application_permissions.iter().any(|x| x == p), "{p}");
    }
    assert_eq!(setup.cloud.graph_delegated_scopes, [GRAPH_READ, GRAPH_SEND]);
    assert_eq!(
        setup.cloud.graph_app_only_scope,
        "https://graph.microsoft.com/.default"
    );
    let rbac = setup.powershell_rbac.join("\n");
    // The scope's filter quotes each address for OPATH, and the whole
    // filter for PowerShell (its quotes doubled): exactly these mailboxes.
    assert!(
        rbac.contains(
            "New-ManagementScope -Name 'Inboxlink E-filing' -RecipientRestrictionFilter \
             'PrimarySmtpAddress -eq ''robot@contoso.cz'' -or PrimarySmtpAddress -eq ''scan@contoso.cz'''"
        ),
        "{rbac}"
    );
    for role in [
        "Application SMTP.SendAsApp",
        "Application Mail.ReadWrite",
        "Application Mail.Send",
    ] {
        assert!(
            rbac.contains(&format!(
                "New-ManagementRoleAssignment -App '{}' -Role '{role}' -CustomResourceScope 'Inboxlink E-filing'",
                crate::helpers::CLIENT_ID
            )),
            "{role}: {rbac}"
        );
    }
    assert!(
        rbac.contains("Test-ServicePrincipalAuthorization"),
        "{rbac}"
    );
    // Without Graph, only SMTP's role.
    admin
        .update_app_credential(cred, |b| b.graph(false))
        .await
        .expect("update");
    let setup = admin.setup(cred).await;
    assert!(setup.cloud.graph_delegated_scopes.is_empty());
    let rbac = setup.powershell_rbac.join("\n");
    assert!(!rbac.contains("Mail.Send"), "{rbac}");
    assert!(rbac.contains("Application SMTP.SendAsApp"), "{rbac}");
}
