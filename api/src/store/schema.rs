//! The diesel schema, shared by both backends (kept in step with `migrations/`).

diesel::table! {
    app_credentials (id) {
        id -> Text,
        org -> Text,
        name -> Text,
        provider -> Text,
        client_id -> Text,
        tenant_id -> Text,
        client_secret -> Text,
        secret_hint -> Text,
        secret_expires_at -> Nullable<Date>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        problem_code -> Nullable<Text>,
        problem_message -> Nullable<Text>,
        consent_granted_at -> Nullable<Timestamp>,
        tenant_guid -> Nullable<Text>,
        consent_reported_at -> Nullable<Timestamp>,
        consent_tenant -> Nullable<Text>,
    }
}

diesel::table! {
    mailboxes (id) {
        id -> Text,
        org -> Text,
        email -> Text,
        app_credential_id -> Text,
        access_mode -> Text,
        shared -> Bool,
        status -> Text,
        status_code -> Nullable<Text>,
        status_message -> Nullable<Text>,
        status_hint -> Nullable<Text>,
        authorized_as -> Nullable<Text>,
        refresh_token_issued_at -> Nullable<Timestamp>,
        last_refresh_at -> Nullable<Timestamp>,
        last_check -> Nullable<Text>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        access_token -> Nullable<Text>,
        access_token_expires_at -> Nullable<Timestamp>,
        refresh_token -> Nullable<Text>,
        token_version -> BigInt,
        refresh_lease_until -> Nullable<Timestamp>,
        last_error_code -> Nullable<Text>,
        last_error_message -> Nullable<Text>,
        last_error_at -> Nullable<Timestamp>,
        identity_oid -> Nullable<Text>,
        identity_tid -> Nullable<Text>,
    }
}

diesel::table! {
    authorizations (id) {
        id -> Text,
        org -> Text,
        kind -> Text,
        mailbox_id -> Nullable<Text>,
        app_credential_id -> Text,
        state_hash -> Text,
        pkce_verifier -> Nullable<Text>,
        nonce -> Nullable<Text>,
        return_url -> Nullable<Text>,
        actor -> Text,
        expires_at -> Timestamp,
        created_at -> Timestamp,
        token_version -> Nullable<BigInt>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        org -> Text,
        at -> Timestamp,
        actor -> Text,
        action -> Text,
        target_type -> Text,
        target_id -> Nullable<Text>,
        outcome -> Text,
        detail -> Nullable<Text>,
    }
}

diesel::joinable!(mailboxes -> app_credentials (app_credential_id));
diesel::allow_tables_to_appear_in_same_query!(
    app_credentials,
    mailboxes,
    authorizations,
    audit_events
);
