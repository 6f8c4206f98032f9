//! Fetching documents from other parties (SP metadata today). The client follows no
//! redirects and talks only https (http only to loopback, for tests), so a registered URL
//! cannot be turned into a probe of the hub's own network.

use std::time::Duration;

use crate::error::{Error, Result};

/// Checks a URL the hub will fetch from.
pub fn check_url(field: &str, url: &str) -> Result<url::Url> {
    let u = url::Url::parse(url).map_err(|e| Error::invalid(field, format!("not a URL: {e}")))?;
    let loopback = fedhub_metadata::xml::sp::is_loopback(&u);
    match u.scheme() {
        "https" => Ok(u),
        "http" if loopback => Ok(u),
        _ => Err(Error::invalid(field, "must be an https:// URL")),
    }
}

/// GETs `url`, at most `max_bytes`, within `timeout`.
pub async fn get(field: &str, url: &str, max_bytes: usize, timeout: Duration) -> Result<Vec<u8>> {
    let u = check_url(field, url)?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .map_err(Error::internal)?;
    let mut res =
        client.get(u).send().await.map_err(|e| {
            Error::invalid(field, format!("cannot fetch {url}: {}", without_url(&e)))
        })?;
    if !res.status().is_success() {
        return Err(Error::invalid(
            field,
            format!("{url} answered {}", res.status()),
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| Error::invalid(field, format!("reading {url}: {}", without_url(&e))))?
    {
        if body.len() + chunk.len() > max_bytes {
            return Err(Error::invalid(
                field,
                format!("{url} is larger than {max_bytes} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(i) = e.find(" for url") {
        e.truncate(i);
    }
    e
}
