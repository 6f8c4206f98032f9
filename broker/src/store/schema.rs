//! The diesel view of `migrations/{sqlite,postgres}`: one schema for both engines.
//! Only types both engines share are used (Text, BigInt, Integer, Bool, Binary).

diesel::table! {
    agencies (code) {
        code -> Text,
        parent_code -> Nullable<Text>,
        level -> Integer,
        name_vi -> Text,
        name_en -> Nullable<Text>,
        kind -> Text,
        source -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    accounts (id) {
        id -> Text,
        kind -> Text,
        display_name -> Text,
        search_name -> Text,
        national_id -> Nullable<Text>,
        tax_code -> Nullable<Text>,
        agency_code -> Nullable<Text>,
        phone -> Nullable<Text>,
        email -> Nullable<Text>,
        status -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    connectors (id) {
        id -> Text,
        kind -> Text,
        display_name -> Text,
        config -> Text,
        enabled -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
        entity_id -> Nullable<Text>,
        search_name -> Text,
        federation -> Nullable<Text>,
        left_federation_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    upstream_links (id) {
        id -> Text,
        account_id -> Text,
        connector_id -> Text,
        issuer -> Text,
        subject -> Text,
        created_at -> BigInt,
        last_seen_at -> BigInt,
    }
}

diesel::table! {
    relying_parties (id) {
        id -> Text,
        protocol -> Text,
        entity_id -> Text,
        display_name -> Text,
        owner_agency_code -> Text,
        config -> Text,
        requires_membership -> Bool,
        enabled -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
        claim_enabled -> Bool,
        webhook_url -> Nullable<Text>,
        webhook_secret_sealed -> Nullable<Text>,
    }
}

diesel::table! {
    rp_connectors (rp_id, connector_id) {
        rp_id -> Text,
        connector_id -> Text,
    }
}

diesel::table! {
    roles (id) {
        id -> Text,
        rp_id -> Text,
        name -> Text,
        builtin -> Bool,
        created_at -> BigInt,
    }
}

diesel::table! {
    memberships (id) {
        id -> Text,
        account_id -> Text,
        rp_id -> Text,
        unit_agency_code -> Nullable<Text>,
        status -> Text,
        user_group -> Nullable<Text>,
        subject -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        unit_path -> Nullable<Text>,
        search_name -> Text,
    }
}

diesel::table! {
    membership_roles (membership_id, role_id) {
        membership_id -> Text,
        role_id -> Text,
    }
}

diesel::table! {
    admin_grants (id) {
        id -> Text,
        account_id -> Text,
        rp_id -> Nullable<Text>,
        level -> Text,
        scope_agency_code -> Nullable<Text>,
        delegated_office_code -> Nullable<Text>,
        granted_by -> Nullable<Text>,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    conversions (id) {
        id -> Text,
        seq -> BigInt,
        rp_id -> Text,
        mode -> Text,
        source -> Text,
        target_account -> Text,
        old_subject -> Text,
        new_subject -> Text,
        report -> Text,
        actor -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        conversion_id -> Text,
        rp_id -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        last_error -> Nullable<Text>,
        last_attempt_at -> Nullable<BigInt>,
        delivered_at -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    legacy_accounts (id) {
        id -> Text,
        rp_id -> Text,
        username -> Text,
        display_name -> Text,
        unit_agency_code -> Nullable<Text>,
        user_group -> Nullable<Text>,
        roles -> Text,
        password_hash -> Text,
        hash_scheme -> Text,
        subject -> Text,
        converted_to -> Nullable<Text>,
        converted_at -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        purpose -> Text,
        alg -> Text,
        public_der -> Binary,
        private_sealed -> Binary,
        state -> Text,
        created_at -> BigInt,
        activated_at -> Nullable<BigInt>,
        retire_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    auth_sessions (id) {
        id -> Text,
        rp_id -> Text,
        request -> Text,
        connector_id -> Nullable<Text>,
        connector_state -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
        consumed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    sso_sessions (id) {
        id -> Text,
        account_id -> Text,
        connector_id -> Nullable<Text>,
        authn -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        ended_at -> Nullable<BigInt>,
        last_seen_at -> BigInt,
        upstream_session -> Nullable<Text>,
        upstream_subject -> Nullable<Text>,
    }
}

diesel::table! {
    job_leases (name) {
        name -> Text,
        holder -> Text,
        until -> BigInt,
        last_run_at -> Nullable<BigInt>,
        runs -> BigInt,
    }
}

diesel::table! {
    sso_session_rps (sso_session_id, rp_id) {
        sso_session_id -> Text,
        rp_id -> Text,
        subject -> Text,
        session_index -> Nullable<Text>,
        served_at -> BigInt,
    }
}

diesel::table! {
    oidc_codes (code_hash) {
        code_hash -> Text,
        client_id -> Text,
        account_id -> Text,
        sso_session_id -> Nullable<Text>,
        redirect_uri -> Text,
        code_challenge -> Text,
        nonce -> Nullable<Text>,
        scope -> Text,
        claims -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        consumed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    oidc_tokens (token_hash) {
        token_hash -> Text,
        kind -> Text,
        client_id -> Text,
        account_id -> Text,
        code_hash -> Nullable<Text>,
        family_id -> Text,
        scope -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        replaced_by -> Nullable<Text>,
        grant_data -> Text,
        sso_session_id -> Nullable<Text>,
    }
}

diesel::table! {
    oidc_par (id) {
        id -> Text,
        client_id -> Text,
        params -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        consumed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    oidc_registration_tokens (token_hash) {
        token_hash -> Text,
        owner_agency_code -> Text,
        created_by -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        used_for -> Nullable<Text>,
    }
}

diesel::table! {
    logout_sessions (id) {
        id -> Text,
        state -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    saml_replay (id) {
        id -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        name -> Text,
        token_hash -> Text,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        account_id -> Nullable<Text>,
    }
}

diesel::table! {
    change_counters (name) {
        name -> Text,
        version -> BigInt,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> BigInt,
        actor -> Text,
        action -> Text,
        target -> Nullable<Text>,
        rp_id -> Nullable<Text>,
        outcome -> Text,
        request_id -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::joinable!(accounts -> agencies (agency_code));
diesel::joinable!(upstream_links -> accounts (account_id));
diesel::joinable!(upstream_links -> connectors (connector_id));
diesel::joinable!(relying_parties -> agencies (owner_agency_code));
diesel::joinable!(rp_connectors -> relying_parties (rp_id));
diesel::joinable!(rp_connectors -> connectors (connector_id));
diesel::joinable!(roles -> relying_parties (rp_id));
diesel::joinable!(memberships -> accounts (account_id));
diesel::joinable!(memberships -> relying_parties (rp_id));
diesel::joinable!(memberships -> agencies (unit_agency_code));
diesel::joinable!(membership_roles -> memberships (membership_id));
diesel::joinable!(membership_roles -> roles (role_id));
diesel::joinable!(admin_grants -> accounts (account_id));
diesel::joinable!(legacy_accounts -> relying_parties (rp_id));
diesel::joinable!(webhook_deliveries -> conversions (conversion_id));
diesel::joinable!(sso_sessions -> accounts (account_id));
diesel::joinable!(sso_session_rps -> sso_sessions (sso_session_id));
diesel::joinable!(oidc_codes -> accounts (account_id));
diesel::joinable!(oidc_tokens -> accounts (account_id));

diesel::allow_tables_to_appear_in_same_query!(
    agencies,
    accounts,
    connectors,
    upstream_links,
    relying_parties,
    rp_connectors,
    roles,
    memberships,
    membership_roles,
    admin_grants,
    legacy_accounts,
    signing_keys,
    auth_sessions,
    sso_sessions,
    sso_session_rps,
    oidc_codes,
    oidc_tokens,
    saml_replay,
    conversions,
    webhook_deliveries,
    logout_sessions,
    oidc_par,
    oidc_registration_tokens,
    api_tokens,
    change_counters,
    audit_log,
);
