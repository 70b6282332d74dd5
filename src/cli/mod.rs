//! `mailgate admin …`: a thin client of the admin HTTP API. It logs in once and keeps the
//! server address and the token in the user's configuration directory; every other command
//! is one request whose JSON answer it prints.

mod import;

use clap::Subcommand;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Admin {
    /// Log in and keep the token (the password is read from standard input or
    /// MAILGATE_PASSWORD).
    Login {
        login: String,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
    },
    /// End the session and forget the token.
    Logout,
    /// Who you are and your organizations.
    Me,
    /// Act in this organization from now on (its id or name, as `me` lists them); the
    /// MAILGATE_ORG environment variable still wins for one command.
    Use { org: String },
    /// Leave an organization (its id or name): your grants there end at once.
    Leave { org: String },
    /// Change your password: current and new, one per line on standard input.
    Password,
    Domains {
        #[command(subcommand)]
        action: Domains,
    },
    Mailboxes {
        #[command(subcommand)]
        action: Mailboxes,
    },
    Aliases {
        #[command(subcommand)]
        action: Aliases,
    },
    Members {
        #[command(subcommand)]
        action: Members,
    },
    Invitations {
        #[command(subcommand)]
        action: Invitations,
    },
    Grants {
        #[command(subcommand)]
        action: Grants,
    },
    Teams {
        #[command(subcommand)]
        action: Teams,
    },
    Partnerships {
        #[command(subcommand)]
        action: Partnerships,
    },
    /// The server's organizations (operators create them; owners rename their own).
    Orgs {
        #[command(subcommand)]
        action: Orgs,
    },
    /// The server's operators, who create organizations.
    Operators {
        #[command(subcommand)]
        action: Operators,
    },
    /// The organization's audit log.
    Audit {
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        csv: bool,
    },
    /// Any other request: `mailgate admin raw GET /api/v1/me`.
    Raw {
        method: String,
        path: String,
        body: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum Domains {
    List,
    Add {
        name: String,
    },
    Remove {
        name: String,
    },
    /// The DNS records the domain needs, as a zone-file snippet with each one's state.
    Dns {
        name: String,
    },
    /// Look for the domain's ownership token in the DNS.
    Verify {
        name: String,
    },
}

#[derive(Subcommand)]
pub enum Mailboxes {
    List,
    /// Create a mailbox; without --password one is generated and shown once.
    Create {
        address: String,
        #[arg(long)]
        password: Option<String>,
        #[arg(long)]
        quota_bytes: Option<u64>,
    },
    Show {
        id: u64,
    },
    /// Who can read it, and why.
    Access {
        id: u64,
    },
    Delete {
        id: u64,
    },
    /// Move mail in: from another IMAP server (followed with a progress bar), or from an
    /// mbox file or a Maildir.
    Import(import::ImportArgs),
}

#[derive(Subcommand)]
pub enum Aliases {
    List,
    Add { address: String, mailbox_id: u64 },
    Remove { address: String },
}

#[derive(Subcommand)]
pub enum Members {
    List,
    Role {
        user: u64,
        role: String,
    },
    /// Stop the user's logins everywhere (and end their open sessions).
    Disable {
        user: u64,
    },
    Enable {
        user: u64,
    },
    Remove {
        user: u64,
    },
}

#[derive(Subcommand)]
pub enum Invitations {
    List,
    /// Invite by email; `--grant MAILBOX_ID:PRESET` (read, read-write, send-as, …) repeats.
    Send {
        email: String,
        role: String,
        #[arg(long = "grant")]
        grants: Vec<String>,
        #[arg(long = "team")]
        teams: Vec<u64>,
    },
    Resend {
        id: String,
    },
    Withdraw {
        id: String,
    },
    /// Accept an invitation link's token; the password is read from standard input.
    Accept {
        token: String,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
    },
}

#[derive(Subcommand)]
pub enum Grants {
    List,
    /// Give a user (or a team) a preset or RFC 4314 letters on one mailbox (or all).
    Add {
        #[arg(long, conflicts_with = "team")]
        user: Option<u64>,
        #[arg(long)]
        team: Option<u64>,
        /// A mailbox id; leave out for every mailbox of the organization.
        #[arg(long)]
        mailbox: Option<u64>,
        /// read, read-write, send-as, send-on-behalf, manage, or letters such as lrsw.
        rights: String,
        /// When the grant starts counting, RFC 3339 (2026-12-24T00:00:00Z); default: now.
        #[arg(long)]
        from: Option<String>,
        /// When it ends by itself, RFC 3339; open sessions using it end then.
        #[arg(long)]
        until: Option<String>,
    },
    Remove {
        id: u64,
    },
}

#[derive(Subcommand)]
pub enum Teams {
    List,
    Create { name: String },
    Rename { id: u64, name: String },
    Delete { id: u64 },
    AddMember { id: u64, user: u64 },
    RemoveMember { id: u64, user: u64 },
}

#[derive(Subcommand)]
pub enum Orgs {
    List,
    /// A new organization; its owner is an existing login, or a new one whose first
    /// password the answer shows once.
    Create {
        name: String,
        #[arg(long)]
        owner: String,
    },
    Rename {
        id: u64,
        name: String,
    },
    /// Suspend: mail kept, logins and deliveries refused with temporary answers.
    Suspend {
        id: u64,
    },
    /// End a suspension (and cancel a deletion still in its grace period).
    Resume {
        id: u64,
    },
    /// Suspend now, delete after the server's grace period, its mail exported first.
    Delete {
        id: u64,
    },
}

#[derive(Subcommand)]
pub enum Operators {
    List,
    /// Make an existing user an operator.
    Add {
        login: String,
    },
    /// No longer an operator (the last one stays).
    Remove {
        user: u64,
    },
}

#[derive(Subcommand)]
pub enum Partnerships {
    List,
    /// Invite a partner organization: `full`, or the mailbox ids it may manage.
    Invite {
        partner: u64,
        #[arg(long)]
        mailboxes: Vec<u64>,
    },
    Accept {
        id: u64,
    },
    Refuse {
        id: u64,
    },
    /// End it; your password is read from standard input.
    End {
        id: u64,
    },
    /// The organizations you manage as a partner (CSV with --csv).
    Clients {
        #[arg(long)]
        csv: bool,
    },
}

/// What `login` keeps between commands.
#[derive(Serialize, Deserialize)]
struct Saved {
    server: String,
    token: String,
    /// The organization `use` chose.
    #[serde(default)]
    org: Option<u64>,
}

fn saved_path() -> Result<PathBuf, String> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .ok_or("neither XDG_CONFIG_HOME nor HOME is set")?;
    Ok(base.join("mailgate").join("admin.json"))
}

fn load() -> Result<Saved, String> {
    let path = saved_path()?;
    let text = std::fs::read_to_string(&path)
        .map_err(|_| "not logged in: run `mailgate admin login <login>` first".to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn save(saved: &Saved) -> Result<(), String> {
    let path = saved_path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string(saved).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    // The token is a credential: readable by its owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(())
}

/// One line of standard input (a password), or MAILGATE_PASSWORD when set.
fn secret_line() -> Result<String, String> {
    if let Ok(p) = std::env::var("MAILGATE_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("reading the password: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

struct Client {
    http: reqwest::Client,
    server: String,
    token: Option<String>,
    /// The organization `use` chose, if any.
    org: Option<u64>,
}

impl Client {
    fn logged_in() -> Result<Client, String> {
        let saved = load()?;
        Ok(Client {
            http: reqwest::Client::new(),
            server: saved.server,
            token: Some(saved.token),
            org: saved.org,
        })
    }

    fn anonymous(server: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            server: server.trim_end_matches('/').to_string(),
            token: None,
            org: None,
        }
    }

    /// The id of one of the caller's organizations, named by its id or its name.
    async fn find_org(&self, named: &str) -> Result<u64, String> {
        let me = self.json(Method::GET, "/api/v1/me", None).await?;
        let orgs = me["organizations"].as_array().cloned().unwrap_or_default();
        orgs.iter()
            .find(|o| {
                o["id"].as_u64().is_some_and(|id| id.to_string() == named)
                    || o["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(named))
            })
            .and_then(|o| o["id"].as_u64())
            .ok_or_else(|| format!("you belong to no organization {named:?} (see `me`)"))
    }

    /// Sends a request; returns the answer's body, or the API's error message.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<String, String> {
        let mut req = self.http.request(method, format!("{}{path}", self.server));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{}: {e}", self.server))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            return Ok(text);
        }
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        Err(format!("{status}: {message}"))
    }

    /// POSTs a file (`media`) rather than JSON; returns the answer.
    async fn upload(&self, path: &str, media: &str, bytes: Vec<u8>) -> Result<Value, String> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.server))
            .header(reqwest::header::CONTENT_TYPE, media)
            .body(bytes);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{}: {e}", self.server))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(value);
        }
        let message = value["message"]
            .as_str()
            .map_or(value.to_string(), str::to_string);
        Err(format!("{status}: {message}"))
    }

    async fn json(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let text = self.send(method, path, body).await?;
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| format!("the server's answer is not JSON: {e}"))
    }

    /// The organization commands act in: MAILGATE_ORG, else the one `use` chose, else the
    /// first one of `GET /me`.
    async fn org(&self) -> Result<String, String> {
        if let Ok(org) = std::env::var("MAILGATE_ORG") {
            return Ok(format!("/api/v1/orgs/{org}"));
        }
        if let Some(org) = self.org {
            return Ok(format!("/api/v1/orgs/{org}"));
        }
        let me = self.json(Method::GET, "/api/v1/me", None).await?;
        let id = me["organizations"][0]["id"]
            .as_u64()
            .ok_or("you belong to no organization")?;
        Ok(format!("/api/v1/orgs/{id}"))
    }
}

