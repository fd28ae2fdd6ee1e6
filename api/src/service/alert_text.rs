//! The words of an e-mail alert, in Czech or English: a subject that names
//! the mailbox (or app credential) and what happened, and a body with the
//! cause and the fix, the same explanations the API gives (the code
//! catalogue's), and a link to the frontend when `INBOXLINK_FRONTEND_URL` is set.

use serde_json::Value;

use crate::codes::Code;
use crate::domain::{EventType, Language, MailboxStatus};

/// An alert's subject and plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub subject: String,
    pub body: String,
}

fn status_name(status: &str, lang: Language) -> String {
    let Some(s) = MailboxStatus::parse(status) else {
        return status.to_owned();
    };
    let cs = match s {
        MailboxStatus::Inactive => "neaktivní",
        MailboxStatus::Active => "aktivní",
        MailboxStatus::Expiring => "brzy vyprší",
        MailboxStatus::ReauthRequired => "vyžaduje nové přihlášení",
        MailboxStatus::Error => "chyba",
    };
    match lang {
        Language::Cs => cs.to_owned(),
        Language::En => s.as_str().replace('_', " "),
    }
}

/// The cause and the fix of a code, in `lang` (English where the catalogue
/// has no Czech).
fn explain(code: Option<Code>, lang: Language) -> Option<(String, String)> {
    let code = code?;
    let en = (
        upper_first(code.info().en),
        code.hint().unwrap_or_default().to_owned(),
    );
    Some(match (lang, code.czech()) {
        (Language::Cs, Some((message, hint))) => (message.to_owned(), hint.to_owned()),
        _ => en,
    })
}

fn upper_first(text: &str) -> String {
    let mut c = text.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect::<String>() + ".",
        None => String::new(),
    }
}

fn field<'a>(data: &'a Value, key: &str) -> &'a str {
    data.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The alert for an event of `event_type` with `data`.
