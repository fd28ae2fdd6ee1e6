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
        cloud -> Text,
        credential_type -> Text,
        certificate_pem -> Nullable<Text>,
        certificate_thumbprint -> Nullable<Text>,
        graph -> Bool,
        previous_certificate_pem -> Nullable<Text>,
        previous_certificate_thumbprint -> Nullable<Text>,
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
        transport -> Text,
        graph_access_token -> Nullable<Text>,
        graph_access_token_expires_at -> Nullable<Timestamp>,
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

diesel::table! {
    events (id) {
        id -> Text,
        org -> Text,
        #[sql_name = "type"]
        event_type -> Text,
        subject_id -> Text,
        occurred_at -> Timestamp,
        data -> Text,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Text,
        org -> Text,
        url -> Text,
        event_types -> Nullable<Text>,
        description -> Nullable<Text>,
        enabled -> Bool,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_until -> Nullable<Timestamp>,
        failing_since -> Nullable<Timestamp>,
        disabled_reason -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    email_alerts (id) {
        id -> Text,
        org -> Text,
        recipients -> Text,
        sender_mailbox_id -> Text,
        event_types -> Nullable<Text>,
        language -> Text,
        enabled -> Bool,
        last_error_code -> Nullable<Text>,
        last_error_message -> Nullable<Text>,
        last_error_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    deliveries (id) {
        id -> Text,
        org -> Text,
        channel -> Text,
        target_id -> Text,
        event_id -> Text,
        subject_id -> Text,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> Nullable<Timestamp>,
        lease_until -> Nullable<Timestamp>,
        lease_owner -> Nullable<Text>,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    delivery_attempts (id) {
        id -> Text,
        org -> Text,
        delivery_id -> Text,
        target_id -> Text,
        event_id -> Text,
        attempt -> Integer,
        at -> Timestamp,
        status_code -> Nullable<Integer>,
        error -> Nullable<Text>,
        duration_ms -> BigInt,
        response -> Nullable<Text>,
        next_retry_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    credential_notices (app_credential_id, threshold_days, expires_on) {
        app_credential_id -> Text,
        threshold_days -> Integer,
        expires_on -> Date,
    }
}

diesel::table! {
    bridge_passwords (id) {
        id -> Text,
        org -> Text,
        mailbox_id -> Text,
        name -> Text,
        selector -> Text,
        hash -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        last_used_from -> Nullable<Text>,
    }
}

diesel::table! {
    bridge_logins (password_id, address) {
        password_id -> Text,
        address -> Text,
        first_at -> Timestamp,
        last_audited_at -> Timestamp,
    }
}

diesel::joinable!(bridge_passwords -> mailboxes (mailbox_id));
diesel::joinable!(bridge_logins -> bridge_passwords (password_id));
diesel::joinable!(deliveries -> events (event_id));
diesel::joinable!(mailboxes -> app_credentials (app_credential_id));
diesel::allow_tables_to_appear_in_same_query!(
    app_credentials,
    mailboxes,
    authorizations,
    audit_events,
    events,
    webhooks,
    email_alerts,
    deliveries,
    delivery_attempts,
    credential_notices,
    bridge_passwords,
    bridge_logins,
);