/// Runs one `mailgate admin` command; what it prints goes to standard output.
pub async fn run(command: Admin) -> Result<(), String> {
    let output = match command {
        Admin::Login { login, server } => return log_in(&login, &server).await,
        Admin::Logout => {
            let client = Client::logged_in()?;
            client.send(Method::DELETE, "/api/v1/session", None).await?;
            let _ = std::fs::remove_file(saved_path()?);
            return Ok(());
        }
        Admin::Use { org } => {
            let client = Client::logged_in()?;
            let id = client.find_org(&org).await?;
            let mut saved = load()?;
            saved.org = Some(id);
            save(&saved)?;
            println!("Commands now act in organization {id}.");
            return Ok(());
        }
        Admin::Invitations {
            action: Invitations::Accept { token, server },
        } => {
            let password = secret_line()?;
            let path = format!("/api/v1/invitations/{token}/accept");
            Client::anonymous(&server)
                .send(Method::POST, &path, Some(json!({"password": password})))
                .await?
        }
        Admin::Mailboxes {
            action: Mailboxes::Import(args),
        } => {
            let client = Client::logged_in()?;
            let org = client.org().await?;
            return import::run(&client, &org, args).await;
        }
        other => {
            let client = Client::logged_in()?;
            let (method, path, body) = request(&client, other).await?;
            client.send(method, &path, body).await?
        }
    };
    print(&output);
    Ok(())
}