pub fn compose(
    event_type: EventType,
    data: &Value,
    lang: Language,
    frontend: Option<&url::Url>,
) -> Text {
    let cs = lang == Language::Cs;
    let email = field(data, "email");
    let name = field(data, "name");
    let code = |key| Code::parse(field(data, key));
    let (what, detail): (String, Option<(String, String)>) = match event_type {
        EventType::MailboxStatusChanged => {
            let to = status_name(field(data, "to"), lang);
            let from = status_name(field(data, "from"), lang);
            let what = if cs {
                format!("Schránka {email}: {to} (dříve {from})")
            } else {
                format!("Mailbox {email}: {to} (was {from})")
            };
            (what, explain(code("status_code"), lang))
        }
        EventType::MailboxCheckFailed => {
            let step = field(data, "step");
            let what = if cs {
                format!("Schránka {email}: kontrola připojení selhala (krok {step})")
            } else {
                format!("Mailbox {email}: the connection check failed (step {step})")
            };
            (what, explain(code("code"), lang))
        }
        EventType::MailboxCheckRecovered => (
            if cs {
                format!("Schránka {email}: kontrola připojení opět prošla")
            } else {
                format!("Mailbox {email}: the connection check passes again")
            },
            None,
        ),
        EventType::MailboxCreated => (
            if cs {
                format!("Schránka {email} byla přidána")
            } else {
                format!("Mailbox {email} was added")
            },
            None,
        ),
        EventType::MailboxDeleted => (
            if cs {
                format!("Schránka {email} byla odstraněna")
            } else {
                format!("Mailbox {email} was deleted")
            },
            None,
        ),
        EventType::SecretExpiring => {
            let days = data.get("days_left").and_then(Value::as_i64).unwrap_or(0);
            let on = field(data, "secret_expires_at");
            let fix = if cs {
                "V Entra ID vytvořte v registraci aplikace (Certificates & secrets) nový tajný kód klienta a zadejte ho do přihlašovacích údajů aplikace v Inboxlinku."
            } else {
                "Create a new client secret in the app registration in Entra ID (Certificates & secrets) and enter it in the app credential in Inboxlink."
            };
            (
                if cs {
                    format!(
                        "Přihlašovací údaje aplikace {name}: tajný kód klienta vyprší za {days} dní ({on})"
                    )
                } else {
                    format!(
                        "App credential {name}: the client secret expires in {days} days ({on})"
                    )
                },
                Some((String::new(), fix.to_owned())),
            )
        }
        EventType::SecretExpired => {
            let on = field(data, "secret_expires_at");
            (
                if cs {
                    format!("Přihlašovací údaje aplikace {name}: tajný kód klienta vypršel ({on})")
                } else {
                    format!("App credential {name}: the client secret has expired ({on})")
                },
                explain(Some(Code::ClientSecretExpired), lang),
            )
        }
        EventType::CredentialProblemChanged => match code("to") {
            Some(to) => (
                if cs {
                    format!("Přihlašovací údaje aplikace {name}: Microsoft je odmítl")
                } else {
                    format!("App credential {name}: Microsoft refused it")
                },
                explain(Some(to), lang),
            ),
            None => (
                if cs {
                    format!("Přihlašovací údaje aplikace {name}: opět fungují")
                } else {
                    format!("App credential {name}: accepted again")
                },
                None,
            ),
        },
        EventType::WebhookTest => (
            if cs {
                "Zkušební událost".into()
            } else {
                "Test event".into()
            },
            None,
        ),
        EventType::WebhookDisabled => (
            if cs {
                format!("Webhook {} byl vypnut", field(data, "url"))
            } else {
                format!("Webhook {} was disabled", field(data, "url"))
            },
            explain(code("reason"), lang),
        ),
        EventType::EmailAlertFailed => (
            if cs {
                "E-mailové upozornění se nepodařilo odeslat".into()
            } else {
                "An e-mail alert could not be sent".into()
            },
            Some((field(data, "message").to_owned(), String::new())),
        ),
    };
    let mut body = format!("{what}.\n");
    if let Some((cause, fix)) = detail {
        if !cause.is_empty() {
            body += &format!("\n{}: {cause}\n", if cs { "Příčina" } else { "Cause" });
        }
        if !fix.is_empty() {
            body += &format!("{}: {fix}\n", if cs { "Co dělat" } else { "What to do" });
        }
    }
    if let (Some(front), Some(id)) = (frontend, data.get("mailbox_id").and_then(Value::as_str)) {
        body += &format!(
            "\n{}/mailboxes/{id}\n",
            front.as_str().trim_end_matches('/')
        );
    }
    body += if cs {
        "\n-- \nInboxlink (automatické upozornění)\n"
    } else {
        "\n-- \nInboxlink (automatic alert)\n"
    };
    Text {
        subject: format!("[Inboxlink] {what}"),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_revoked_grant_is_explained_in_czech_with_its_fix_and_link() {
        let data = json!({
            "mailbox_id": "0190-x", "email": "podatelna@contoso.cz",
            "from": "active", "to": "reauth_required", "status_code": "grant_revoked",
        });
        let front: url::Url = "https://spisovka.example.org/".parse().unwrap();
        let t = compose(
            EventType::MailboxStatusChanged,
            &data,
            Language::Cs,
            Some(&front),
        );
        assert!(t.subject.contains("podatelna@contoso.cz"), "{}", t.subject);
        assert!(
            t.subject.contains("vyžaduje nové přihlášení"),
            "{}",
            t.subject
        );
        let (cause, fix) = Code::GrantRevoked.czech().unwrap();
        assert!(t.body.contains(cause) && t.body.contains(fix), "{}", t.body);
        assert!(
            t.body
                .contains("https://spisovka.example.org/mailboxes/0190-x"),
            "{}",
            t.body
        );
        let en = compose(EventType::MailboxStatusChanged, &data, Language::En, None);
        assert!(
            en.body.contains(Code::GrantRevoked.hint().unwrap()),
            "{}",
            en.body
        );
        assert!(
            !en.body.contains("/mailboxes/"),
            "no link without a frontend"
        );
    }
}
