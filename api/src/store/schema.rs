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
    }
}

diesel::joinable!(mailboxes -> app_credentials (app_credential_id));
diesel::allow_tables_to_appear_in_same_query!(app_credentials, mailboxes);