fn print(output: &str) {
    match serde_json::from_str::<Value>(output) {
        Ok(value) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_else(|_| output.to_string())
            );
            if let Some(path) = value["accept_path"].as_str() {
                let token = path.trim_end_matches("/accept").rsplit('/').next();
                eprintln!(
                    "The invitation mail could not be delivered. Hand the invitee this, once:\n  \
                     mailgate admin invitations accept {}",
                    token.unwrap_or(path)
                );
            }
        }
        Err(_) => print!("{output}"),
    }
}

async fn log_in(login: &str, server: &str) -> Result<(), String> {
    let password = secret_line()?;
    let client = Client::anonymous(server);
    let answer = client
        .json(
            Method::POST,
            "/api/v1/session",
            Some(json!({"login": login, "password": password})),
        )
        .await?;
    let token = answer["token"].as_str().ok_or("no token in the answer")?;
    save(&Saved {
        server: client.server.clone(),
        token: token.to_string(),
        org: None,
    })?;
    if answer["must_change_password"] == true {
        println!("Logged in. The password must be changed first: mailgate admin password");
    } else {
        println!("Logged in to {}.", client.server);
    }
    Ok(())
}

type Request = (Method, String, Option<Value>);

/// The request a command stands for.
async fn request(client: &Client, command: Admin) -> Result<Request, String> {
    use Method as M;
    let get = |path: String| Ok((M::GET, path, None));
    Ok(match command {
        Admin::Me => (M::GET, "/api/v1/me".into(), None),
        Admin::Leave { org } => {
            let id = client.find_org(&org).await?;
            (M::DELETE, format!("/api/v1/me/organizations/{id}"), None)
        }
        Admin::Password => {
            let current = secret_line()?;
            let new = secret_line()?;
            let body = json!({"current_password": current, "new_password": new});
            (M::POST, "/api/v1/me/password".into(), Some(body))
        }
        Admin::Raw { method, path, body } => {
            let method =
                M::from_bytes(method.to_uppercase().as_bytes()).map_err(|e| e.to_string())?;
            let body = body
                .map(|b| serde_json::from_str(&b).map_err(|e| format!("the body is not JSON: {e}")))
                .transpose()?;
            (method, path, body)
        }
        Admin::Audit { action, since, csv } => {
            let mut query = vec![];
            if let Some(a) = action {
                query.push(format!("action={a}"));
            }
            if let Some(s) = since {
                query.push(format!("since={s}"));
            }
            if csv {
                query.push("format=csv".into());
            }
            return get(format!("{}/audit?{}", client.org().await?, query.join("&")));
        }
        Admin::Domains { action } => {
            let o = client.org().await?;
            match action {
                Domains::List => (M::GET, format!("{o}/domains"), None),
                Domains::Add { name } => {
                    (M::POST, format!("{o}/domains"), Some(json!({"name": name})))
                }
                Domains::Remove { name } => (M::DELETE, format!("{o}/domains/{name}"), None),
                Domains::Dns { name } => {
                    (M::GET, format!("{o}/domains/{name}/dns?format=zone"), None)
                }
                Domains::Verify { name } => (
                    M::POST,
                    format!("{o}/domains/{name}/verify"),
                    Some(json!({})),
                ),
            }
        }
        Admin::Mailboxes { action } => {
            let o = client.org().await?;
            match action {
                Mailboxes::List => (M::GET, format!("{o}/mailboxes"), None),
                Mailboxes::Create {
                    address,
                    password,
                    quota_bytes,
                } => {
                    let mut body = json!({"address": address});
                    if let Some(p) = password {
                        body["password"] = json!(p);
                    }
                    if let Some(q) = quota_bytes {
                        body["quota_bytes"] = json!(q);
                    }
                    (M::POST, format!("{o}/mailboxes"), Some(body))
                }
                Mailboxes::Show { id } => (M::GET, format!("{o}/mailboxes/{id}"), None),
                Mailboxes::Access { id } => (M::GET, format!("{o}/mailboxes/{id}/access"), None),
                Mailboxes::Delete { id } => (M::DELETE, format!("{o}/mailboxes/{id}"), None),
                Mailboxes::Import(_) => unreachable!("handled before"),
            }
        }
        Admin::Aliases { action } => {
            let o = client.org().await?;
            match action {
                Aliases::List => (M::GET, format!("{o}/aliases"), None),
                Aliases::Add {
                    address,
                    mailbox_id,
                } => (
                    M::POST,
                    format!("{o}/aliases"),
                    Some(json!({"address": address, "mailbox_id": mailbox_id})),
                ),
                Aliases::Remove { address } => (M::DELETE, format!("{o}/aliases/{address}"), None),
            }
        }
        Admin::Members { action } => {
            let o = client.org().await?;
            match action {
                Members::List => (M::GET, format!("{o}/members"), None),
                Members::Role { user, role } => (
                    M::PATCH,
                    format!("{o}/members/{user}"),
                    Some(json!({"role": role})),
                ),
                Members::Disable { user } => (
                    M::PATCH,
                    format!("{o}/members/{user}"),
                    Some(json!({"disabled": true})),
                ),
                Members::Enable { user } => (
                    M::PATCH,
                    format!("{o}/members/{user}"),
                    Some(json!({"disabled": false})),
                ),
                Members::Remove { user } => (M::DELETE, format!("{o}/members/{user}"), None),
            }
        }
        Admin::Invitations { action } => {
            let o = client.org().await?;
            match action {
                Invitations::List => (M::GET, format!("{o}/invitations"), None),
                Invitations::Send {
                    email,
                    role,
                    grants,
                    teams,
                } => {
                    let grants = grants
                        .iter()
                        .map(|g| {
                            let (mailbox, preset) = g
                                .split_once(':')
                                .ok_or_else(|| format!("--grant {g}: use MAILBOX_ID:PRESET"))?;
                            let mailbox: u64 = mailbox.parse().map_err(|_| {
                                format!("--grant {g}: {mailbox} is not a mailbox id")
                            })?;
                            Ok(json!({"target": {"mailbox": mailbox}, "preset": preset}))
                        })
                        .collect::<Result<Vec<Value>, String>>()?;
                    let body =
                        json!({"email": email, "role": role, "grants": grants, "teams": teams});
                    (M::POST, format!("{o}/invitations"), Some(body))
                }
                Invitations::Resend { id } => {
                    (M::POST, format!("{o}/invitations/{id}/resend"), None)
                }
                Invitations::Withdraw { id } => (M::DELETE, format!("{o}/invitations/{id}"), None),
                Invitations::Accept { .. } => unreachable!("handled before"),
            }
        }
        Admin::Grants { action } => {
            let o = client.org().await?;
            match action {
                Grants::List => (M::GET, format!("{o}/grants"), None),
                Grants::Add {
                    user,
                    team,
                    mailbox,
                    rights,
                    from,
                    until,
                } => {
                    let grantee = match (user, team) {
                        (Some(u), None) => json!({"user": u}),
                        (None, Some(t)) => json!({"team": t}),
                        _ => return Err("give --user or --team".into()),
                    };
                    let target = match mailbox {
                        Some(m) => json!({"mailbox": m}),
                        None => json!("all_mailboxes"),
                    };
                    let mut body = json!({"grantee": grantee, "target": target});
                    let is_letters = rights.chars().all(|c| "lrswipkxtea".contains(c));
                    body[if is_letters { "rights" } else { "preset" }] = json!(rights);
                    for (field, time) in [("valid_from", from), ("valid_until", until)] {
                        if let Some(time) = time {
                            body[field] = json!(rfc3339_millis(&time)?);
                        }
                    }
                    (M::POST, format!("{o}/grants"), Some(body))
                }
                Grants::Remove { id } => (M::DELETE, format!("{o}/grants/{id}"), None),
            }
        }
        Admin::Teams { action } => {
            let o = client.org().await?;
            match action {
                Teams::List => (M::GET, format!("{o}/teams"), None),
                Teams::Create { name } => {
                    (M::POST, format!("{o}/teams"), Some(json!({"name": name})))
                }
                Teams::Rename { id, name } => (
                    M::PATCH,
                    format!("{o}/teams/{id}"),
                    Some(json!({"name": name})),
                ),
                Teams::Delete { id } => (M::DELETE, format!("{o}/teams/{id}"), None),
                Teams::AddMember { id, user } => {
                    (M::PUT, format!("{o}/teams/{id}/members/{user}"), None)
                }
                Teams::RemoveMember { id, user } => {
                    (M::DELETE, format!("{o}/teams/{id}/members/{user}"), None)
                }
            }
        }
        Admin::Orgs { action } => match action {
            Orgs::List => (M::GET, "/api/v1/orgs".into(), None),
            Orgs::Create { name, owner } => (
                M::POST,
                "/api/v1/orgs".into(),
                Some(json!({"name": name, "owner": owner})),
            ),
            Orgs::Rename { id, name } => (
                M::PATCH,
                format!("/api/v1/orgs/{id}"),
                Some(json!({"name": name})),
            ),
            Orgs::Suspend { id } => (
                M::PATCH,
                format!("/api/v1/orgs/{id}"),
                Some(json!({"suspended": true})),
            ),
            Orgs::Resume { id } => (
                M::PATCH,
                format!("/api/v1/orgs/{id}"),
                Some(json!({"suspended": false})),
            ),
            Orgs::Delete { id } => (M::DELETE, format!("/api/v1/orgs/{id}"), None),
        },
        Admin::Operators { action } => match action {
            Operators::List => (M::GET, "/api/v1/operators".into(), None),
            Operators::Add { login } => (
                M::POST,
                "/api/v1/operators".into(),
                Some(json!({"login": login})),
            ),
            Operators::Remove { user } => (M::DELETE, format!("/api/v1/operators/{user}"), None),
        },
        Admin::Partnerships { action } => {
            let o = client.org().await?;
            match action {
                Partnerships::List => (M::GET, format!("{o}/partnerships"), None),
                Partnerships::Invite { partner, mailboxes } => {
                    let scope = if mailboxes.is_empty() {
                        json!("full")
                    } else {
                        json!({"limited": mailboxes})
                    };
                    let body = json!({"partner": partner, "scope": scope});
                    (M::POST, format!("{o}/partnerships"), Some(body))
                }
                Partnerships::Accept { id } => {
                    (M::POST, format!("{o}/partnerships/{id}/accept"), None)
                }
                Partnerships::Refuse { id } => {
                    (M::POST, format!("{o}/partnerships/{id}/refuse"), None)
                }
                Partnerships::End { id } => {
                    let password = secret_line()?;
                    let body = json!({"password": password});
                    (M::POST, format!("{o}/partnerships/{id}/end"), Some(body))
                }
                Partnerships::Clients { csv } => {
                    let format = if csv { "?format=csv" } else { "" };
                    (M::GET, format!("{o}/clients{format}"), None)
                }
            }
        }
        Admin::Login { .. } | Admin::Logout | Admin::Use { .. } => unreachable!("handled before"),
    })
}

/// An RFC 3339 time (`2026-12-24T00:00:00Z`) as the API takes it: milliseconds since the epoch.
fn rfc3339_millis(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("{text:?} is no RFC 3339 time (2026-12-24T00:00:00Z): {e}"))
}
