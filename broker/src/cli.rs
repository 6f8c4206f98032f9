//! The `fedhub` command line. Each subcommand loads the configuration, opens the store and
//! calls the same functions the server does. Exit codes: 0 done, 2 bad input (the message
//! names the field and the rule), 3 bad configuration, 4 database unreachable, 1 other.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use fedhub_identifiers::AgencyCode;

use crate::audit::{self, Event};
use crate::clock::{parse_time, rfc3339, Clock, SystemClock};
use crate::config::{Config, ConfigError, LogFormat};
use crate::directory::{accounts, agencies};
use crate::error::{Error, Result};
use crate::store::{Store, StoreOptions};
use crate::{demo, keys, tokens, web};

#[derive(Debug, Parser)]
#[command(
    name = "fedhub",
    version,
    about = "SAML 2.0 and OpenID Connect federation hub"
)]
pub struct Cli {
    /// Configuration file (default: ./fedhub.toml when present). FEDHUB_* variables override it.
    #[arg(long, global = true, env = "FEDHUB_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub.
    Serve {
        /// Do not apply pending migrations on start (refuse to start if any are pending).
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply pending database migrations.
    Migrate {
        /// Only report how many are pending; exit 2 if any.
        #[arg(long)]
        check: bool,
    },
    /// Write a consistent copy of the SQLite database to FILE (a new file), also while
    /// `fedhub serve` runs. On PostgreSQL use pg_dump (docs/operations.md, "Backups").
    Backup { file: PathBuf },
    /// Replace the SQLite database with the backup FILE, after checking it. The hub must be
    /// stopped; a database holding data is replaced only with --force.
    Restore {
        file: PathBuf,
        /// Replace a database that holds data (back it up first).
        #[arg(long)]
        force: bool,
    },
    /// Run the demo: a fresh SQLite database, seeded directory and demo accounts, on 127.0.0.1.
    Demo(demo::DemoArgs),
    /// Check the configuration and print it (secrets redacted).
    Config,
    /// Agencies (the agency-code tree).
    #[command(subcommand)]
    Agency(AgencyCommand),
    /// Accounts in the directory.
    #[command(subcommand)]
    Account(AccountCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Relying parties: ministry portals (SAML) and gateways (OIDC).
    #[command(subcommand)]
    Rp(RpCommand),
    /// Admin API tokens of the federation operator.
    #[command(subcommand, name = "api-token")]
    ApiToken(ApiTokenCommand),
    /// Personal admin API tokens: they act as one account, with exactly its admin grants.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Key material.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Upstream identity sources (the national identity provider, ...).
    #[command(subcommand)]
    Connector(ConnectorCommand),
    /// Admin grants (the federation operator grants top admins).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Convert an account (legacy → federated, or a staff hand-over), one or a CSV of pairs.
    #[command(subcommand)]
    Convert(ConvertCommand),
    /// Legacy accounts a relying party held before the hub (for conversion; they never sign in).
    #[command(subcommand)]
    Legacy(LegacyCommand),
    /// Sign a certificate sign-in challenge with a key (for tests, and for agencies without
    /// the vendor plug-in): reads the challenge (or its JSON request) on stdin, prints the
    /// JSON answer to paste on the sign-in page.
    SignChallenge {
        /// PEM private key (with --chain).
        #[arg(long, requires = "chain", conflicts_with = "p12")]
        key: Option<PathBuf>,
        /// PEM certificates, the signer's first.
        #[arg(long)]
        chain: Option<PathBuf>,
        /// A PKCS#12 (.p12/.pfx) file instead; its password from FEDHUB_P12_PASSWORD.
        #[arg(long)]
        p12: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Register an OpenID Provider as upstream (the national identity provider). Register
    /// `<public_url>/connectors/<id>/callback` as the redirect URI at the provider.
    AddOidc {
        /// Short id used in URLs, e.g. `vneid`.
        #[arg(long)]
        id: String,
        /// The name people see on the sign-in page.
        #[arg(long)]
        name: String,
        /// The provider's issuer (its discovery document lives under it).
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        client_id: String,
        /// A file holding the client secret the provider issued (kept sealed at rest).
        #[arg(long)]
        client_secret_file: PathBuf,
        /// Scopes to ask for, comma-separated (default: openid,profile).
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        /// `portal` (SoDinhDanh, HoVaTen, ...; the default) or `standard` claim names.
        #[arg(long, value_enum)]
        claim_names: Option<ClaimNamesArg>,
    },
    /// Register sign-in with a government digital certificate on a USB token.
    AddCertificate {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// PEM file of a trusted root CA (repeat for several).
        #[arg(long = "trust-anchor", required = true)]
        trust_anchors: Vec<PathBuf>,
        /// PEM file of an intermediate CA (repeat), for tools that send only the leaf.
        #[arg(long = "intermediate")]
        intermediates: Vec<PathBuf>,
        /// Accept certificates whose CRL cannot be fetched (default: refuse them).
        #[arg(long)]
        allow_unknown_revocation: bool,
    },
    /// Register a SAML 2.0 identity provider from its metadata. The hub's SP metadata for it
    /// is then at {base_url}/connectors/ID/saml/metadata.
    AddSaml {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// The IdP's SAML metadata (a file with one EntityDescriptor).
        #[arg(long)]
        metadata: PathBuf,
        /// NameID format to ask for (default: the IdP decides).
        #[arg(long)]
        name_id_format: Option<String>,
        /// Map an IdP attribute (Name or FriendlyName) to a hub attribute, e.g.
        /// `--map urn:oid:2.5.4.42=name` (repeat).
        #[arg(long = "map", value_name = "SAML_NAME=ATTRIBUTE")]
        map: Vec<String>,
    },
    /// Register a SIM-PKI (mobile signature) provider.
    AddSimpki {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// The provider's API base URL (connectors/SIMPKI.md).
        #[arg(long)]
        provider_url: String,
        /// A file holding the provider's API key (kept sealed at rest).
        #[arg(long)]
        api_key_file: PathBuf,
        /// PEM file of a trusted root CA (repeat for several).
        #[arg(long = "trust-anchor", required = true)]
        trust_anchors: Vec<PathBuf>,
        /// PEM file of an intermediate CA (repeat).
        #[arg(long = "intermediate")]
        intermediates: Vec<PathBuf>,
    },
    /// Register every identity provider of a federation's signed metadata aggregate (an
    /// md:EntitiesDescriptor), or bring them up to date from a newer one: IdPs no longer in
    /// it are disabled. Verified with --signing-cert only, never a key the document carries;
    /// an unsigned or expired aggregate is refused whole.
    ImportSamlAggregate {
        /// A short name for the federation, e.g. `vn-edu` (a later import with the same name
        /// updates these connectors).
        #[arg(long)]
        federation: String,
        /// The aggregate: a file or an https:// URL.
        #[arg(long)]
        metadata: String,
        /// The certificate (PEM or DER) the federation signs its aggregate with; repeat during
        /// a key rollover.
        #[arg(long = "signing-cert", required = true)]
        signing_certs: Vec<PathBuf>,
        /// A relying party that lists its connectors and should offer the federation's IdPs
        /// too (repeat).
        #[arg(long = "allow-rp")]
        allow_rps: Vec<String>,
    },
    /// List connectors.
    List,
    /// Show one connector (secrets are never shown).
    Show { id: String },
    /// Stop offering a connector.
    Disable { id: String },
    /// Offer a disabled connector again.
    Enable { id: String },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ClaimNamesArg {
    Portal,
    Standard,
}

#[derive(Debug, Subcommand)]
pub enum AgencyCommand {
    /// Import agencies from CSV (header: code,name_vi[,name_en,kind,source,note]); all or nothing.
    Import { file: PathBuf },
    /// Import the level-1 agencies shipped with fedhub (ministries and the 34 provinces).
    ImportBuiltin,
    /// List agencies under PARENT (level 1 when omitted).
    List {
        #[arg(long)]
        parent: Option<String>,
    },
    /// Show one agency and its children.
    Show { code: String },
    /// Register one agency.
    Add {
        code: String,
        #[arg(long)]
        name_vi: String,
        #[arg(long)]
        name_en: Option<String>,
        #[arg(long)]
        kind: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    Citizen,
    Organisation,
    Agency,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Add an account to the directory.
    Add {
        #[arg(long, value_enum)]
        kind: KindArg,
        #[arg(long)]
        name: String,
        /// CCCD (12 digits) or CMND (9 digits); required for citizens.
        #[arg(long)]
        national_id: Option<String>,
        /// Tax code (MST); required for organisations.
        #[arg(long)]
        tax_code: Option<String>,
        /// Agency identifier code; required for state agencies.
        #[arg(long)]
        agency_code: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        #[arg(long)]
        email: Option<String>,
    },
    /// Find accounts by CCCD/CMND, phone, tax code, agency code, email, id or name.
    Find {
        query: String,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Show one account.
    Show { id: String },
    /// Register a certificate (PEM or DER) to an account, e.g. a state agency's token
    /// certificate: signing in with it through CONNECTOR lands on this account.
    LinkCertificate {
        #[arg(long)]
        account: String,
        #[arg(long)]
        connector: String,
        #[arg(long)]
        certificate: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Grant top admin of a ministry or province for one relying party to a registered
    /// state-agency account (the federation operator's step).
    GrantTop {
        #[arg(long)]
        account: String,
        /// The relying party (id or entityID/client_id).
        #[arg(long)]
        rp: String,
        /// The ministry or province (agency code) the admin answers for.
        #[arg(long)]
        agency: String,
        /// A subordinate office authorised in writing to exercise the grant.
        #[arg(long)]
        delegated_office: Option<String>,
    },
    /// Revoke an admin grant.
    Revoke { id: String },
    /// List an account's admin grants.
    List {
        #[arg(long)]
        account: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConvertCommand {
    /// Convert one account: `--legacy USERNAME` (a legacy account) or `--from ACCOUNT` (a
    /// federated account handing over) into `--to ACCOUNT` (id, CCCD/CMND, tax code or agency
    /// code), both in the same unit and user group of the relying party. Prints the report.
    One {
        #[arg(long)]
        rp: String,
        #[arg(long, conflicts_with = "from", required_unless_present = "from")]
        legacy: Option<String>,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: String,
        /// Show the report without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Convert the pairs of a CSV (header `source,target`; a source is `legacy:USERNAME` or an
    /// account); choose how it commits. All or nothing: a refused row converts nothing and
    /// exits 2, naming the row. Per row: good rows convert, refused rows say why (exit 0).
    Bulk {
        #[arg(long)]
        rp: String,
        file: PathBuf,
        #[arg(long, value_enum)]
        commit: BulkCommit,
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BulkCommit {
    /// One bad row converts nothing.
    AllOrNothing,
    /// Good rows convert; bad rows say why.
    PerRow,
}

#[derive(Debug, Subcommand)]
pub enum LegacyCommand {
    /// Import a relying party's legacy accounts, all or nothing. CSV header:
    /// username,display_name,unit,user_group,roles,password_hash[,subject] (roles separated
    /// by `;`); JSON: an array of objects with those fields (roles an array). Password hashes
    /// only: bcrypt, PBKDF2-SHA256, Argon2id or salted SHA-256; never clear text.
    Import {
        /// The relying party (id or entityID/client_id).
        #[arg(long)]
        rp: String,
        file: PathBuf,
        /// The file's format (default: by its extension).
        #[arg(long, value_enum)]
        format: Option<crate::conversion::legacy::Format>,
    },
    /// List a relying party's legacy accounts (never their password hashes).
    List {
        /// The relying party (id or entityID/client_id).
        #[arg(long)]
        rp: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The newest entries.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: i64,
    },
    /// Entries since a time (RFC 3339, a date, or Unix seconds).
    Export {
        #[arg(long)]
        since: String,
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum RpCommand {
    /// Register a SAML service provider from its metadata (a file or an https:// URL).
    AddSaml {
        #[arg(long)]
        metadata: String,
        /// Agency code of the agency that owns the portal.
        #[arg(long)]
        owner: String,
        /// Name shown to people and admins (default: the entityID).
        #[arg(long)]
        name: Option<String>,
        /// What to sign in answers (default: both).
        #[arg(long, value_enum)]
        sign: Option<crate::rp::saml::SignWhat>,
        /// NameID format (default: persistent, pairwise per SP).
        #[arg(long, value_enum)]
        name_id: Option<crate::rp::saml::NameIdFormat>,
        /// Encrypt assertions (default: when the metadata has an encryption key).
        #[arg(long)]
        encrypt: Option<bool>,
        /// Attributes to release, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        release: Option<Vec<String>>,
        /// Let anyone in the directory sign in, with or without an activated membership in
        /// this portal (default: activated members only).
        #[arg(long)]
        without_membership: bool,
    },
    /// Register an OpenID Connect client (a gateway); its secret is printed once.
    AddOidc {
        /// Agency code of the agency that owns the client.
        #[arg(long)]
        owner: String,
        /// Exact redirect URI (repeat for several).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// client_id (default: generated).
        #[arg(long)]
        client_id: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Allowed scopes, comma-separated (default: openid,profile).
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        /// Exact post-logout redirect URI (repeat for several).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        #[arg(long)]
        backchannel_logout_uri: Option<String>,
        /// RS256 (default), ES256, EdDSA or PS256.
        #[arg(long)]
        signing_alg: Option<String>,
        #[arg(long, value_enum)]
        subject_type: Option<crate::rp::oidc::SubjectType>,
        #[arg(long, value_enum)]
        claim_profile: Option<crate::rp::oidc::ClaimProfile>,
        #[arg(long, value_enum)]
        access_token_format: Option<crate::rp::oidc::AccessTokenFormat>,
        /// How the client authenticates at the token endpoint (default client-secret-basic).
        #[arg(long, value_enum)]
        auth_method: Option<crate::rp::oidc::AuthMethod>,
        /// The client's public JWK Set (file), required for private-key-jwt.
        #[arg(long)]
        jwks: Option<std::path::PathBuf>,
        /// Let anyone in the directory sign in, member or not.
        #[arg(long)]
        without_membership: bool,
    },
    /// Issue an initial access token for dynamic client registration (RFC 7591) at
    /// /oidc/register; it is printed once and registers one client owned by --owner.
    RegistrationToken {
        #[arg(long)]
        owner: String,
        /// How long the token stays usable (default 24h).
        #[arg(long, default_value = "24h")]
        valid_for: humantime_serde::re::humantime::Duration,
    },
    /// Fetch again the metadata of SPs registered by URL (those due, or all with --all).
    Refresh {
        #[arg(long)]
        all: bool,
    },
    /// Choose the connectors a relying party offers (none listed: every enabled connector).
    Connectors {
        /// The relying party (id or entityID/client_id).
        rp: String,
        /// Connector ids, comma-separated; empty to offer every enabled connector.
        #[arg(long, value_delimiter = ',', num_args = 0..)]
        allow: Vec<String>,
    },
    /// Turn the self-service claim of legacy accounts (`/claim/RP`) on or off (default off).
    Claim {
        /// The relying party (id or entityID/client_id).
        rp: String,
        #[arg(long, conflicts_with = "off", required_unless_present = "off")]
        on: bool,
        #[arg(long)]
        off: bool,
    },
    /// Register the relying party's conversion webhook (its signing secret is printed once),
    /// remove it, or, with neither option, show it and its recent deliveries.
    Webhook {
        /// The relying party (id or entityID/client_id).
        rp: String,
        /// https:// URL the hub POSTs each conversion to (http:// only to a loopback address).
        #[arg(long, conflicts_with = "remove")]
        url: Option<String>,
        #[arg(long)]
        remove: bool,
    },
    /// List relying parties.
    List,
    /// Show one relying party (by id or entityID).
    Show { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ApiTokenCommand {
    /// Create a token for the admin API; it is printed once.
    Create { name: String },
    /// Revoke a token.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a personal token for an account (printed once).
    Issue {
        #[arg(long)]
        account: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a fresh at-rest key (base64) for keys.at_rest_key_file.
    GenerateAtRestKey,
    /// Rotate signing keys: the published next key starts signing, the current one stays
    /// published for keys.previous_key_grace, and a new next key is published.
    Rotate {
        #[arg(long, value_enum, default_value_t = PurposeArg::Saml)]
        purpose: PurposeArg,
    },
    /// List signing keys and their states.
    List,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PurposeArg {
    Saml,
    Oidc,
}

impl From<PurposeArg> for keys::Purpose {
    fn from(p: PurposeArg) -> Self {
        match p {
            PurposeArg::Saml => keys::Purpose::Saml,
            PurposeArg::Oidc => keys::Purpose::Oidc,
        }
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: Vec<(String, String)> = std::env::vars().collect();
    match run(cli, &env) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(e)) => {
            eprintln!("fedhub: {e}");
            ExitCode::from(3)
        }
        Err(Failure::App(e)) => {
            eprintln!("fedhub: {}", describe(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

fn describe(e: &Error) -> String {
    match e {
        Error::Invalid { field, rule } => format!("invalid {field}: {rule}"),
        Error::Conflict { field, rule } => format!("{field}: {rule}"),
        Error::Unavailable(why) => format!("database unavailable: {why}"),
        other => other.to_string(),
    }
}

#[derive(Debug)]
pub enum Failure {
    Config(ConfigError),
    App(Error),
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::Config(e)
    }
}
impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::App(e)
    }
}

pub fn run(cli: Cli, env: &[(String, String)]) -> std::result::Result<(), Failure> {
    if let Command::Keys(KeysCommand::GenerateAtRestKey) = cli.command {
        let key = fedhub_metadata::AtRestKey::generate_base64().map_err(Error::internal)?;
        println!("{key}");
        return Ok(());
    }
    if let Command::Demo(args) = cli.command {
        return demo::run(args, env);
    }
    if let Command::SignChallenge { key, chain, p12 } = &cli.command {
        return sign_challenge_cmd(key.as_deref(), chain.as_deref(), p12.as_deref(), env);
    }
    let loaded = Config::load(cli.config.as_deref(), env)?;
    let config = loaded.config;
    let clock = SystemClock;
    let actor = cli_actor(env);
    match cli.command {
        Command::Config => {
            if let Some(file) = &loaded.file {
                eprintln!("configuration file: {}", file.display());
            }
            let mut shown = config.clone();
            if shown.keys.at_rest_key.is_some() {
                shown.keys.at_rest_key = Some("[redacted]".into());
            }
            shown.database.url = redact_url(&shown.database.url);
            print!(
                "{}",
                toml::to_string_pretty(&shown).map_err(Error::internal)?
            );
            Ok(())
        }
        Command::Serve { no_migrate } => serve(config, no_migrate),
        Command::Migrate { check } => {
            let store = open(&config)?;
            if check {
                let n = store.pending_migrations()?;
                println!("{n} migration(s) pending");
                if n > 0 {
                    return Err(Error::Invalid {
                        field: "database".into(),
                        rule: format!("{n} migration(s) pending; run `fedhub migrate`"),
                    }
                    .into());
                }
            } else {
                let n = store.migrate()?;
                store.optimize()?;
                println!("applied {n} migration(s)");
            }
            Ok(())
        }
        Command::Backup { file } => backup_cmd(&config, &file, &clock, &actor),
        Command::Restore { file, force } => restore_cmd(&config, &file, force, &clock, &actor),
        Command::Agency(cmd) => {
            agency(&open_migrated(&config)?, cmd, &clock, &actor).map_err(Failure::App)
        }
        Command::Account(cmd) => {
            account(&open_migrated(&config)?, cmd, &clock, &actor).map_err(Failure::App)
        }
        Command::Audit(cmd) => audit_cmd(&open_migrated(&config)?, cmd).map_err(Failure::App),
        Command::Token(TokenCommand::Issue { account }) => {
            let store = open_migrated(&config)?;
            let now = clock.now();
            let event = Event::new(&actor, "api_token.issue").target(format!("account:{account}"));
            let (name, token) = audit::audited(&store, event, now, |c| {
                tokens::issue_personal_token(c, &account, now)
            })?;
            eprintln!("Personal API token {name} issued. It acts with the account's admin grants; it is shown once.");
            println!("{token}");
            Ok(())
        }
        Command::ApiToken(cmd) => {
            let store = open_migrated(&config)?;
            let now = clock.now();
            match cmd {
                ApiTokenCommand::Create { name } => {
                    let event = Event::new(&actor, "api_token.create").target(&name);
                    let token = audit::audited(&store, event, now, |c| {
                        tokens::create_api_token(c, &name, now)
                    })?;
                    eprintln!("API token {name:?} created. It is shown once; store it in a secret manager.");
                    println!("{token}");
                }
                ApiTokenCommand::Revoke { name } => {
                    let event = Event::new(&actor, "api_token.revoke").target(&name);
                    audit::audited(&store, event, now, |c| {
                        tokens::revoke_api_token(c, &name, now)
                    })?;
                    println!("revoked {name}");
                }
            }
            Ok(())
        }
        Command::Keys(cmd) => keys_cmd(&config, cmd, &clock, &actor),
        Command::Connector(cmd) => connector_cmd(&config, cmd, &clock, &actor),
        Command::Admin(cmd) => {
            admin_cmd(&open_migrated(&config)?, cmd, &clock, &actor).map_err(Failure::App)
        }
        Command::Convert(cmd) => {
            convert_cmd(&open_migrated(&config)?, &config, cmd, &clock, &actor)
                .map_err(Failure::App)
        }
        Command::Legacy(cmd) => {
            legacy_cmd(&open_migrated(&config)?, cmd, &clock, &actor).map_err(Failure::App)
        }
        Command::SignChallenge { .. } => Ok(()),
        Command::Rp(cmd) => {
            rp_cmd(&open_migrated(&config)?, &config, cmd, &clock, &actor).map_err(Failure::App)
        }
        Command::Demo(_) => Ok(()),
    }
}

/// `fedhub backup FILE`: `VACUUM INTO` through the store, on the database as it is (no
/// migration first: a backup taken before an upgrade must be of the old schema).
fn backup_cmd(
    config: &Config,
    file: &std::path::Path,
    clock: &dyn Clock,
    actor: &str,
) -> std::result::Result<(), Failure> {
    use crate::store::backup;
    let db = backup::sqlite_file(&config.database.url, "backup")?;
    if !db.is_file() {
        return Err(Error::not_found("database", db.display().to_string()).into());
    }
    let store = open(config)?;
    let event = Event::new(actor, "database.backup").target(file.display().to_string());
    let done = store.backup_to(file);
    let now = clock.now();
    let entry = match &done {
        Ok(s) => event.detail(s.to_string()),
        Err(e) => event.outcome(audit::Outcome::Failure).detail(e.to_string()),
    };
    // The live database records the backup (which the backup itself does not hold).
    let recorded = match &done {
        Err(Error::Unavailable(_)) => Ok(()),
        _ => store.write(|c| audit::record(c, &entry, now)),
    };
    let snapshot = done?;
    println!("wrote {}: {snapshot}", file.display());
    recorded?;
    Ok(())
}

/// `fedhub restore FILE [--force]`.
fn restore_cmd(
    config: &Config,
    file: &std::path::Path,
    force: bool,
    clock: &dyn Clock,
    actor: &str,
) -> std::result::Result<(), Failure> {
    use crate::store::backup::{self, Replaced};
    let db = backup::sqlite_file(&config.database.url, "restore")?;
    let event = Event::new(actor, "database.restore").target(file.display().to_string());
    let now = clock.now();
    match backup::restore(file, &db, force) {
        Ok((snapshot, replaced)) => {
            let what = match replaced {
                Replaced::Nothing => "a new database",
                Replaced::Empty => "an empty database",
                Replaced::Data => "a database holding data (--force)",
            };
            // The restored database records how it came back.
            let store = open(config)?;
            store.write(|c| {
                audit::record(
                    c,
                    &event.clone().detail(format!("{snapshot}; replaced {what}")),
                    now,
                )
            })?;
            println!(
                "restored {} into {}: {snapshot}",
                file.display(),
                db.display()
            );
            if snapshot.behind > 0 {
                eprintln!(
                    "{} migration(s) of this binary are not applied yet: `fedhub migrate` (or the next data command or `fedhub serve`) applies them",
                    snapshot.behind
                );
            }
            Ok(())
        }
        Err(e) => {
            // A refusal is recorded in the database that stays, when there is one.
            if !matches!(e, Error::Unavailable(_)) && backup::is_fedhub(&db) {
                let failed = event.outcome(audit::Outcome::Failure).detail(e.to_string());
                if let Ok(store) = open(config) {
                    if let Err(log_err) = store.write(|c| audit::record(c, &failed, now)) {
                        tracing::error!(error = %log_err, "could not write the audit entry for a refused restore");
                    }
                }
            }
            Err(e.into())
        }
    }
}

fn sign_challenge_cmd(
    key: Option<&std::path::Path>,
    chain: Option<&std::path::Path>,
    p12: Option<&std::path::Path>,
    env: &[(String, String)],
) -> std::result::Result<(), Failure> {
    use std::io::Read as _;
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| Error::invalid("stdin", e.to_string()))?;
    // Either the page's JSON request or the bare challenge text.
    let challenge =
        match serde_json::from_str::<fedhub_connectors::certificate::SignRequest>(input.trim()) {
            Ok(req) => req.challenge,
            Err(_) => input.trim_end_matches(['\n', '\r']).to_string(),
        };
    let read = |p: &std::path::Path| {
        std::fs::read(p)
            .map_err(|e| Error::invalid("file", format!("cannot read {}: {e}", p.display())))
    };
    let answer = match (key, chain, p12) {
        (Some(key), Some(chain), None) => {
            fedhub_connectors::certificate::sign_challenge(&challenge, &read(key)?, &read(chain)?)
        }
        (None, None, Some(p12)) => {
            let password = env
                .iter()
                .find(|(k, _)| k == "FEDHUB_P12_PASSWORD")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            fedhub_connectors::certificate::sign_challenge_pkcs12(
                &challenge,
                &read(p12)?,
                &password,
            )
        }
        _ => {
            return Err(Error::invalid("--key", "give --key and --chain, or --p12").into());
        }
    }
    .map_err(|e| Error::invalid("challenge", e.to_string()))?;
    println!(
        "{}",
        answer
            .to_json()
            .map_err(|e| Error::invalid("answer", e.to_string()))?
    );
    Ok(())
}

fn admin_cmd(store: &Store, cmd: AdminCommand, clock: &dyn Clock, actor: &str) -> Result<()> {
    use crate::directory::admin_grants;
    let now = clock.now();
    match cmd {
        AdminCommand::GrantTop {
            account,
            rp,
            agency,
            delegated_office,
        } => {
            let found = store.read(|c| match crate::rp::by_entity_id(c, &rp)? {
                Some(found) => Ok(found),
                None => crate::rp::get(c, &rp),
            })?;
            let req = admin_grants::TopGrant {
                account_id: account.clone(),
                rp_id: found.id.clone(),
                scope_agency_code: agency.clone(),
                delegated_office_code: delegated_office,
            };
            let event = Event::new(actor, "admin.grant_top")
                .target(format!("account:{account}"))
                .rp(found.id.clone())
                .detail(agency);
            let g = audit::audited(store, event, now, |c| admin_grants::grant_top(c, &req, now))?;
            println!("granted top admin {} ({})", g.id, found.entity_id);
        }
        AdminCommand::Revoke { id } => {
            let event = Event::new(actor, "admin.revoke").target(id.clone());
            audit::audited(store, event, now, |c| admin_grants::revoke(c, &id, now))?;
            println!("revoked {id}");
        }
        AdminCommand::List { account } => {
            for g in store.read(|c| admin_grants::of_account(c, &account))? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    g.id,
                    g.level,
                    g.rp_id.unwrap_or_default(),
                    g.scope_agency_code.unwrap_or_default(),
                    if g.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "live"
                    }
                );
            }
        }
    }
    Ok(())
}

/// After conversions commit: the first attempt of their webhook deliveries (the relying
/// party's, when it registered one). Not delivered here: `fedhub serve` retries.
fn deliver_webhooks(store: &Store, config: &Config, ids: Vec<String>, now: i64) {
    use crate::conversion::webhook;
    if ids.is_empty() {
        return;
    }
    let vault = match config.at_rest_key() {
        Ok(Some(vault)) => vault,
        _ => return,
    };
    let attempts = tokio::runtime::Runtime::new()
        .map_err(Error::internal)
        .and_then(|rt| {
            rt.block_on(async {
                let client = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(Error::internal)?;
                webhook::deliver_due(store, &vault, &client, now, Some(ids)).await
            })
        });
    match attempts {
        Ok(attempts) => {
            for a in attempts {
                match a.error {
                    None => eprintln!("webhook: conversion {} delivered", a.conversion_id),
                    Some(e) => eprintln!(
                        "webhook: conversion {} not delivered yet ({e}); `fedhub serve` retries it",
                        a.conversion_id
                    ),
                }
            }
        }
        Err(e) => eprintln!("webhook: not sent now ({e}); `fedhub serve` retries"),
    }
}

fn convert_cmd(
    store: &Store,
    config: &Config,
    cmd: ConvertCommand,
    clock: &dyn Clock,
    actor: &str,
) -> Result<()> {
    use crate::conversion::bulk::{self, Commit};
    let now = clock.now();
    let admin = crate::admin::memberships::Admin::operator(actor);
    // The relying party by id or entityID/client_id, as every other command takes it.
    let rp_named = match &cmd {
        ConvertCommand::One { rp, .. } | ConvertCommand::Bulk { rp, .. } => rp.clone(),
    };
    let rp_id = store
        .read(|c| crate::rp::by_id_or_entity_id(c, &rp_named))?
        .id;
    match cmd {
        ConvertCommand::One {
            rp: _,
            legacy,
            from,
            to,
            dry_run,
        } => {
            let source = match (legacy, from) {
                (Some(username), None) => format!("legacy:{username}"),
                (None, Some(account)) => account,
                _ => return Err(Error::invalid("legacy", "give --legacy or --from")),
            };
            let action = if dry_run {
                "conversion.dry_run"
            } else {
                "conversion.convert"
            };
            let event = Event::new(actor, action)
                .target(format!("{source} -> {to}"))
                .rp(rp_id.clone());
            let (results, _) = audit::audited(store, event, now, |c| {
                let (results, targets) = bulk::bulk(
                    c,
                    &admin,
                    &rp_id,
                    &[(source.clone(), to.clone())],
                    Commit::AllOrNothing,
                    dry_run,
                    now,
                )?;
                match results.first() {
                    Some(r) if !r.ok => Err(Error::invalid(
                        "conversion",
                        r.error.clone().unwrap_or_default(),
                    )),
                    _ => Ok((results, targets)),
                }
            })?;
            if let Some(report) = results.first().and_then(|r| r.report.as_ref()) {
                println!(
                    "{}",
                    serde_json::to_string_pretty(report).map_err(Error::internal)?
                );
                deliver_webhooks(store, config, report.id.iter().cloned().collect(), now);
            }
        }
        ConvertCommand::Bulk {
            rp: _,
            file,
            commit,
            dry_run,
        } => {
            let commit = match commit {
                BulkCommit::AllOrNothing => Commit::AllOrNothing,
                BulkCommit::PerRow => Commit::PerRow,
            };
            let text = std::fs::read_to_string(&file).map_err(|e| {
                Error::invalid("file", format!("cannot read {}: {e}", file.display()))
            })?;
            let pairs = bulk::parse_pairs(&text)?;
            let event = Event::new(actor, "conversion.bulk")
                .target(file.display().to_string())
                .rp(rp_id.clone())
                .detail(format!(
                    "{} rows, {commit:?}, dry run {dry_run}",
                    pairs.len()
                ));
            let (results, _) = audit::audited(store, event, now, |c| {
                let (results, targets) =
                    bulk::bulk(c, &admin, &rp_id, &pairs, commit, dry_run, now)?;
                // All or nothing stops at the first refused row: nothing converted, exit 2.
                match results.last() {
                    Some(bad) if commit == Commit::AllOrNothing && !bad.ok => Err(Error::invalid(
                        "file",
                        format!(
                            "row {} ({} -> {}): {}; nothing was converted (all or nothing)",
                            bad.row,
                            bad.source,
                            bad.target,
                            bad.error.as_deref().unwrap_or("refused")
                        ),
                    )),
                    _ => Ok((results, targets)),
                }
            })?;
            for r in &results {
                match (&r.error, &r.report) {
                    (None, Some(report)) => println!(
                        "row {}	ok	{} -> {}	{} role(s), {} grant(s) moved	{} -> {}",
                        r.row,
                        r.source,
                        r.target,
                        report.roles_moved.len(),
                        report.admin_grants_moved.len(),
                        report.old_subject,
                        report.new_subject
                    ),
                    (e, _) => println!(
                        "row {}	refused	{} -> {}	{}",
                        r.row,
                        r.source,
                        r.target,
                        e.as_deref().unwrap_or("")
                    ),
                }
            }
            let ok = results.iter().filter(|r| r.ok).count();
            let ids = results
                .iter()
                .filter_map(|r| r.report.as_ref().and_then(|r| r.id.clone()))
                .collect();
            deliver_webhooks(store, config, ids, now);
            eprintln!(
                "{ok} of {} row(s) {}",
                pairs.len(),
                if dry_run {
                    "would convert (dry run)"
                } else {
                    "converted"
                }
            );
        }
    }
    Ok(())
}

fn legacy_cmd(store: &Store, cmd: LegacyCommand, clock: &dyn Clock, actor: &str) -> Result<()> {
    use crate::conversion::legacy;
    let now = clock.now();
    let rp = match &cmd {
        LegacyCommand::Import { rp, .. } | LegacyCommand::List { rp } => rp,
    };
    let found = store.read(|c| match crate::rp::by_entity_id(c, rp)? {
        Some(found) => Ok(found),
        None => crate::rp::get(c, rp),
    })?;
    match cmd {
        LegacyCommand::Import { file, format, .. } => {
            let format = format
                .or_else(|| legacy::Format::of_path(&file))
                .ok_or_else(|| {
                    Error::invalid(
                        "format",
                        "give --format csv or json, or name the file .csv or .json",
                    )
                })?;
            let event = Event::new(actor, "legacy.import")
                .target(found.entity_id.clone())
                .rp(found.id.clone())
                .detail(file.display().to_string());
            let report = audit::audited(store, event, now, |c| {
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    Error::invalid("file", format!("cannot read {}: {e}", file.display()))
                })?;
                legacy::import(c, &found.id, &legacy::parse(&text, format)?, now)
            })?;
            let schemes: Vec<String> = report
                .schemes
                .iter()
                .map(|(scheme, n)| format!("{scheme} {n}"))
                .collect();
            println!(
                "imported {} legacy account(s) for {} ({})",
                report.imported,
                found.entity_id,
                schemes.join(", ")
            );
            if report.weak > 0 {
                eprintln!("{} of them have weak password hashes (accepted as they are; they are only used to prove a legacy account once)", report.weak);
            }
        }
        LegacyCommand::List { .. } => {
            let rows = store.read(|c| legacy::list(c, &found.id))?;
            for a in &rows {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    a.username,
                    a.display_name,
                    a.unit_agency_code.as_deref().unwrap_or("-"),
                    a.user_group.as_deref().unwrap_or("-"),
                    a.roles.join(";"),
                    a.hash_scheme,
                    a.subject,
                    a.converted_to.as_deref().unwrap_or("-")
                );
            }
            eprintln!("{} legacy account(s) for {}", rows.len(), found.entity_id);
        }
    }
    Ok(())
}

fn connector_cmd(
    config: &Config,
    cmd: ConnectorCommand,
    clock: &dyn Clock,
    actor: &str,
) -> std::result::Result<(), Failure> {
    let store = open_migrated(config)?;
    let now = clock.now();
    match cmd {
        ConnectorCommand::AddOidc {
            id,
            name,
            issuer,
            client_id,
            client_secret_file,
            scopes,
            claim_names,
        } => {
            let vault = config.at_rest_key()?.ok_or_else(|| ConfigError {
                key: "keys.at_rest_key_file".into(),
                problem: "the connector's client secret is sealed with the at-rest key".into(),
            })?;
            let secret = std::fs::read_to_string(&client_secret_file).map_err(|e| {
                Error::invalid(
                    "client_secret_file",
                    format!("cannot read {}: {e}", client_secret_file.display()),
                )
            })?;
            let reg = crate::upstream::OidcRegistration {
                id: id.clone(),
                display_name: name,
                issuer,
                client_id,
                client_secret: secret.trim().to_string(),
                scopes,
                claim_names: claim_names.map(|c| match c {
                    ClaimNamesArg::Portal => fedhub_connectors::oidc::ClaimNames::Portal,
                    ClaimNamesArg::Standard => fedhub_connectors::oidc::ClaimNames::Standard,
                }),
            };
            let event = Event::new(actor, "connector.add_oidc").target(id.clone());
            let c = audit::audited(&store, event, now, |c| {
                crate::upstream::add_oidc(c, &vault, &reg, now)
            })?;
            println!("connector {} ({}) added", c.id, c.display_name);
            println!(
                "register this redirect URI at the provider: {}/connectors/{}/callback",
                config.base_url(),
                c.id
            );
        }
        ConnectorCommand::AddCertificate {
            id,
            name,
            trust_anchors,
            intermediates,
            allow_unknown_revocation,
        } => {
            let read = |field: &str, paths: &[PathBuf]| -> Result<Vec<String>> {
                paths
                    .iter()
                    .map(|p| {
                        std::fs::read_to_string(p).map_err(|e| {
                            Error::invalid(field, format!("cannot read {}: {e}", p.display()))
                        })
                    })
                    .collect()
            };
            let mut cfg = fedhub_connectors::certificate::CertificateConfig::new(read(
                "trust_anchor",
                &trust_anchors,
            )?);
            cfg.intermediates_pem = read("intermediate", &intermediates)?;
            if allow_unknown_revocation {
                cfg.revocation = fedhub_connectors::certificate::RevocationPolicy::AllowUnknown;
            }
            let reg = crate::upstream::CertificateRegistration {
                id: id.clone(),
                display_name: name,
                config: cfg,
            };
            let event = Event::new(actor, "connector.add_certificate").target(id.clone());
            let c = audit::audited(&store, event, now, |c| {
                crate::upstream::add_certificate(c, &reg, now)
            })?;
            println!("connector {} ({}) added", c.id, c.display_name);
        }
        ConnectorCommand::AddSaml {
            id,
            name,
            metadata,
            name_id_format,
            map,
        } => {
            let metadata_xml = std::fs::read_to_string(&metadata).map_err(|e| {
                Error::invalid(
                    "metadata",
                    format!("cannot read {}: {e}", metadata.display()),
                )
            })?;
            let mut attribute_map = std::collections::BTreeMap::new();
            for pair in map {
                let (from, to) = pair.split_once('=').ok_or_else(|| {
                    Error::invalid("map", format!("{pair}: expected SAML_NAME=ATTRIBUTE"))
                })?;
                attribute_map.insert(from.trim().to_string(), to.trim().to_string());
            }
            let reg = crate::upstream::SamlRegistration {
                id: id.clone(),
                display_name: name,
                metadata_xml,
                name_id_format,
                attribute_map: Some(attribute_map),
            };
            let event = Event::new(actor, "connector.add_saml").target(id.clone());
            let c = audit::audited(&store, event, now, |c| {
                crate::upstream::add_saml(c, &reg, now)
            })?;
            println!("connector {} ({}) added", c.id, c.display_name);
            println!(
                "give the identity provider this service provider metadata: {}/connectors/{}/saml/metadata",
                config.base_url(),
                c.id
            );
        }
        ConnectorCommand::AddSimpki {
            id,
            name,
            provider_url,
            api_key_file,
            trust_anchors,
            intermediates,
        } => {
            let vault = config.at_rest_key()?.ok_or_else(|| ConfigError {
                key: "keys.at_rest_key_file".into(),
                problem: "the provider's API key is sealed with the at-rest key".into(),
            })?;
            let read = |field: &str, p: &PathBuf| -> Result<String> {
                std::fs::read_to_string(p)
                    .map_err(|e| Error::invalid(field, format!("cannot read {}: {e}", p.display())))
            };
            let mut cfg = fedhub_connectors::certificate::CertificateConfig::new(
                trust_anchors
                    .iter()
                    .map(|p| read("trust_anchor", p))
                    .collect::<Result<_>>()?,
            );
            cfg.intermediates_pem = intermediates
                .iter()
                .map(|p| read("intermediate", p))
                .collect::<Result<_>>()?;
            cfg.check()
                .map_err(|e| Error::invalid("trust_anchors_pem", e.to_string()))?;
            let reg = crate::upstream::SimPkiRegistration {
                id: id.clone(),
                display_name: name,
                provider_url,
                api_key: read("api_key_file", &api_key_file)?,
                certificate: cfg,
            };
            let event = Event::new(actor, "connector.add_simpki").target(id.clone());
            let c = audit::audited(&store, event, now, |c| {
                crate::upstream::add_simpki(c, &vault, &reg, now)
            })?;
            println!("connector {} ({}) added", c.id, c.display_name);
        }
        ConnectorCommand::ImportSamlAggregate {
            federation,
            metadata,
            signing_certs,
            allow_rps,
        } => {
            let event =
                Event::new(actor, "connector.import_saml_aggregate").target(federation.clone());
            let report = match import_aggregate(
                &store,
                &event,
                &federation,
                &metadata,
                &signing_certs,
                &allow_rps,
                now,
            ) {
                Ok(r) => r,
                Err(e) => {
                    if !matches!(e, Error::Unavailable(_)) {
                        let failed = event.outcome(audit::Outcome::Failure).detail(e.to_string());
                        store.write(|c| audit::record(c, &failed, now))?;
                    }
                    return Err(e.into());
                }
            };
            print_import(&report);
        }
        ConnectorCommand::List => {
            for c in store.read(crate::upstream::list)? {
                println!(
                    "{}\t{}\t{}\t{}",
                    c.id,
                    c.kind,
                    if c.enabled { "enabled" } else { "disabled" },
                    c.display_name
                );
            }
        }
        ConnectorCommand::Show { id } => {
            let c = store.read(|conn| crate::upstream::get(conn, &id))?;
            let mut value = serde_json::to_value(&c).map_err(Error::internal)?;
            let mut settings: serde_json::Value =
                serde_json::from_str(&c.config).map_err(Error::internal)?;
            if let Some(obj) = settings.as_object_mut() {
                for secret in ["client_secret_sealed", "api_key_sealed"] {
                    if obj.contains_key(secret) {
                        obj.insert(secret.into(), "(sealed)".into());
                    }
                }
            }
            value["settings"] = settings;
            println!(
                "{}",
                serde_json::to_string_pretty(&value).map_err(Error::internal)?
            );
        }
        ConnectorCommand::Disable { id } => {
            let event = Event::new(actor, "connector.disable").target(id.clone());
            audit::audited(&store, event, now, |c| {
                crate::upstream::set_enabled(c, &id, false, now)
            })?;
            println!("connector {id} disabled");
        }
        ConnectorCommand::Enable { id } => {
            let event = Event::new(actor, "connector.enable").target(id.clone());
            audit::audited(&store, event, now, |c| {
                crate::upstream::set_enabled(c, &id, true, now)
            })?;
            println!("connector {id} enabled");
        }
    }
    Ok(())
}

/// Reads and verifies a federation's aggregate, then imports it in one transaction with its
/// audit entry.
fn import_aggregate(
    store: &crate::store::Store,
    event: &Event,
    federation: &str,
    source: &str,
    signing_certs: &[PathBuf],
    allow_rps: &[String],
    now: i64,
) -> Result<crate::upstream::aggregate::ImportReport> {
    use fedhub_metadata::xml::aggregate;
    let mut certs = Vec::new();
    for path in signing_certs {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::invalid(
                "signing_cert",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let ders = fedhub_metadata::keys::certificates_from_bytes(&bytes)
            .map_err(|e| Error::invalid("signing_cert", format!("{}: {e}", path.display())))?;
        certs.extend(ders.into_iter().map(samael::crypto::CertificateDer::from));
    }
    let bytes = if source.starts_with("https://") || source.starts_with("http://") {
        let runtime = tokio::runtime::Runtime::new().map_err(Error::internal)?;
        runtime.block_on(crate::fetch::get(
            "metadata",
            source,
            aggregate::MAX_AGGREGATE_BYTES,
            std::time::Duration::from_secs(120),
        ))?
    } else {
        std::fs::read(source)
            .map_err(|e| Error::invalid("metadata", format!("cannot read {source}: {e}")))?
    };
    let agg = aggregate::verify(&bytes, &certs, now)
        .map_err(|e| Error::invalid("metadata", e.to_string()))?;
    store.write(|c| {
        let report = crate::upstream::aggregate::import(c, federation, agg, allow_rps, now)?;
        audit::record(c, &event.clone().detail(report.summary()), now)?;
        Ok(report)
    })
}

fn print_import(report: &crate::upstream::aggregate::ImportReport) {
    println!("{}", report.summary());
    for id in &report.disabled {
        println!("disabled {id}: no longer in the federation's aggregate");
    }
    for id in &report.kept_disabled {
        println!("kept disabled {id}: in the aggregate, but disabled by an operator");
    }
    for s in &report.skipped {
        println!("skipped {}: {}", s.entity_id, s.reason);
    }
    for (rp, n) in &report.allowed {
        println!("relying party {rp}: {n} more connectors offered");
    }
    for rp in &report.already_open {
        println!("relying party {rp} lists no connectors: it offers every enabled one already");
    }
}

/// Who ran the command, for the audit log.
fn cli_actor(env: &[(String, String)]) -> String {
    let user = env
        .iter()
        .find(|(k, _)| k == "USER")
        .map(|(_, v)| v.as_str())
        .unwrap_or("unknown");
    format!("cli:{user}")
}

/// The URL with its password replaced, for display.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match u.password() {
            Some(pw) => url.replacen(&format!(":{pw}@"), ":[redacted]@", 1),
            None => url.to_string(),
        },
        Err(_) => url.to_string(),
    }
}

pub fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        pool_size: config.database.pool_size,
        connect_timeout: config.database.connect_timeout,
        acquire_timeout: config.database.acquire_timeout,
        busy_timeout: config.database.busy_timeout,
        sqlite_inline: config.database.sqlite_inline,
    }
}

fn open(config: &Config) -> Result<Store> {
    Store::connect(&config.database.url, &store_options(config))
}

/// Commands that read or write data need the schema: apply migrations first.
fn open_migrated(config: &Config) -> Result<Store> {
    let store = open(config)?;
    store.migrate()?;
    Ok(store)
}

pub fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.logging.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match config.logging.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn serve(config: Config, no_migrate: bool) -> std::result::Result<(), Failure> {
    init_logging(&config);
    if config.at_rest_key()?.is_none() {
        return Err(ConfigError {
            key: "keys.at_rest_key_file".into(),
            problem: "the hub needs a key to seal signing keys at rest: run `fedhub keys generate-at-rest-key > at-rest.key` and set keys.at_rest_key_file (or FEDHUB_KEYS_AT_REST_KEY)".into(),
        }
        .into());
    }
    let addr = config.listen_addr()?;
    let runtime = tokio::runtime::Runtime::new().map_err(Error::internal)?;
    // Take the port before touching the database: a start that cannot listen changes nothing.
    let listener = runtime.block_on(web::bind(addr))?;
    let store = open(&config)?;
    if config.database.migrate_on_start && !no_migrate {
        let n = store.migrate()?;
        tracing::info!(applied = n, "database migrated");
    } else {
        let pending = store.pending_migrations()?;
        if pending > 0 {
            return Err(Error::invalid(
                "database",
                format!("{pending} migration(s) pending; run `fedhub migrate`"),
            )
            .into());
        }
    }
    if let Err(e) = store.optimize() {
        tracing::warn!(error = %e, "could not refresh the query planner's statistics");
    }
    let vault = config
        .at_rest_key()?
        .ok_or_else(|| Error::internal("at-rest key vanished"))?;
    let now = SystemClock.now();
    for purpose in [keys::Purpose::Saml, keys::Purpose::Oidc] {
        // Keys already stored must open with this at-rest key: a wrong one would fail every
        // sign-in (and new keys sealed with it would split the store), so refuse to start.
        match store.read(|c| keys::signer(c, &vault, purpose).map(drop)) {
            Ok(()) | Err(Error::Unavailable(_)) => {}
            Err(e) => {
                return Err(ConfigError {
                    key: "keys.at_rest_key_file".into(),
                    problem: e.to_string(),
                }
                .into());
            }
        }
    }
    // First start: a current key to sign with and a next key already published, per purpose.
    for purpose in [keys::Purpose::Saml, keys::Purpose::Oidc] {
        store.write(|c| keys::ensure_all(c, &vault, purpose, config.saml_key_alg(), now))?;
    }
    let rotation = (!config.keys.rotate_every.is_zero()).then(|| crate::jobs::RotationPlan {
        vault: Arc::new(vault),
        saml_alg: config.saml_key_alg(),
        every: config.keys.rotate_every,
        grace: config.keys.previous_key_grace,
    });
    runtime.block_on(async move {
        tracing::info!(listen = %config.server.listen, public_url = %config.server.public_url, "fedhub serving");
        let grace = config.server.shutdown_grace;
        let federation = config.federation_certs().map_err(|e| Error::invalid(e.key, e.problem))?;
        // This node's name in the job leases: background jobs run on one node at a time.
        let node = crate::store::new_id();
        tokio::spawn(crate::rp::refresh::forever(store.clone(), federation, Arc::new(SystemClock), node.clone()));
        if let Some(plan) = rotation {
            tokio::spawn(crate::jobs::rotate_keys_forever(store.clone(), Arc::new(SystemClock), node.clone(), plan));
        }
        tokio::spawn(crate::jobs::housekeeping_forever(store.clone(), Arc::new(SystemClock), node));
        let state = web::AppState::new(config, store, Arc::new(SystemClock))?;
        tokio::spawn(crate::conversion::webhook::forever(state.clone()));
        web::serve(listener, state, web::shutdown_signal(), grace).await
    })?;
    Ok(())
}

fn agency(store: &Store, cmd: AgencyCommand, clock: &dyn Clock, actor: &str) -> Result<()> {
    let now = clock.now();
    let out = &mut std::io::stdout();
    match cmd {
        AgencyCommand::Import { file } => {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                Error::invalid("file", format!("cannot read {}: {e}", file.display()))
            })?;
            let event = Event::new(actor, "agency.import").target(file.display().to_string());
            let report =
                audit::audited(store, event, now, |c| agencies::import_csv(c, &text, now))?;
            println!(
                "imported: {} added, {} updated, {} unchanged",
                report.added, report.updated, report.unchanged
            );
        }
        AgencyCommand::ImportBuiltin => {
            let event = Event::new(actor, "agency.import").target("builtin");
            let report = audit::audited(store, event, now, |c| {
                agencies::import_csv(c, agencies::BUILTIN_CSV, now)
            })?;
            println!(
                "imported: {} added, {} updated, {} unchanged",
                report.added, report.updated, report.unchanged
            );
        }
        AgencyCommand::List { parent } => {
            let parent = parent.as_deref().map(AgencyCode::parse).transpose()?;
            let rows = store.read(|c| agencies::list(c, parent.as_ref()))?;
            for a in &rows {
                let _ = writeln!(out, "{}\t{}\t{}\t{}", a.code, a.level, a.kind, a.name_vi);
            }
            eprintln!("{} agencies", rows.len());
        }
        AgencyCommand::Show { code } => {
            let code = AgencyCode::parse(&code)?;
            let (a, children) =
                store.read(|c| Ok((agencies::get(c, &code)?, agencies::list(c, Some(&code))?)))?;
            let _ = writeln!(out, "code:     {}\nlevel:    {}\nparent:   {}\nname:     {}\nname_en:  {}\nkind:     {}\nsource:   {}\nchildren: {}",
                a.code, a.level, a.parent_code.as_deref().unwrap_or("-"), a.name_vi, a.name_en.as_deref().unwrap_or("-"), a.kind, a.source, children.len());
            for ch in children {
                let _ = writeln!(out, "  {}\t{}", ch.code, ch.name_vi);
            }
        }
        AgencyCommand::Add {
            code,
            name_vi,
            name_en,
            kind,
        } => {
            let input = agencies::AgencyInput {
                code,
                name_vi,
                name_en,
                kind,
                source: Some("local".into()),
                note: None,
            };
            let event = Event::new(actor, "agency.add").target(input.code.trim());
            let a = audit::audited(store, event, now, |c| {
                agencies::add(c, &input.validate()?, now)
            })?;
            println!("added {} (level {}) {}", a.code, a.level, a.name_vi);
        }
    }
    Ok(())
}

fn account(store: &Store, cmd: AccountCommand, clock: &dyn Clock, actor: &str) -> Result<()> {
    let now = clock.now();
    match cmd {
        AccountCommand::Add {
            kind,
            name,
            national_id,
            tax_code,
            agency_code,
            phone,
            email,
        } => {
            let kind = match kind {
                KindArg::Citizen => "citizen",
                KindArg::Organisation => "organisation",
                KindArg::Agency => "agency",
            };
            let input = accounts::AccountInput {
                kind: kind.into(),
                display_name: name,
                national_id,
                tax_code,
                agency_code,
                phone,
                email,
            };
            let event = Event::new(actor, "account.add").target(input.key_identifier());
            let a = audit::audited(store, event, now, |c| {
                accounts::add(c, &input.validate()?, now)
            })?;
            println!("{}", a.id);
            eprintln!("added {} account {} ({})", a.kind, a.display_name, a.id);
        }
        AccountCommand::Find { query, limit } => {
            let rows = store.read(|c| accounts::find(c, &query, limit))?;
            for a in &rows {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    a.id,
                    a.kind,
                    a.display_name,
                    a.national_id
                        .as_deref()
                        .or(a.tax_code.as_deref())
                        .or(a.agency_code.as_deref())
                        .unwrap_or("-"),
                    a.phone.as_deref().unwrap_or("-")
                );
            }
            eprintln!("found {} result(s)", rows.len());
        }
        AccountCommand::LinkCertificate {
            account,
            connector,
            certificate,
        } => {
            let bytes = std::fs::read(&certificate).map_err(|e| {
                Error::invalid(
                    "certificate",
                    format!("cannot read {}: {e}", certificate.display()),
                )
            })?;
            let der = fedhub_metadata::keys::certificates_from_bytes(&bytes)
                .map_err(|e| Error::invalid("certificate", e.to_string()))?
                .into_iter()
                .next()
                .ok_or_else(|| Error::invalid("certificate", "no certificate in the file"))?;
            let event = Event::new(actor, "account.link_certificate")
                .target(format!("account:{account}"))
                .detail(connector.clone());
            let subject = audit::audited(store, event, now, |c| {
                crate::upstream::link_certificate(c, &account, &connector, &der, now)
            })?;
            println!("certificate {subject} now signs in as account {account}");
        }
        AccountCommand::Show { id } => {
            let a = store.read(|c| accounts::get(c, &id))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&a).map_err(Error::internal)?
            );
            if let Some(Ok(fedhub_identifiers::PersonalId::Cccd(cccd))) = a
                .national_id
                .as_deref()
                .map(fedhub_identifiers::PersonalId::parse)
            {
                eprintln!(
                    "CCCD: born {} in {} ({}), {}",
                    cccd.birth_year(),
                    cccd.province_name().unwrap_or("?"),
                    cccd.province_code(),
                    match cccd.gender() {
                        fedhub_identifiers::Gender::Male => "male",
                        fedhub_identifiers::Gender::Female => "female",
                    }
                );
            }
        }
    }
    Ok(())
}

fn audit_cmd(store: &Store, cmd: AuditCommand) -> Result<()> {
    let out = std::io::stdout();
    match cmd {
        AuditCommand::Tail { lines } => {
            for e in store.read(|c| audit::tail(c, lines))? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    rfc3339(e.at),
                    e.outcome,
                    e.actor,
                    e.action,
                    e.target.unwrap_or_default(),
                    e.detail.unwrap_or_default()
                );
            }
        }
        AuditCommand::Export { since, format } => {
            let since = parse_time(&since).ok_or_else(|| {
                Error::invalid(
                    "since",
                    "use RFC 3339 (2026-11-27T08:00:00Z), a date (2026-11-27) or Unix seconds",
                )
            })?;
            let rows = store.read(|c| audit::since(c, since, i64::MAX))?;
            match format {
                ExportFormat::Csv => audit::write_csv(&rows, out.lock())?,
                ExportFormat::Jsonl => audit::write_jsonl(&rows, out.lock())?,
            }
        }
    }
    Ok(())
}

fn read_metadata(source: &str) -> Result<(String, Option<String>)> {
    let bytes = if source.starts_with("https://") || source.starts_with("http://") {
        let runtime = tokio::runtime::Runtime::new().map_err(Error::internal)?;
        runtime.block_on(crate::fetch::get(
            "metadata",
            source,
            1024 * 1024,
            std::time::Duration::from_secs(15),
        ))?
    } else {
        std::fs::read(source)
            .map_err(|e| Error::invalid("metadata", format!("cannot read {source}: {e}")))?
    };
    let text = String::from_utf8(bytes).map_err(|_| Error::invalid("metadata", "not UTF-8"))?;
    let url = source.starts_with("http").then(|| source.to_string());
    Ok((text, url))
}

fn rp_cmd(
    store: &Store,
    config: &Config,
    cmd: RpCommand,
    clock: &dyn Clock,
    actor: &str,
) -> Result<()> {
    let now = clock.now();
    let federation = config
        .federation_certs()
        .map_err(|e| Error::invalid(e.key, e.problem))?;
    match cmd {
        RpCommand::AddSaml {
            metadata,
            owner,
            name,
            sign,
            name_id,
            encrypt,
            release,
            without_membership,
        } => {
            let event = Event::new(actor, "rp.add_saml").target(&metadata);
            let (xml, url) = match read_metadata(&metadata) {
                Ok(v) => v,
                Err(e) => {
                    let failed = event.outcome(audit::Outcome::Failure).detail(e.to_string());
                    store.write(|c| audit::record(c, &failed, now))?;
                    return Err(e);
                }
            };
            let reg = crate::rp::saml::SamlRegistration {
                metadata_xml: xml,
                metadata_url: url,
                owner_agency_code: owner,
                display_name: name,
                sign,
                encrypt_assertion: encrypt,
                name_id_format: name_id,
                release,
                require_activated_membership: Some(!without_membership),
            };
            let rp = audit::audited(store, event, now, |c| {
                crate::rp::saml::add_under(c, &reg, &federation, now)
            })?;
            println!("{}", rp.id);
            eprintln!(
                "registered SAML service provider {} ({}), owned by {}",
                rp.entity_id, rp.display_name, rp.owner_agency_code
            );
        }
        RpCommand::AddOidc {
            owner,
            redirect_uris,
            client_id,
            name,
            scopes,
            post_logout_redirect_uris,
            backchannel_logout_uri,
            signing_alg,
            subject_type,
            claim_profile,
            access_token_format,
            auth_method,
            jwks,
            without_membership,
        } => {
            let jwks = match jwks {
                Some(path) => {
                    let text = std::fs::read_to_string(&path).map_err(|e| {
                        Error::invalid("jwks", format!("cannot read {}: {e}", path.display()))
                    })?;
                    Some(serde_json::from_str(&text).map_err(|e| {
                        Error::invalid("jwks", format!("{} is not JSON: {e}", path.display()))
                    })?)
                }
                None => None,
            };
            let reg = crate::rp::oidc::OidcRegistration {
                client_id,
                owner_agency_code: owner,
                display_name: name,
                redirect_uris,
                post_logout_redirect_uris,
                backchannel_logout_uri,
                scopes,
                signing_alg: signing_alg.or_else(|| Some(config.keys.oidc_algorithm.clone())),
                subject_type,
                claim_profile,
                access_token_format,
                access_token_ttl: None,
                refresh_token_ttl: None,
                require_activated_membership: Some(!without_membership),
                token_endpoint_auth_method: auth_method,
                jwks,
            };
            let event = Event::new(actor, "rp.add_oidc").target(
                reg.client_id
                    .clone()
                    .unwrap_or_else(|| "(generated)".into()),
            );
            let done = audit::audited(store, event, now, |c| crate::rp::oidc::add(c, &reg, now))?;
            println!("client_id:     {}", done.rp.entity_id);
            if let Some(secret) = &done.client_secret {
                println!("client_secret: {secret}");
                eprintln!("The secret is shown once and stored only as a hash: give it to the client's operators now.");
            }
        }
        RpCommand::RegistrationToken { owner, valid_for } => {
            let ttl = valid_for.as_secs() as i64;
            let event = Event::new(actor, "rp.registration_token").target(owner.clone());
            let token = audit::audited(store, event, now, |c| {
                crate::oidc::register::issue_token(c, &owner, actor, ttl, now)
            })?;
            println!("{token}");
            eprintln!(
                "Give this token to the client's operators: it registers one client owned by {owner} at {}/oidc/register until {}.",
                config.base_url(),
                rfc3339(now + ttl)
            );
        }
        RpCommand::Refresh { all } => {
            let runtime = tokio::runtime::Runtime::new().map_err(Error::internal)?;
            for o in runtime.block_on(crate::rp::refresh::run_under(store, federation, now, all))? {
                println!(
                    "{}\t{}\t{}",
                    o.entity_id,
                    o.result,
                    o.detail.unwrap_or_default()
                );
            }
        }
        RpCommand::List => {
            for rp in store.read(crate::rp::list)? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    rp.id, rp.protocol, rp.entity_id, rp.owner_agency_code, rp.display_name
                );
            }
        }
        RpCommand::Connectors { rp, allow } => {
            let found = store.read(|c| match crate::rp::by_entity_id(c, &rp)? {
                Some(found) => Ok(found),
                None => crate::rp::get(c, &rp),
            })?;
            let event = Event::new(actor, "rp.connectors")
                .target(found.entity_id.clone())
                .rp(found.id.clone())
                .detail(allow.join(","));
            audit::audited(store, event, now, |c| {
                crate::upstream::allow_for_rp(c, &found.id, &allow)
            })?;
            if allow.is_empty() {
                println!("{} offers every enabled connector", found.entity_id);
            } else {
                println!("{} offers {}", found.entity_id, allow.join(", "));
            }
        }
        RpCommand::Claim { rp, on, off } => {
            let on = on && !off;
            let found = store.read(|c| crate::rp::by_id_or_entity_id(c, &rp))?;
            let event = Event::new(actor, "rp.claim")
                .target(found.entity_id.clone())
                .rp(found.id.clone())
                .detail(if on { "on" } else { "off" });
            audit::audited(store, event, now, |c| {
                crate::rp::set_claim_enabled(c, &found.id, on, now)
            })?;
            if on {
                println!(
                    "{}: people may claim their legacy accounts at {}/claim/{}",
                    found.entity_id,
                    config.base_url(),
                    found.id
                );
            } else {
                println!("{}: the self-service claim is off", found.entity_id);
            }
        }
        RpCommand::Webhook { rp, url, remove } => {
            use crate::conversion::webhook;
            let found = store.read(|c| crate::rp::by_id_or_entity_id(c, &rp))?;
            match (url, remove) {
                (Some(url), _) => {
                    let vault = config
                        .at_rest_key()
                        .map_err(|e| Error::invalid(e.key, e.problem))?
                        .ok_or_else(|| {
                            Error::invalid(
                                "keys.at_rest_key_file",
                                "the webhook secret is sealed with the at-rest key: configure it first",
                            )
                        })?;
                    let event = Event::new(actor, "rp.webhook.set")
                        .target(found.entity_id.clone())
                        .rp(found.id.clone())
                        .detail(url.clone());
                    let registered = audit::audited(store, event, now, |c| {
                        webhook::set(c, &vault, &found.id, &url, now)
                    })?;
                    eprintln!(
                        "Webhook of {} set to {}. Its signing secret is shown once: give it to the relying party (see docs/conversion.md).",
                        found.entity_id, registered.url
                    );
                    println!("{}", registered.secret);
                }
                (None, true) => {
                    let event = Event::new(actor, "rp.webhook.remove")
                        .target(found.entity_id.clone())
                        .rp(found.id.clone());
                    audit::audited(store, event, now, |c| webhook::remove(c, &found.id, now))?;
                    println!("{}: webhook removed", found.entity_id);
                }
                (None, false) => {
                    println!(
                        "{}\t{}",
                        found.entity_id,
                        found.webhook_url.as_deref().unwrap_or("(no webhook)")
                    );
                    for d in store.read(|c| webhook::deliveries(c, &found.id, 20))? {
                        println!(
                            "{}\tconversion {}\t{}\t{} attempt(s)\t{}",
                            d.id,
                            d.conversion_id,
                            d.status,
                            d.attempts,
                            d.last_error.unwrap_or_default()
                        );
                    }
                }
            }
        }
        RpCommand::Show { id } => {
            let rp = store.read(|c| match crate::rp::by_entity_id(c, &id)? {
                Some(rp) => Ok(rp),
                None => crate::rp::get(c, &id),
            })?;
            let mut value = serde_json::to_value(&rp).map_err(Error::internal)?;
            if rp.protocol == "saml" {
                let mut s = serde_json::to_value(crate::rp::saml::settings(&rp)?)
                    .map_err(Error::internal)?;
                s["metadata_xml"] = serde_json::json!("(stored; see the registered metadata)");
                value["saml"] = s;
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&value).map_err(Error::internal)?
            );
        }
    }
    Ok(())
}

