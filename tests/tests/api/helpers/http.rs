//! Plain HTTP, for what the SDK cannot send (malformed requests, raw tokens)
//! or where the raw answer is what is tested.

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::TestApp;

/// A plain HTTP client.
pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// An answer read whole: status, headers, and the body as JSON (`Null` when it is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub async fn of(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        Self {
            status,
            headers,
            body,
        }
    }

    /// The problem code, if the body is a problem document.
    pub fn code(&self) -> Option<&str> {
        self.body["code"].as_str()
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends `request` and reads the answer.
pub async fn send(request: reqwest::RequestBuilder) -> Answer {
    Answer::of(request.send().await.expect("response")).await
}

impl TestApp {
    /// A plain request to `path` (`"GET"`, `"/mailboxes"`).
    pub fn request(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let method: reqwest::Method = method.parse().expect("method");
        http().request(method, self.url(path))
    }

    /// `method path` without credentials, with an optional JSON body.
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        send(request).await
    }

    /// `method path` with the bearer `token`, with an optional JSON body.
    pub async fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self.request(method, path).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        send(request).await
    }
}
