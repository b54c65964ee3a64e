//! The small HTML pages a browser sees at the end of a start or callback.
//!
//! Titles and messages are fixed texts chosen by outcome: nothing from the query string is
//! ever echoed (an `error_description` is attacker-controllable). The few dynamic values
//! (an integration's name or id) are HTML-escaped. Every response of the router also gets
//! the headers of [`security_headers`].

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A page: status, fixed title and message, optional escaped detail.
#[derive(Debug, Clone)]
pub struct Page {
    pub status: StatusCode,
    pub title: &'static str,
    pub message: &'static str,
    /// Shown after the message, escaped (e.g. an integration's name).
    pub detail: Option<String>,
    /// `Set-Cookie` values to send with the page (clearing the binding cookie).
    pub cookies: Vec<HeaderValue>,
}

impl Page {
    pub fn new(status: StatusCode, title: &'static str, message: &'static str) -> Self {
        Self {
            status,
            title,
            message,
            detail: None,
            cookies: Vec::new(),
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_cookie(mut self, cookie: HeaderValue) -> Self {
        self.cookies.push(cookie);
        self
    }

    fn html(&self) -> String {
        let detail = self
            .detail
            .as_deref()
            .map(|d| format!("<p>{}</p>", escape(d)))
            .unwrap_or_default();
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Seatkeeper: {title}</title></head>\
             <body><h1>{title}</h1><p>{message}</p>{detail}</body></html>\n",
            title = escape(self.title),
            message = escape(self.message),
        )
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let body = self.html();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        for cookie in self.cookies {
            headers.append(header::SET_COOKIE, cookie);
        }
        // Also set by the router's layer; here too so a page served outside it (the
        // Lambda's fallback) carries them.
        security_headers(headers);
        response
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// The headers every response of the OAuth routes carries: nothing may be loaded or run
/// by the page, nothing cached (the URLs carry tickets, states and codes), no `Referer`
/// leaks a URL to the provider or elsewhere, and no content sniffing.
pub fn security_headers(headers: &mut HeaderMap) {
    const FIXED: [(HeaderName, &str); 5] = [
        (header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in FIXED {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_text_is_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x&y")</script>'"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#x27;"
        );
        let page = Page::new(StatusCode::OK, "Connected", "Done.").with_detail("<b>Acme</b>");
        let html = page.html();
        assert!(html.contains("&lt;b&gt;Acme&lt;/b&gt;"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
    }
}
