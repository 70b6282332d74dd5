//! Client autoconfiguration: what a mail client asks before its user types a server name.
//! Thunderbird's autoconfig (config-v1.1.xml), Outlook's Autodiscover v1 (POX XML) and v2
//! (JSON redirect to v1), and an Apple configuration profile. Each advertises the public host
//! and the implicit-TLS ports of `[public]`, for addresses of domains hosted here only.

use super::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use crate::services::Services;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

/// What a client should connect to.
pub(crate) struct Settings {
    pub(crate) address: String,
    domain: String,
    pub(crate) host: String,
    pub(crate) imap_port: u16,
    pub(crate) submission_port: u16,
}

pub(crate) fn settings(services: &Services, address: Option<&str>) -> ApiResult<Settings> {
    let address = address
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ApiError::BadRequest("the email address is required".into()))?;
    let domain = crate::model::domain_of(address)
        .ok_or_else(|| ApiError::BadRequest(format!("{address:?} is not an email address")))?
        .to_ascii_lowercase();
    if services.store.domain(&domain)?.is_none() {
        return Err(ApiError::NotFound(format!("{domain} is not hosted here")));
    }
    let public = &services.config.public;
    let c = &services.config;
    let first =
        |ports: &[std::net::SocketAddr], standard| ports.first().map_or(standard, |a| a.port());
    Ok(Settings {
        address: address.to_string(),
        domain,
        host: public
            .hostname
            .clone()
            .unwrap_or_else(|| c.hostname.clone()),
        imap_port: public
            .imap_port
            .unwrap_or_else(|| first(&c.imap.listen_tls, 993)),
        submission_port: public
            .submission_port
            .unwrap_or_else(|| first(&c.submission.listen_tls, 465)),
    })
}

/// XML text: the five characters that cannot appear as themselves.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn xml_response(content_type: &'static str, body: String) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ThunderbirdQuery {
    emailaddress: Option<String>,
}

/// `GET /.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=…` (and `/mail/…`).
pub async fn thunderbird(
    State(services): State<Arc<Services>>,
    ApiQuery(q): ApiQuery<ThunderbirdQuery>,
) -> ApiResult<Response> {
    let s = settings(&services, q.emailaddress.as_deref())?;
    let (host, domain) = (xml(&s.host), xml(&s.domain));
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="{domain}">
    <domain>{domain}</domain>
    <displayName>{domain} (mailgate)</displayName>
    <displayShortName>{domain}</displayShortName>
    <incomingServer type="imap">
      <hostname>{host}</hostname>
      <port>{imap}</port>
      <socketType>SSL</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>{host}</hostname>
      <port>{smtp}</port>
      <socketType>SSL</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </outgoingServer>
  </emailProvider>
</clientConfig>
"#,
        imap = s.imap_port,
        smtp = s.submission_port,
    );
    Ok(xml_response("application/xml; charset=utf-8", body))
}

/// `POST /autodiscover/autodiscover.xml`: Outlook's request names the address in
/// `<EMailAddress>`; the answer is the "outlook" response schema (2006a).
pub async fn outlook_v1(
    State(services): State<Arc<Services>>,
    body: Result<String, axum::extract::rejection::StringRejection>,
) -> ApiResult<Response> {
    let body = body.map_err(|r| ApiError::BadRequest(r.body_text()))?;
    let address = between(&body, "<EMailAddress>", "</EMailAddress>");
    let s = settings(&services, address)?;
    let (host, login) = (xml(&s.host), xml(&s.address));
    let protocol = |kind: &str, port: u16| {
        format!(
            "      <Protocol>
        <Type>{kind}</Type>
        <Server>{host}</Server>
        <Port>{port}</Port>
        <LoginName>{login}</LoginName>
        <DomainRequired>off</DomainRequired>
        <SPA>off</SPA>
        <SSL>on</SSL>
        <AuthRequired>on</AuthRequired>
      </Protocol>
"
        )
    };
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">
    <Account>
      <AccountType>email</AccountType>
      <Action>settings</Action>
{imap}{smtp}    </Account>
  </Response>
</Autodiscover>
"#,
        imap = protocol("IMAP", s.imap_port),
        smtp = protocol("SMTP", s.submission_port),
    );
    Ok(xml_response("application/xml; charset=utf-8", body))
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct OutlookV2Query {
    email: Option<String>,
    protocol: Option<String>,
}

