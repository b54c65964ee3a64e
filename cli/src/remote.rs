//! `--api URL`: the CLI's read commands against a deployed stack's JSON API instead of the
//! local store. API Gateway authorises the routes with IAM, so every request is signed with
//! SigV4 (service `execute-api`) using the standard AWS credential chain (environment,
//! profile, SSO, instance role…): an admin needs neither curl nor the console.

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningError, SigningSettings, sign};
use aws_sigv4::sign::v4;
use reqwest::Url;
use serde::de::DeserializeOwned;
use std::time::{Duration, SystemTime};

/// The service name API Gateway expects in the SigV4 credential scope.
const SERVICE: &str = "execute-api";
const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("--api {url}: {reason}")]
    BadUrl { url: String, reason: &'static str },
    #[error(
        "no AWS credentials found for --api (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or log in with `aws sso login`)"
    )]
    NoCredentials(#[source] Option<CredentialsError>),
    #[error(
        "cannot tell the AWS region of {host}: set AWS_REGION (or use the execute-api URL, which names it)"
    )]
    NoRegion { host: String },
    #[error("cannot sign the request to the API")]
    Signing(#[source] SigningError),
    #[error("cannot sign the request to the API")]
    SigningParams(#[source] v4::signing_params::BuildError),
    #[error("cannot reach the API at {url}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The API's own error (`{"error": {"code", "message"}}`) or API Gateway's (`{"message"}`).
    #[error("the API answered {status}: {message}{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Api {
        status: u16,
        code: Option<String>,
        message: String,
    },
    #[error("the API answered {status} with a body that is not what the CLI expects: {detail}")]
    Unexpected { status: u16, detail: String },
}

/// A signed client for one deployed API.
pub struct RemoteApi {
    base: Url,
    http: reqwest::Client,
    credentials: Credentials,
    region: String,
}

impl RemoteApi {
    /// Checks the URL, resolves the region and the credentials once (a command makes a few
    /// requests within seconds; the credentials outlive it).
    pub async fn connect(raw_url: &str) -> Result<Self, RemoteError> {
        let base = parse_base_url(raw_url)?;
        let host = base.host_str().unwrap_or_default().to_owned();
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = execute_api_region(&host) {
            loader = loader.region(aws_config::Region::new(region));
        }
        let config = loader.load().await;
        let region = config
            .region()
            .map(ToString::to_string)
            .ok_or(RemoteError::NoRegion { host })?;
        let provider = config
            .credentials_provider()
            .ok_or(RemoteError::NoCredentials(None))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| RemoteError::NoCredentials(Some(e)))?;
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("seatkeeper-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| RemoteError::Transport {
                url: base.to_string(),
                source,
            })?;
        Ok(Self {
            base,
            http,
            credentials,
            region,
        })
    }

    /// `base` + the path segments (each escaped) + the query.
    pub fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// A signed GET answered with JSON.
    pub async fn get_json<T: DeserializeOwned>(&self, url: Url) -> Result<T, RemoteError> {
        let response = self
            .send(reqwest::Method::GET, url, "application/json")
            .await?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|source| RemoteError::Transport {
                url: self.base.to_string(),
                source,
            })?;
        serde_json::from_slice(&body).map_err(|e| RemoteError::Unexpected {
            status,
            detail: e.to_string(),
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: Url,
        accept: &'static str,
    ) -> Result<reqwest::Response, RemoteError> {
        let signed = self.sign(method.as_str(), &url, b"", SystemTime::now())?;
        let mut request = self
            .http
            .request(method, url.clone())
            .header(reqwest::header::ACCEPT, accept);
        for (name, value) in signed {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|source| RemoteError::Transport {
                url: url.to_string(),
                source,
            })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        Err(api_error(status, &body))
    }

    /// The headers that sign this request (`authorization`, `x-amz-date`, and
    /// `x-amz-security-token` for temporary credentials).
    fn sign(
        &self,
        method: &str,
        url: &Url,
        body: &[u8],
        at: SystemTime,
    ) -> Result<Vec<(&'static str, String)>, RemoteError> {
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .map_err(RemoteError::SigningParams)?
            .into();
        let request = SignableRequest::new(
            method,
            url.as_str(),
            std::iter::empty(),
            SignableBody::Bytes(body),
        )
        .map_err(RemoteError::Signing)?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(RemoteError::Signing)?
            .into_parts();
        let (headers, _query) = instructions.into_parts();
        Ok(headers
            .into_iter()
            .map(|h| (h.name(), h.value().to_owned()))
            .collect())
    }
}

/// Only https, except to this machine (a local test server or `seatkeeper serve`): a
/// signature sent in clear could be replayed for minutes.
fn parse_base_url(raw: &str) -> Result<Url, RemoteError> {
    let bad = |reason| RemoteError::BadUrl {
        url: raw.to_owned(),
        reason,
    };
    let url = Url::parse(raw).map_err(|_| bad("not a URL"))?;
    if url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(bad("not an http(s) URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(bad("must use https")),
        _ => Err(bad("not an http(s) URL")),
    }
}

/// `abc123.execute-api.eu-west-1.amazonaws.com` → `eu-west-1`.
fn execute_api_region(host: &str) -> Option<String> {
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        [_, "execute-api", region, "amazonaws", "com", ..] if !region.is_empty() => {
            Some((*region).to_owned())
        }
        _ => None,
    }
}

fn api_error(status: u16, body: &[u8]) -> RemoteError {
    #[derive(serde::Deserialize)]
    struct Detail {
        code: Option<String>,
        message: String,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum ErrorBody {
        Api { error: Detail },
        Gateway { message: String },
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody::Api { error }) => RemoteError::Api {
            status,
            code: error.code,
            message: error.message,
        },
        Ok(ErrorBody::Gateway { message }) => RemoteError::Api {
            status,
            code: None,
            message,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.chars().take(300).collect();
            RemoteError::Unexpected {
                status,
                detail: if text.trim().is_empty() {
                    "(empty body)".to_owned()
                } else {
                    text
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_is_read_from_an_execute_api_host() {
        assert_eq!(
            execute_api_region("a1b2c3.execute-api.eu-west-1.amazonaws.com").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(execute_api_region("api.example.com"), None);
        assert_eq!(execute_api_region("127.0.0.1"), None);
    }

    #[test]
    fn plain_http_is_refused_except_to_this_machine() {
        assert!(parse_base_url("https://a1.execute-api.us-east-1.amazonaws.com/prod").is_ok());
        assert!(parse_base_url("http://127.0.0.1:9000").is_ok());
        assert!(parse_base_url("http://localhost:9000/").is_ok());
        assert!(parse_base_url("http://api.example.com").is_err());
        assert!(parse_base_url("https://user:pw@api.example.com").is_err());
        assert!(parse_base_url("ftp://api.example.com").is_err());
        assert!(parse_base_url("not a url").is_err());
    }

    #[test]
    fn api_errors_are_read_in_both_shapes() {
        let e = api_error(
            404,
            br#"{"error":{"code":"not_found","message":"integration x not found"}}"#,
        );
        assert_eq!(
            e.to_string(),
            "the API answered 404: integration x not found (not_found)"
        );
        let e = api_error(403, br#"{"message":"Missing Authentication Token"}"#);
        assert_eq!(
            e.to_string(),
            "the API answered 403: Missing Authentication Token"
        );
        let e = api_error(502, b"<html>bad gateway</html>");
        assert!(e.to_string().contains("bad gateway"), "{e}");
    }
}