fn keys_cmd(
    config: &Config,
    cmd: KeysCommand,
    clock: &dyn Clock,
    actor: &str,
) -> std::result::Result<(), Failure> {
    let store = open_migrated(config)?;
    match cmd {
        KeysCommand::Rotate { purpose } => {
            let vault = config.at_rest_key()?.ok_or_else(|| ConfigError {
                key: "keys.at_rest_key_file".into(),
                problem: "rotating keys needs the at-rest key that seals them".into(),
            })?;
            let now = clock.now();
            let grace = config.keys.previous_key_grace.as_secs() as i64;
            let purpose = keys::Purpose::from(purpose);
            let event = Event::new(actor, "keys.rotate").target(purpose.as_str());
            let lines = match purpose {
                keys::Purpose::Saml => vec![config.saml_key_alg()],
                keys::Purpose::Oidc => keys::OIDC_FAMILIES.to_vec(),
            };
            let rotations = audit::audited(&store, event, now, |c| {
                lines
                    .iter()
                    .map(|alg| keys::rotate(c, &vault, purpose, *alg, grace, now))
                    .collect::<crate::error::Result<Vec<_>>>()
            })?;
            for (alg, r) in lines.iter().zip(&rotations) {
                println!(
                    "signing with {} ({} {} keys)",
                    r.current,
                    purpose.as_str(),
                    alg.as_str()
                );
                if let Some(p) = &r.previous {
                    println!(
                        "previous {p} stays published until {}",
                        rfc3339(now + grace)
                    );
                }
                println!(
                    "next {} is published and will sign after the next rotation",
                    r.next
                );
                for k in &r.retired {
                    println!("retired {k}");
                }
            }
        }
        KeysCommand::List => {
            for k in store.read(keys::list)? {
                println!(
                    "{}\t{}\t{}\t{}\tcreated {}\t{}",
                    k.kid,
                    k.purpose,
                    k.alg,
                    k.state,
                    rfc3339(k.created_at),
                    k.retire_at
                        .map(|t| format!("published until {}", rfc3339(t)))
                        .unwrap_or_default()
                );
            }
        }
        KeysCommand::GenerateAtRestKey => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn database_passwords_are_redacted_for_display() {
        assert_eq!(
            redact_url("postgres://fedhub:s3cr%40t@db.example:5432/fedhub"),
            "postgres://fedhub:[redacted]@db.example:5432/fedhub"
        );
        assert_eq!(redact_url("sqlite://fedhub.db"), "sqlite://fedhub.db");
    }
}