/// `GET /autodiscover/autodiscover.json?Email=…&Protocol=AutodiscoverV1`: v2 only points
/// to v1 for protocols other than Exchange's own.
pub async fn outlook_v2(
    State(services): State<Arc<Services>>,
    ApiQuery(q): ApiQuery<OutlookV2Query>,
) -> ApiResult<Response> {
    outlook_v2_answer(&services, q.email.as_deref(), q.protocol.as_deref())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct OutlookV2PathQuery {
    protocol: Option<String>,
}

/// `GET /autodiscover/autodiscover.json/v1.0/{email}?Protocol=AutodiscoverV1`: the form of
/// the same request that Outlook sends first, the address in the path.
pub async fn outlook_v2_path(
    State(services): State<Arc<Services>>,
    ApiPath(email): ApiPath<String>,
    ApiQuery(q): ApiQuery<OutlookV2PathQuery>,
) -> ApiResult<Response> {
    outlook_v2_answer(&services, Some(&email), q.protocol.as_deref())
}

fn outlook_v2_answer(
    services: &Services,
    email: Option<&str>,
    protocol: Option<&str>,
) -> ApiResult<Response> {
    let s = settings(services, email)?;
    match protocol {
        Some(p) if p.eq_ignore_ascii_case("AutodiscoverV1") => {
            let url = format!("https://{}/autodiscover/autodiscover.xml", s.host);
            Ok(axum::Json(serde_json::json!({"Protocol": "AutodiscoverV1", "Url": url}))
                .into_response())
        }
        other => Ok((
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({
                "ErrorCode": "InvalidProtocol",
                "ErrorMessage": format!("The given protocol value '{}' is invalid. Supported values are 'AutodiscoverV1'", other.unwrap_or("")),
            })),
        )
            .into_response()),
    }
}

/// `GET /apple/mobileconfig?emailaddress=…`: a configuration profile iPhones and Macs install.
pub async fn apple(
    State(services): State<Arc<Services>>,
    ApiQuery(q): ApiQuery<ThunderbirdQuery>,
) -> ApiResult<Response> {
    let s = settings(&services, q.emailaddress.as_deref())?;
    let (host, address, domain) = (xml(&s.host), xml(&s.address), xml(&s.domain));
    let uuid = |salt: &str| {
        let h = crate::store::BlobId::of(format!("{salt}:{}", s.address).as_bytes()).hex();
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
        .to_uppercase()
    };
    let reversed: Vec<&str> = s.domain.rsplit('.').collect();
    let id = xml(&reversed.join("."));
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadContent</key>
  <array>
    <dict>
      <key>EmailAccountDescription</key><string>{address}</string>
      <key>EmailAccountType</key><string>EmailTypeIMAP</string>
      <key>EmailAddress</key><string>{address}</string>
      <key>IncomingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>IncomingMailServerHostName</key><string>{host}</string>
      <key>IncomingMailServerPortNumber</key><integer>{imap}</integer>
      <key>IncomingMailServerUseSSL</key><true/>
      <key>IncomingMailServerUsername</key><string>{address}</string>
      <key>OutgoingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>OutgoingMailServerHostName</key><string>{host}</string>
      <key>OutgoingMailServerPortNumber</key><integer>{smtp}</integer>
      <key>OutgoingMailServerUseSSL</key><true/>
      <key>OutgoingMailServerUsername</key><string>{address}</string>
      <key>OutgoingPasswordSameAsIncomingPassword</key><true/>
      <key>PayloadDisplayName</key><string>{address}</string>
      <key>PayloadIdentifier</key><string>{id}.mailgate.account</string>
      <key>PayloadType</key><string>com.apple.mail.managed</string>
      <key>PayloadUUID</key><string>{account_uuid}</string>
      <key>PayloadVersion</key><integer>1</integer>
    </dict>
  </array>
  <key>PayloadDisplayName</key><string>Mail for {domain}</string>
  <key>PayloadIdentifier</key><string>{id}.mailgate</string>
  <key>PayloadType</key><string>Configuration</string>
  <key>PayloadUUID</key><string>{profile_uuid}</string>
  <key>PayloadVersion</key><integer>1</integer>
</dict>
</plist>
"#,
        imap = s.imap_port,
        smtp = s.submission_port,
        account_uuid = uuid("account"),
        profile_uuid = uuid("profile"),
    );
    Ok(xml_response("application/x-apple-aspen-config", body))
}
