//! Webhooks, e-mail alerts and the event feed, over plain HTTP as an admin.

use serde_json::{Value, json};

use super::{Answer, ORG, TestApp};

/// A webhook of [`ORG`]: its id and its secret.
pub struct Hook {
    pub id: String,
    pub secret: String,
}

impl TestApp {
    fn admin_token(&self) -> String {
        self.token(ORG, &["admin"])
    }

    /// A webhook of `org` to `url` for `events` (every type when `None`).
    pub async fn new_webhook_of(&self, org: &str, url: &str, events: Option<&[&str]>) -> Hook {
        let mut body = json!({ "url": url });
        if let Some(events) = events {
            body["events"] = json!(events);
        }
        let token = self.token(org, &["admin"]);
        let answer = self.call_as(&token, "POST", "/webhooks", Some(&body)).await;
        assert_eq!(answer.status, 201, "{:?}", answer.body);
        Hook {
            id: answer.body["id"].as_str().expect("id").to_owned(),
            secret: answer.body["secret"].as_str().expect("secret").to_owned(),
        }
    }

    /// A webhook of [`ORG`].
    pub async fn new_webhook(&self, url: &str, events: Option<&[&str]>) -> Hook {
        self.new_webhook_of(ORG, url, events).await
    }

    /// `GET /webhooks/{id}` as [`ORG`]'s admin.
    pub async fn webhook(&self, id: &str) -> Value {
        let answer = self
            .call_as(&self.admin_token(), "GET", &format!("/webhooks/{id}"), None)
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        answer.body
    }

    /// An admin call of [`ORG`] (any method, any path).
    pub async fn admin_call(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        self.call_as(&self.admin_token(), method, path, body).await
    }

    /// Every event of `org` (all pages), oldest first, optionally of some types.
    pub async fn events_of(&self, org: &str, types: Option<&str>) -> Vec<Value> {
        let token = self.token(org, &["viewer"]);
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = "/events?limit=200".to_owned();
            if let Some(t) = types {
                path += &format!("&type={t}");
            }
            if let Some(a) = &after {
                path += &format!("&after={a}");
            }
            let answer = self.call_as(&token, "GET", &path, None).await;
            assert_eq!(answer.status, 200, "{:?}", answer.body);
            all.extend(
                answer.body["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .cloned(),
            );
            match answer.body["next_cursor"].as_str() {
                Some(c) => after = Some(c.to_owned()),
                None => return all,
            }
        }
    }

    /// Every event of [`ORG`] of these types (comma-separated).
    pub async fn events(&self, types: &str) -> Vec<Value> {
        self.events_of(ORG, Some(types)).await
    }
}
